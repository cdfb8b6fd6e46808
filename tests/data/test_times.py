"""Tests for eventseq.data.times: the unit of integer times and the plausibility check."""

from __future__ import annotations

import polars as pl
import pytest

from eventseq.data import PrepareConfig, encode_events, prepare
from eventseq.data.schema import TIME_COLUMN
from eventseq.data.times import MAX_EPOCH_SECONDS, guessed_unit, integer_seconds
from eventseq.errors import ConfigError, DataError

NOW_SECONDS = 1_700_000_000  # 2023-11-14


def _events(times: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"id": [1] * len(times), "t": times, "x": [1.0] * len(times)})


CONFIG = PrepareConfig(id_column="id", time_column="t", numeric=["x"])


@pytest.mark.parametrize("unit, factor", [("ms", 1_000), ("us", 1_000_000), ("ns", 1_000_000_000)])
def test_finer_integer_times_read_as_seconds_are_refused_with_the_unit(unit, factor):
    events = _events([NOW_SECONDS * factor, (NOW_SECONDS + 5) * factor])

    with pytest.raises(DataError, match=rf"time column 't' has 2 integer values.*row 0.*time_unit={unit}"):
        prepare(events, CONFIG)


@pytest.mark.parametrize("unit, factor", [("s", 1), ("ms", 1_000), ("us", 1_000_000), ("ns", 1_000_000_000)])
def test_time_unit_gives_epoch_seconds(unit, factor):
    events = _events([NOW_SECONDS * factor, (NOW_SECONDS + 5) * factor + factor - 1])

    prepared = prepare(events, CONFIG, time_unit=unit)

    assert prepared.table[TIME_COLUMN].to_list() == [[NOW_SECONDS, NOW_SECONDS + 5]]  # floored
    assert prepared.schema.time_unit == unit


def test_inference_encodes_with_the_fitted_time_unit():
    events = _events([NOW_SECONDS * 1_000, (NOW_SECONDS + 7) * 1_000])
    schema = prepare(events, CONFIG, time_unit="ms").schema

    assert encode_events(events, schema).table[TIME_COLUMN].to_list() == [[NOW_SECONDS, NOW_SECONDS + 7]]


def test_schema_round_trip_keeps_the_unit_and_the_old_fingerprint():
    seconds = prepare(_events([NOW_SECONDS, NOW_SECONDS + 1]), CONFIG).schema
    millis = prepare(_events([NOW_SECONDS * 1000, (NOW_SECONDS + 1) * 1000]), CONFIG, time_unit="ms").schema

    legacy = seconds.to_dict()
    legacy.pop("time_unit")  # a schema fitted before time_unit existed

    assert type(millis).from_json(millis.to_json()).time_unit == "ms"
    assert type(seconds).from_dict(legacy).fingerprint() == seconds.fingerprint()
    assert seconds.fingerprint() != millis.fingerprint()


def test_bad_time_unit_is_a_config_error():
    with pytest.raises(ConfigError, match=r"time_unit='sec'.*\['s', 'ms', 'us', 'ns'\]"):
        prepare(_events([NOW_SECONDS]), CONFIG, time_unit="sec")


def test_time_unit_with_datetimes_is_refused():
    events = _events([NOW_SECONDS]).with_columns(pl.from_epoch("t", time_unit="s"))

    with pytest.raises(ConfigError, match="time_unit='ms' applies to integer times"):
        prepare(events, CONFIG, time_unit="ms")


def test_negative_times_floor_like_datetimes():
    values = pl.DataFrame({"t": [-1, -1000, -1001, 999]}).select(integer_seconds(pl.col("t"), "ms"))

    assert values["t"].to_list() == [-1, -1, -2, 0]


def test_guessed_unit_is_the_coarsest_plausible_one():
    assert guessed_unit(NOW_SECONDS) == "s"
    assert guessed_unit(NOW_SECONDS * 1000) == "ms"
    assert guessed_unit(-NOW_SECONDS * 1_000_000) == "us"
    assert guessed_unit(MAX_EPOCH_SECONDS * 1_000_000_000 + 1) == "ns"
