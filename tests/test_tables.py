"""Tests for eventseq.tables: the one renderer of result tables."""

from __future__ import annotations

import pytest

from eventseq.tables import render_table


def test_plain_text_aligns_columns_and_markdown_has_a_rule_row():
    header, rows = ["model", "auroc", "seconds"], [["gru", "0.9123", "1.3"], ["transformer", "0.9", "12.0"]]
    text = render_table(header, rows, right_aligned=("seconds",)).splitlines()
    assert text[0] == "model        auroc   seconds"
    assert text[1] == "-----------  ------  -------"
    assert text[2] == "gru          0.9123      1.3"
    assert text[3].endswith("   12.0") and all(line == line.rstrip() for line in text)
    markdown = render_table(header, rows, markdown=True).splitlines()
    assert markdown[:3] == ["| model | auroc | seconds |", "|---|---|---|", "| gru | 0.9123 | 1.3 |"]


def test_a_row_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        render_table(["a", "b"], [["1"]])
