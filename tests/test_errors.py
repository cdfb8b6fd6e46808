"""Tests for eventseq.errors: the error hierarchy and name suggestions."""

from __future__ import annotations

import pytest

from eventseq.errors import ColumnError, ConfigError, DataError, EventseqError, FileFormatError, did_you_mean


@pytest.mark.parametrize("error_type", [ColumnError, DataError, ConfigError, FileFormatError])
def test_every_error_is_an_eventseq_value_error(error_type):
    error = error_type("message")

    assert isinstance(error, EventseqError)
    assert isinstance(error, ValueError)


def test_did_you_mean_suggests_closest_name():
    assert did_you_mean("amont", ["amount", "mcc", "client_id"]) == " (did you mean 'amount'?)"


def test_did_you_mean_is_empty_when_nothing_is_close():
    assert did_you_mean("zzz", ["amount", "mcc"]) == ""
    assert did_you_mean("amount", []) == ""
