"""Tests for eventseq.data.splits: entity splits (stratified) and time splits."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from eventseq.data.schema import TIME_COLUMN
from eventseq.data.splits import entity_folds, given_splits, split_by_entity, split_by_time
from eventseq.errors import ConfigError, DataError, EventseqError

DAY = 86_400
T0 = 1_609_459_200  # 2021-01-01T00:00:00Z


# ----------------------------------------------------------------------------- by entity


def test_entity_split_disjoint_and_covering():
    parts = split_by_entity(100, valid_fraction=0.2, test_fraction=0.1, seed=3)

    train, valid, test = parts["train"], parts["valid"], parts["test"]
    assert len(np.intersect1d(train, valid)) == len(np.intersect1d(train, test)) == len(np.intersect1d(valid, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, valid, test])), np.arange(100))
    assert (len(train), len(valid), len(test)) == (70, 20, 10)


def test_entity_split_parts_are_sorted_int64():
    parts = split_by_entity(50, valid_fraction=0.3, seed=0)

    for part in parts.values():
        assert part.dtype == np.int64
        assert np.array_equal(part, np.sort(part))
    assert len(parts["test"]) == 0


def test_entity_split_is_deterministic_per_seed():
    first, again, other = split_by_entity(60, seed=1), split_by_entity(60, seed=1), split_by_entity(60, seed=2)

    assert np.array_equal(first["valid"], again["valid"])
    assert not np.array_equal(first["valid"], other["valid"])


def test_stratified_split_keeps_class_shares():
    labels = np.array([1] * 60 + [0] * 140)  # 30% positive
    labels = labels[np.random.default_rng(0).permutation(200)]

    parts = split_by_entity(200, valid_fraction=0.2, test_fraction=0.2, stratify=labels, seed=0)

    for part in parts.values():
        assert abs(labels[part].mean() - 0.3) <= 0.05


def test_stratified_multiclass_shares():
    labels = np.repeat([0, 1, 2], [100, 60, 40])

    parts = split_by_entity(200, valid_fraction=0.25, stratify=labels, seed=4)

    for part in (parts["train"], parts["valid"]):
        shares = np.bincount(labels[part], minlength=3) / len(part)
        np.testing.assert_allclose(shares, [0.5, 0.3, 0.2], atol=0.05)


def test_regression_like_stratify_falls_back_to_random():
    values = np.linspace(0.0, 1.0, 40)  # 40 distinct values cannot be stratified

    parts = split_by_entity(40, valid_fraction=0.25, stratify=values)

    assert len(parts["valid"]) == 10


@pytest.mark.parametrize(
    "valid_fraction, test_fraction",
    [(0.0, 0.0), (1.0, 0.0), (-0.1, 0.0), (0.2, -0.1), (0.2, 1.0), (0.5, 0.5), (0.7, 0.4)],
)
def test_bad_fractions(valid_fraction, test_fraction):
    with pytest.raises(ConfigError, match="valid_fraction"):
        split_by_entity(100, valid_fraction=valid_fraction, test_fraction=test_fraction)


def test_impossible_stratified_split_is_a_data_error():
    labels = np.array([0] * 9 + [1])  # one member in class 1

    with pytest.raises(DataError, match="cannot split 10 entities"):
        split_by_entity(10, valid_fraction=0.2, stratify=labels)


# ----------------------------------------------------------------------------- by time


@pytest.fixture
def timed_table() -> pl.DataFrame:
    """Entity 1 spans the cut, entity 2 only before it, entity 3 only after; times in days from T0."""
    days = [[-3, -1, 0, 2, 5], [-4, -2], [1, 3]]
    return pl.DataFrame(
        {
            "client_id": [1, 2, 3],
            TIME_COLUMN: [[T0 + d * DAY for d in row] for row in days],
            "mcc": [[10 + d for d in row] for row in days],  # encodes the day so alignment can be checked
            "label": [1, 0, 1],
        },
        schema_overrides={TIME_COLUMN: pl.List(pl.Int64), "mcc": pl.List(pl.Int32)},
    )


def _days(table: pl.DataFrame) -> dict[int, list[int]]:
    return {row["client_id"]: [(t - T0) // DAY for t in row[TIME_COLUMN]] for row in table.to_dicts()}


def test_time_split_before_and_after_cut(timed_table):
    train, valid = split_by_time(timed_table, T0)

    assert _days(train) == {1: [-3, -1], 2: [-4, -2]}
    assert _days(valid) == {1: [0, 2, 5], 3: [1, 3]}


def test_time_split_gap_skips_events(timed_table):
    train, valid = split_by_time(timed_table, T0, gap=2 * DAY)

    assert _days(train) == {1: [-3, -1], 2: [-4, -2]}
    assert _days(valid) == {1: [2, 5], 3: [3]}
    for row in train.to_dicts():
        assert all(t < T0 for t in row[TIME_COLUMN])
    for row in valid.to_dicts():
        assert all(t >= T0 + 2 * DAY for t in row[TIME_COLUMN])


def test_time_split_gap_as_timedelta(timed_table):
    by_seconds = split_by_time(timed_table, T0, gap=2 * DAY)[1]
    by_timedelta = split_by_time(timed_table, T0, gap=dt.timedelta(days=2))[1]

    assert by_timedelta.equals(by_seconds)


def test_time_split_drops_entities_without_events_in_a_part(timed_table):
    train, valid = split_by_time(timed_table, T0 + 10 * DAY)

    assert train["client_id"].to_list() == [1, 2, 3]
    assert valid.height == 0


def test_time_split_slices_every_list_column_and_keeps_others(timed_table):
    train, valid = split_by_time(timed_table, T0, gap=DAY)

    for part in (train, valid):
        for row in part.to_dicts():
            assert row["mcc"] == [10 + (t - T0) // DAY for t in row[TIME_COLUMN]]
    assert train.columns == timed_table.columns
    assert dict(zip(valid["client_id"], valid["label"])) == {1: 1, 3: 1}


def test_time_split_valid_until(timed_table):
    _, valid = split_by_time(timed_table, T0, valid_until=T0 + 3 * DAY)

    assert _days(valid) == {1: [0, 2], 3: [1]}


@pytest.mark.parametrize(
    "moment",
    [
        T0,
        dt.datetime(2021, 1, 1),
        dt.datetime(2021, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        dt.date(2021, 1, 1),
        "2021-01-01",
        "2021-01-01T00:00:00",
        "2021-01-01T00:00:00+00:00",
    ],
)
def test_time_split_accepts_ints_datetimes_dates_and_iso_strings(timed_table, moment):
    train, valid = split_by_time(timed_table, moment)

    assert _days(train) == {1: [-3, -1], 2: [-4, -2]}
    assert _days(valid) == {1: [0, 2, 5], 3: [1, 3]}


def test_time_split_negative_gap(timed_table):
    with pytest.raises(ConfigError, match="gap must be >= 0"):
        split_by_time(timed_table, T0, gap=-1)


def test_time_split_needs_event_time(timed_table):
    with pytest.raises(DataError, match=f"no '{TIME_COLUMN}' column"):
        split_by_time(timed_table.drop(TIME_COLUMN), T0)


# ----------------------------------------------------------------------------- a user-given split


def test_given_splits_maps_each_entity_to_its_part_whatever_the_id_dtype(capsys):
    ids = np.array([10, 11, 12, 13, 14])
    table = pl.DataFrame({"entity_id": ["14", "10", "11", "12", "13", "99"],
                          "part": ["test", "train", "train", "valid", "train", "valid"]})
    parts = given_splits(table, ids, "entity_id", "split.csv")
    assert {name: part.tolist() for name, part in parts.items()} == {"train": [0, 1, 3], "valid": [2], "test": [4]}
    assert "split.csv lists 1 ids that are not in the data" in capsys.readouterr().err  # said, not silent


@pytest.mark.parametrize("table, message", [
    (pl.DataFrame({"entity_id": [1, 2]}), "has no column 'part'"),
    (pl.DataFrame({"id": [1, 2], "part": ["train", "valid"]}), "has no column 'entity_id'"),
    (pl.DataFrame({"entity_id": [1, 2, 3], "part": ["train", "valid", "holdout"]}),
     r"part 'holdout' \(entity 3\) is not one of \['train', 'valid', 'test'\]"),
    (pl.DataFrame({"entity_id": [1, 1, 2, 3], "part": ["train", "valid", "valid", "train"]}),
     "gives entity 1 more than one part"),
    (pl.DataFrame({"entity_id": [1, 2], "part": ["train", "valid"]}), r"gives no part to 1 of the 3 entities \(e.g. \[3\]\)"),
    (pl.DataFrame({"entity_id": [1, 2, 3], "part": ["train", "train", "test"]}), "has no 'valid' entity"),
])
def test_a_bad_given_split_is_refused_naming_the_file_and_the_entity(table, message):
    with pytest.raises(EventseqError, match=f"split.parquet.*{message}|{message}"):
        given_splits(table, np.array([1, 2, 3]), "entity_id", "split.parquet")


def test_entity_folds_cover_every_entity_once_stratified_when_each_class_allows():
    labels = np.array([0] * 10 + [1] * 5)
    folds = entity_folds(15, 5, seed=0, stratify=labels)
    assert sorted(np.concatenate([outside for _, outside in folds]).tolist()) == list(range(15))
    assert all(labels[outside].sum() == 1 for _, outside in folds)  # one of the 5 class-1 entities per fold
    rare = entity_folds(15, 5, seed=0, stratify=np.array([0] * 12 + [1] * 3))  # a class rarer than the folds
    assert len(rare) == 5 and sorted(np.concatenate([o for _, o in rare]).tolist()) == list(range(15))
    assert len(entity_folds(3, 5, seed=0)) == 3  # never more folds than entities
