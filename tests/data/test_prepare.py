"""Tests for eventseq.data.prepare: raw events -> sequence table, schema and report."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from eventseq.data import (
    PrepareConfig,
    PrepareReport,
    PreparedData,
    SequencePreparer,
    encode_events,
    load_prepared,
    prepare,
)
from eventseq.data.store import SCHEMA_METADATA_KEY
from eventseq.data.schema import PADDING_ID, TIME_COLUMN, UNKNOWN_ID, Schema
from eventseq.errors import ColumnError, ConfigError, DataError, EventseqError, FileFormatError


def _row(prepared: PreparedData, entity: int) -> dict:
    """The sequence-table row of one entity as a dict of Python values."""
    rows = prepared.table.filter(pl.col(prepared.schema.id_column) == entity).to_dicts()
    assert len(rows) == 1
    return rows[0]


def _numeric_frame(values: list[float]) -> pl.DataFrame:
    """One entity whose events carry `values` in a numeric column `x`, at times 0, 1, 2, ..."""
    return pl.DataFrame({"id": [1] * len(values), "t": list(range(len(values))), "x": values})


# ----------------------------------------------------------------------------- sequence table


def test_one_row_per_entity(tiny_events, tiny_config):
    prepared = prepare(tiny_events, tiny_config)

    assert prepared.table.height == 3
    assert sorted(prepared.table["client_id"].to_list()) == [1, 2, 3]
    assert prepared.table.columns == ["client_id", TIME_COLUMN, "mcc", "amount"]


def test_events_sorted_by_time_and_stable_for_ties(tiny_events, tiny_config):
    prepared = prepare(tiny_events, tiny_config)

    client_1 = _row(prepared, 1)
    client_2 = _row(prepared, 2)
    assert client_1[TIME_COLUMN] == [10, 20, 20]
    # Tie at ts=20: input rows 1 (travel, -3.0) then 4 (food, 2.5) keep that order.
    assert client_1["mcc"] == [2, 3, 2]
    assert client_1["amount"] == [5.0, -3.0, 2.5]
    assert client_2[TIME_COLUMN] == [10, 30, 30]
    # Tie at ts=30: input rows 0 (food, 10.0) then 3 (cash, 0.0).
    assert client_2["mcc"] == [5, 2, 4]
    assert client_2["amount"] == [7.0, 10.0, 0.0]


def test_all_list_columns_have_equal_lengths(tiny_events, tiny_config):
    table = prepare(tiny_events, tiny_config).table

    lengths = table.select(pl.col(c).list.len() for c in [TIME_COLUMN, "mcc", "amount"])
    assert lengths[TIME_COLUMN].to_list() == lengths["mcc"].to_list() == lengths["amount"].to_list()


# ----------------------------------------------------------------------------- categoricals


def test_vocabulary_ordered_by_frequency_then_value(tiny_events, tiny_config):
    prepared = prepare(tiny_events, tiny_config)

    feature = prepared.schema.categorical[0]
    assert feature.vocabulary == ["food", "travel", "cash", "rare"]
    assert feature.num_embeddings == 6


def test_padding_id_never_used_and_null_maps_to_unknown(tiny_events, tiny_config):
    prepared = prepare(tiny_events, tiny_config)

    all_ids = prepared.table["mcc"].explode().to_numpy()
    assert PADDING_ID not in all_ids
    assert all_ids.min() >= UNKNOWN_ID
    assert _row(prepared, 3)["mcc"] == [UNKNOWN_ID, 3]  # null, then travel
    assert prepared.report.unknown_values == {"mcc": 1}


def test_min_frequency_maps_rare_values_to_unknown(tiny_events, tiny_config):
    prepared = prepare(tiny_events, tiny_config, min_frequency=2)

    assert prepared.schema.categorical[0].vocabulary == ["food", "travel"]
    assert _row(prepared, 2)["mcc"] == [UNKNOWN_ID, 2, UNKNOWN_ID]  # rare, food, cash
    assert prepared.report.unknown_values == {"mcc": 3}  # rare, cash and the null


def test_max_vocab_size_keeps_most_frequent(tiny_events, tiny_config):
    prepared = prepare(tiny_events, tiny_config, max_vocab_size=1)

    assert prepared.schema.categorical[0].vocabulary == ["food"]
    assert _row(prepared, 1)["mcc"] == [2, UNKNOWN_ID, 2]


def test_integer_categorical_is_encoded_by_string_value():
    events = pl.DataFrame({"id": [1, 1, 1], "t": [1, 2, 3], "code": [7, 7, 42]})

    prepared = prepare(events, id_column="id", time_column="t", categorical=["code"])

    assert prepared.schema.categorical[0].vocabulary == ["7", "42"]
    assert _row(prepared, 1)["code"] == [2, 2, 3]


# ----------------------------------------------------------------------------- numerics


@pytest.mark.parametrize(
    "transform, expected",
    [
        ("identity", lambda x: x),
        ("log", lambda x: np.sign(x) * np.log1p(np.abs(x))),
        ("standardize", lambda x: (x - x.mean()) / x.std(ddof=1)),
        (
            "log_standardize",
            lambda x: (np.sign(x) * np.log1p(np.abs(x)) - (np.sign(x) * np.log1p(np.abs(x))).mean())
            / (np.sign(x) * np.log1p(np.abs(x))).std(ddof=1),
        ),
    ],
)
def test_numeric_transform_values(transform, expected):
    raw = np.array([-9.0, 0.0, 1.0, 3.0, 99.0])

    prepared = prepare(
        _numeric_frame(raw.tolist()), id_column="id", time_column="t", numeric=["x"],
        numeric_transform={"x": transform},
    )

    encoded = np.array(_row(prepared, 1)["x"])
    np.testing.assert_allclose(encoded, expected(raw), rtol=1e-5, atol=1e-6)


def test_log_transform_of_known_values():
    prepared = prepare(
        _numeric_frame([-9.0, 0.0, 1.0]), id_column="id", time_column="t", numeric=["x"],
        default_numeric_transform="log",
    )

    np.testing.assert_allclose(_row(prepared, 1)["x"], [-math.log(10), 0.0, math.log(2)], rtol=1e-6)


def test_standardize_stores_fitted_mean_and_std():
    prepared = prepare(
        _numeric_frame([1.0, 2.0, 3.0, 6.0]), id_column="id", time_column="t", numeric=["x"],
        numeric_transform={"x": "standardize"},
    )

    feature = prepared.schema.numeric[0]
    assert feature.transform == "standardize"
    assert feature.mean == pytest.approx(3.0)
    assert feature.std == pytest.approx(np.std([1.0, 2.0, 3.0, 6.0], ddof=1))


def test_identity_and_log_keep_unit_statistics():
    prepared = prepare(
        _numeric_frame([1.0, 2.0, 30.0]), id_column="id", time_column="t", numeric=["x"],
        default_numeric_transform="log",
    )

    assert (prepared.schema.numeric[0].mean, prepared.schema.numeric[0].std) == (0.0, 1.0)


def test_standardize_of_constant_column_does_not_divide_by_zero():
    prepared = prepare(
        _numeric_frame([4.0, 4.0, 4.0]), id_column="id", time_column="t", numeric=["x"],
        numeric_transform={"x": "standardize"},
    )

    assert prepared.schema.numeric[0].std == 1.0
    assert _row(prepared, 1)["x"] == [0.0, 0.0, 0.0]


# ----------------------------------------------------------------------------- time columns


def test_pandas_datetime_time_becomes_epoch_seconds():
    events = pd.DataFrame(
        {"id": [1, 1], "t": pd.to_datetime(["2020-01-02 00:00:01", "2020-01-01 00:00:00"]), "c": ["a", "b"]}
    )

    prepared = prepare(events, id_column="id", time_column="t", categorical=["c"])

    assert prepared.schema.time_kind == "datetime"
    assert prepared.table[TIME_COLUMN].dtype == pl.List(pl.Int64)
    assert _row(prepared, 1)[TIME_COLUMN] == [1577836800, 1577923201]


def test_polars_datetime_time_becomes_epoch_seconds():
    events = pl.DataFrame(
        {"id": [1, 1], "t": [dt.datetime(2020, 1, 1, 0, 0, 1, 500_000), dt.datetime(1970, 1, 1)], "c": ["a", "b"]}
    )

    prepared = prepare(events, id_column="id", time_column="t", categorical=["c"])

    assert _row(prepared, 1)[TIME_COLUMN] == [0, 1577836801]


def test_polars_date_time_becomes_epoch_seconds():
    events = pl.DataFrame({"id": [1, 1], "t": [dt.date(2020, 1, 1), dt.date(1969, 12, 31)], "c": ["a", "b"]})

    prepared = prepare(events, id_column="id", time_column="t", categorical=["c"])

    assert _row(prepared, 1)[TIME_COLUMN] == [-86400, 1577836800]


def test_timezone_aware_datetime_uses_utc_epoch():
    berlin = pd.to_datetime(["2020-01-01 01:00"]).tz_localize("Europe/Berlin")  # = 00:00 UTC
    events = pd.DataFrame({"id": [1], "t": berlin, "c": ["a"]})

    prepared = prepare(events, id_column="id", time_column="t", categorical=["c"])

    assert _row(prepared, 1)[TIME_COLUMN] == [1577836800]


def test_time_column_already_named_event_time():
    events = pl.DataFrame({"id": [1, 1], TIME_COLUMN: [5, 2], "c": ["a", "b"]})

    prepared = prepare(events, id_column="id", time_column=TIME_COLUMN, categorical=["c"])

    assert _row(prepared, 1)[TIME_COLUMN] == [2, 5]


# ----------------------------------------------------------------------------- report


def test_report_counts_rows_events_entities(tiny_events, tiny_config):
    report = prepare(tiny_events, tiny_config).report

    assert (report.rows_in, report.events_out, report.entities_out) == (8, 8, 3)
    assert report.rows_dropped == {}


def test_null_time_rows_dropped_with_reason(tiny_events, tiny_config):
    tiny_events["ts"] = pd.array([30, None, 10, 30, 20, 5, None, 10], dtype="Int64")

    prepared = prepare(tiny_events, tiny_config)

    assert prepared.report.rows_in == 8
    assert prepared.report.events_out == 6
    assert prepared.report.rows_dropped == {"null ts": 2}
    assert "rows dropped (null ts): 2" in prepared.report.summary()
    assert _row(prepared, 1)[TIME_COLUMN] == [10, 20]


def test_null_time_error_policy_names_row(tiny_events, tiny_config):
    tiny_events["ts"] = pd.array([30, 20, None, 30, 20, 5, 15, 10], dtype="Int64")

    with pytest.raises(DataError, match=r"'ts'.*row 2"):
        prepare(tiny_events, tiny_config, null_time="error")


def test_all_rows_dropped_is_an_error():
    events = pl.DataFrame({"id": [1, 2], "t": pl.Series([None, None], dtype=pl.Int64), "c": ["a", "b"]})

    with pytest.raises(DataError, match="no events left"):
        prepare(events, id_column="id", time_column="t", categorical=["c"])


# ----------------------------------------------------------------------------- input kinds and output files


def test_same_table_from_every_input_kind(tiny_events, tiny_events_pl, tiny_config, tmp_path):
    parquet_path = tmp_path / "events.parquet"
    tiny_events_pl.write_parquet(parquet_path)

    tables = [
        prepare(source, PrepareConfig(**vars(tiny_config))).table
        for source in (tiny_events, tiny_events_pl, tiny_events_pl.lazy(), parquet_path, str(parquet_path))
    ]

    for table in tables[1:]:
        assert table.equals(tables[0])


def test_output_directory_files_and_parquet_metadata(tiny_events, tiny_labels, tiny_config, tmp_path):
    tiny_config.targets = {"churned": "binary"}
    prepared = prepare(tiny_events, tiny_config, labels=tiny_labels, output=tmp_path / "prepared")

    directory = tmp_path / "prepared"
    assert sorted(p.name for p in directory.iterdir()) == ["data.parquet", "report.json", "schema.json"]
    metadata = pq.read_schema(directory / "data.parquet").metadata
    assert Schema.from_json(metadata[SCHEMA_METADATA_KEY].decode()) == prepared.schema
    assert Schema.from_dict(json.loads((directory / "schema.json").read_text())) == prepared.schema
    assert json.loads((directory / "report.json").read_text())["events_out"] == 8


def test_load_prepared_round_trips(tiny_prepared, tmp_path):
    tiny_prepared.save(tmp_path / "prepared")

    loaded = load_prepared(tmp_path / "prepared")

    assert loaded.table.equals(tiny_prepared.table)
    assert loaded.schema == tiny_prepared.schema
    assert loaded.report == tiny_prepared.report


def test_load_prepared_from_data_file_uses_metadata_schema(tiny_prepared, tmp_path):
    tiny_prepared.save(tmp_path / "prepared")

    loaded = load_prepared(tmp_path / "prepared" / "data.parquet")

    assert loaded.table.equals(tiny_prepared.table)
    assert loaded.schema == tiny_prepared.schema


def test_load_prepared_missing_directory_names_path(tmp_path):
    with pytest.raises(FileFormatError, match="nowhere"):
        load_prepared(tmp_path / "nowhere")


def test_load_prepared_plain_parquet_without_schema(tmp_path):
    path = tmp_path / "plain.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(path)

    with pytest.raises(FileFormatError, match="plain.parquet.*no eventseq schema"):
        load_prepared(path)


def test_prepare_does_not_mutate_callers_config(tiny_events, tiny_config):
    prepare(tiny_events, tiny_config, min_frequency=2)

    assert tiny_config.min_frequency == 1


# ----------------------------------------------------------------------------- fit / transform


def test_preparer_init_only_stores_config(tiny_config):
    tiny_config.invalid_numeric = "oops"  # not validated until fit

    preparer = SequencePreparer(tiny_config)

    assert preparer.config is tiny_config
    assert not hasattr(preparer, "schema_")


def test_preparer_fit_then_transform_equals_fit_transform(tiny_events, tiny_config):
    preparer = SequencePreparer(tiny_config).fit(tiny_events)

    assert preparer.transform(tiny_events).table.equals(SequencePreparer(tiny_config).fit_transform(tiny_events).table)


def test_preparer_transform_before_fit(tiny_events, tiny_config):
    with pytest.raises(ConfigError, match="before fit"):
        SequencePreparer(tiny_config).transform(tiny_events)


def test_encode_events_maps_unseen_categories_to_unknown(tiny_events, tiny_config):
    schema = prepare(tiny_events, tiny_config).schema
    new_events = pl.DataFrame(
        {"client_id": [9, 9, 9], "ts": [1, 2, 3], "mcc": ["food", "never-seen", "rare"], "amount": [1.0, 2.0, 3.0]}
    )

    encoded = encode_events(new_events, schema)

    assert encoded.schema is schema
    assert _row(encoded, 9)["mcc"] == [2, UNKNOWN_ID, 5]
    assert encoded.report.unknown_values == {"mcc": 1}


def test_encode_events_reuses_fitted_statistics():
    fitted = prepare(
        _numeric_frame([1.0, 2.0, 3.0]), id_column="id", time_column="t", numeric=["x"],
        numeric_transform={"x": "standardize"},
    ).schema

    encoded = encode_events(_numeric_frame([2.0, 4.0]), fitted)

    np.testing.assert_allclose(_row(encoded, 1)["x"], [0.0, 2.0], rtol=1e-6)  # mean 2, std 1 from fit


def test_encode_events_rejects_other_time_kind(tiny_events, tiny_config):
    schema = prepare(tiny_events, tiny_config).schema
    tiny_events["ts"] = pd.to_datetime(tiny_events["ts"], unit="s")

    with pytest.raises(ColumnError, match="'ts'.*integer seconds"):
        encode_events(tiny_events, schema)


# ----------------------------------------------------------------------------- targets


def test_binary_target_from_labels_table(tiny_prepared):
    assert tiny_prepared.schema.target("churned").classes == [0, 1]
    assert tiny_prepared.table.sort("client_id")["churned"].to_list() == [1, 0, 1]


def test_multiclass_target_classes_mapped_to_consecutive_ids(tiny_events, tiny_labels, tiny_config):
    tiny_config.targets = {"segment": "multiclass"}

    prepared = prepare(tiny_events, tiny_config, labels=tiny_labels)

    assert prepared.schema.target("segment").classes == ["a", "b", "c"]
    assert prepared.table["segment"].dtype == pl.Int32
    assert prepared.table.sort("client_id")["segment"].to_list() == [1, 2, 0]  # b, c, a


def test_regression_target_kept_as_float(tiny_events, tiny_labels, tiny_config):
    tiny_config.targets = {"ltv": "regression"}

    prepared = prepare(tiny_events, tiny_config, labels=tiny_labels)

    assert prepared.schema.target("ltv").classes is None
    assert prepared.table["ltv"].dtype == pl.Float32
    assert prepared.table.sort("client_id")["ltv"].to_list() == [1.5, 2.0, 3.25]


def test_target_from_per_entity_constant_event_column(tiny_events, tiny_config):
    tiny_events["tier"] = tiny_events["client_id"].map({1: "gold", 2: "silver", 3: "gold"})
    tiny_config.targets = {"tier": "binary"}

    prepared = prepare(tiny_events, tiny_config)

    assert prepared.schema.target("tier").classes == ["gold", "silver"]
    assert prepared.table.sort("client_id")["tier"].to_list() == [0, 1, 0]


def test_entity_without_label_gets_null_target(tiny_events, tiny_labels, tiny_config):
    tiny_config.targets = {"churned": "binary"}

    prepared = prepare(tiny_events, tiny_config, labels=tiny_labels[tiny_labels.client_id != 3])

    assert _row(prepared, 3)["churned"] is None


def test_target_with_one_class(tiny_events, tiny_labels, tiny_config):
    tiny_labels["churned"] = 1
    tiny_config.targets = {"churned": "binary"}

    with pytest.raises(DataError, match="'churned' has one class"):
        prepare(tiny_events, tiny_config, labels=tiny_labels)


def test_binary_target_with_three_classes(tiny_events, tiny_labels, tiny_config):
    tiny_config.targets = {"segment": "binary"}

    with pytest.raises(DataError, match="'segment'.*3 classes"):
        prepare(tiny_events, tiny_config, labels=tiny_labels)


def test_target_not_constant_within_entity(tiny_events, tiny_config):
    tiny_events["flag"] = [0, 0, 1, 0, 0, 1, 1, 0]  # client 1 has 0 and 1
    tiny_config.targets = {"flag": "binary"}

    with pytest.raises(DataError, match="'flag' is not constant within entity 1"):
        prepare(tiny_events, tiny_config)


def test_labelled_entity_without_events_is_an_error_by_default(tiny_events, tiny_labels, tiny_config):
    labels = pd.concat([tiny_labels, pd.DataFrame({"client_id": [99], "churned": [0], "segment": ["a"], "ltv": [0.0]})])
    tiny_config.targets = {"churned": "binary"}

    with pytest.raises(DataError, match="no events.*first: 99"):
        prepare(tiny_events, tiny_config, labels=labels)


def test_labelled_entity_without_events_dropped_and_reported(tiny_events, tiny_labels, tiny_config):
    labels = pd.concat([tiny_labels, pd.DataFrame({"client_id": [99], "churned": [0], "segment": ["a"], "ltv": [0.0]})])
    tiny_config.targets = {"churned": "binary"}

    prepared = prepare(tiny_events, tiny_config, labels=labels, entities_without_events="drop")

    assert 99 not in prepared.table["client_id"].to_list()
    assert prepared.report.entities_out == 3
    assert prepared.report.entities_dropped == {"labelled but no events": 1}


def test_labels_with_repeated_id(tiny_events, tiny_labels, tiny_config):
    tiny_config.targets = {"churned": "binary"}

    with pytest.raises(DataError, match="repeated 'client_id'"):
        prepare(tiny_events, tiny_config, labels=pd.concat([tiny_labels, tiny_labels.head(1)]))


def test_missing_target_column_in_labels(tiny_events, tiny_labels, tiny_config):
    tiny_config.targets = {"churn": "binary"}

    with pytest.raises(ColumnError, match="'churn' not found in the labels table.*did you mean 'churned'"):
        prepare(tiny_events, tiny_config, labels=tiny_labels)


# ----------------------------------------------------------------------------- bad input


def test_missing_column(tiny_events, tiny_config):
    tiny_config.numeric = ["balance"]

    with pytest.raises(ColumnError, match="'balance' not found in the event table"):
        prepare(tiny_events, tiny_config)


def test_misspelled_column_suggests_close_name(tiny_events, tiny_config):
    tiny_config.categorical = ["mc"]

    with pytest.raises(ColumnError, match="'mc'.*did you mean 'mcc'"):
        prepare(tiny_events, tiny_config)


def test_string_in_numeric_column(tiny_events, tiny_config):
    tiny_events["amount"] = tiny_events["amount"].astype(str)

    with pytest.raises(ColumnError, match="numeric column 'amount' has dtype String"):
        prepare(tiny_events, tiny_config)


def test_mixed_type_pandas_column_names_the_column(tiny_events, tiny_config):
    tiny_events["amount"] = pd.Series([1.0, "abc", 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], dtype=object)

    with pytest.raises(ColumnError, match="column 'amount'.*mixed types"):
        prepare(tiny_events, tiny_config)


def test_string_time_column(tiny_events, tiny_config):
    tiny_events["ts"] = tiny_events["ts"].astype(str)

    with pytest.raises(ColumnError, match="time column 'ts' has dtype String"):
        prepare(tiny_events, tiny_config)


def test_float_time_column(tiny_events, tiny_config):
    tiny_events["ts"] = tiny_events["ts"].astype(float)

    with pytest.raises(ColumnError, match="time column 'ts'"):
        prepare(tiny_events, tiny_config)


def test_null_id_names_the_row(tiny_events, tiny_config):
    tiny_events["client_id"] = pd.array([2, 1, 1, None, 1, 3, 3, 2], dtype="Int64")

    with pytest.raises(DataError, match=r"id column 'client_id' has 1 null values \(first at row 3\)"):
        prepare(tiny_events, tiny_config)


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), -float("inf")])
def test_invalid_numeric_error_policy(tiny_events_pl, tiny_config, bad_value):
    events = tiny_events_pl.with_columns(
        pl.when(pl.int_range(pl.len()) == 4).then(bad_value).otherwise(pl.col("amount")).alias("amount")
    )

    with pytest.raises(DataError, match=r"'amount' has 1 NaN/inf/null values \(first at row 4\)"):
        prepare(events, tiny_config)


def test_invalid_numeric_fill_policy(tiny_events, tiny_config):
    tiny_events["amount"] = [10.0, np.nan, 5.0, np.inf, 2.5, 100.0, 1.0, 7.0]

    prepared = prepare(tiny_events, tiny_config, invalid_numeric="fill", fill_value=-1.0)

    assert prepared.report.events_out == 8
    assert prepared.report.rows_dropped == {"filled invalid 'amount' (kept)": 2}
    assert _row(prepared, 1)["amount"] == [5.0, -1.0, 2.5]
    assert _row(prepared, 2)["amount"] == [7.0, 10.0, -1.0]


def test_invalid_numeric_fill_value_applied_after_transform():
    prepared = prepare(
        _numeric_frame([1.0, float("nan"), 3.0]), id_column="id", time_column="t", numeric=["x"],
        numeric_transform={"x": "standardize"}, invalid_numeric="fill", fill_value=0.0,
    )

    # statistics ignore the NaN: mean 2, std sqrt(2); the filled value is exactly fill_value.
    np.testing.assert_allclose(_row(prepared, 1)["x"], [-1 / math.sqrt(2), 0.0, 1 / math.sqrt(2)], rtol=1e-6)


def test_invalid_numeric_drop_policy(tiny_events, tiny_config):
    tiny_events["amount"] = [10.0, np.nan, 5.0, np.inf, 2.5, None, 1.0, 7.0]

    prepared = prepare(tiny_events, tiny_config, invalid_numeric="drop")

    assert prepared.report.rows_in == 8
    assert prepared.report.events_out == 5
    assert prepared.report.rows_dropped == {"NaN/inf/null 'amount'": 3}
    assert _row(prepared, 1)["amount"] == [5.0, 2.5]
    # the null-mcc event of client 3 was dropped, so no value is left encoded as unknown
    assert prepared.report.unknown_values == {"mcc": 0}


def test_empty_input(tiny_events, tiny_config):
    with pytest.raises(DataError, match="empty"):
        prepare(tiny_events.iloc[0:0], tiny_config)


def test_corrupt_parquet_input_names_file(tiny_config, tmp_path):
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(np.random.default_rng(0).bytes(2048))

    with pytest.raises(FileFormatError, match="corrupt.parquet"):
        prepare(path, tiny_config)


def test_truncated_parquet_input_names_file(tiny_events_pl, tiny_config, tmp_path):
    whole = tmp_path / "whole.parquet"
    tiny_events_pl.write_parquet(whole)
    data = whole.read_bytes()
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(data[: len(data) // 2])

    with pytest.raises(FileFormatError, match="truncated.parquet"):
        prepare(truncated, tiny_config)


def test_corrupt_labels_file_names_file(tiny_events, tiny_config, tmp_path):
    path = tmp_path / "labels.parquet"
    path.write_bytes(b"not parquet at all")
    tiny_config.targets = {"churned": "binary"}

    with pytest.raises(FileFormatError, match="labels.parquet"):
        prepare(tiny_events, tiny_config, labels=path)


def test_missing_input_file_names_file(tiny_config, tmp_path):
    with pytest.raises(FileFormatError, match="absent.parquet"):
        prepare(tmp_path / "absent.parquet", tiny_config)


def test_unsupported_input_type(tiny_config):
    with pytest.raises(DataError, match="got list"):
        prepare([1, 2, 3], tiny_config)


def test_unknown_prepare_option(tiny_events, tiny_config):
    with pytest.raises(ConfigError, match="unknown prepare option 'min_frequncy'.*did you mean 'min_frequency'"):
        prepare(tiny_events, tiny_config, min_frequncy=2)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"invalid_numeric": "oops"}, "invalid_numeric='oops'"),
        ({"null_time": "keep"}, "null_time='keep'"),
        ({"entities_without_events": "ignore"}, "entities_without_events='ignore'"),
        ({"default_numeric_transform": "sqrt"}, "default_numeric_transform='sqrt'"),
        ({"numeric_transform": {"amount": "sqrt"}}, "numeric_transform.amount='sqrt'"),
        ({"numeric_transform": {"amont": "log"}}, "'amont'.*did you mean 'amount'"),
        ({"targets": {"churned": "ranking"}}, "targets.churned='ranking'"),
        ({"min_frequency": 0}, "min_frequency=0"),
        ({"max_vocab_size": 0}, "max_vocab_size=0"),
        ({"categorical": ["mcc", "mcc"]}, r"declared twice: \['mcc'\]"),
        ({"numeric": [TIME_COLUMN]}, "reserved"),
    ],
)
def test_bad_config_values(tiny_events, tiny_config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        prepare(tiny_events, tiny_config, **overrides)


def test_every_error_is_an_eventseq_error(tiny_events, tiny_config):
    tiny_config.categorical = ["nope"]

    with pytest.raises(EventseqError):
        prepare(tiny_events, tiny_config)


def test_report_summary_lists_drops():
    report = PrepareReport(
        rows_in=10, events_out=7, entities_out=2, rows_dropped={"null ts": 3},
        entities_dropped={"labelled but no events": 1}, unknown_values={"mcc": 4, "city": 0},
    )

    summary = report.summary()

    assert "rows in: 10" in summary
    assert "events out: 7 in 2 entities" in summary
    assert "rows dropped (null ts): 3" in summary
    assert "entities dropped (labelled but no events): 1" in summary
    assert "'mcc': 4 values encoded as unknown" in summary
    assert "city" not in summary


def test_saved_output_is_readable_as_plain_parquet(tiny_prepared, tmp_path):
    directory = tiny_prepared.save(tmp_path / "out")

    assert isinstance(directory, Path)
    assert pl.read_parquet(directory / "data.parquet").equals(tiny_prepared.table)


# ----------------------------------------------------------------------------- values that once passed silently


def _two_entities(**columns) -> pl.DataFrame:
    return pl.DataFrame({"id": [1, 1, 2, 2], "t": [1, 2, 3, 4], **columns})


def test_nan_in_a_float_categorical_is_unknown_not_a_category():
    events = _two_entities(c=[1.0, float("nan"), 2.0, 1.0])

    prepared = prepare(events, PrepareConfig(id_column="id", time_column="t", categorical=["c"]))

    assert prepared.schema.categorical[0].vocabulary == ["1.0", "2.0"]
    assert prepared.table["c"].to_list() == [[2, UNKNOWN_ID], [3, 2]]
    assert prepared.report.unknown_values == {"c": 1}


def test_values_beyond_float32_are_invalid_not_inf():
    events = _two_entities(x=[1e200, 1.0, 2.0, 3.0])
    config = PrepareConfig(id_column="id", time_column="t", numeric=["x"])

    with pytest.raises(DataError, match=r"'x' has 1 NaN/inf/null values \(first at row 0\), counting values beyond"):
        prepare(events, config)
    dropped = prepare(events, config, invalid_numeric="drop")
    assert dropped.table["x"].to_list() == [[1.0], [2.0, 3.0]]
    assert dropped.report.rows_dropped == {"NaN/inf/null 'x'": 1}


def test_standardizing_values_whose_std_overflows_is_refused():
    events = _two_entities(x=[1e200, -1e200, 2.0, 3.0])

    with pytest.raises(DataError, match=r"'x' cannot be standardized.*standard deviation overflows.*log_standardize"):
        prepare(events, PrepareConfig(id_column="id", time_column="t", numeric=["x"],
                                      numeric_transform={"x": "standardize"}))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_regression_target_is_refused(bad):
    labels = pl.DataFrame({"id": [1, 2], "y": [1.0, bad]})

    with pytest.raises(DataError, match=r"target 'y' has 1 NaN/inf values.*must be null"):
        prepare(_two_entities(), PrepareConfig(id_column="id", time_column="t", targets={"y": "regression"}),
                labels=labels)


def test_a_list_target_is_refused_with_the_multilabel_recipe():
    labels = pl.DataFrame({"id": [1, 2], "y": [[0, 1], [1, 0]]})

    with pytest.raises(ColumnError, match=r"target 'y' is a List\(Int64\) column.*one 0/1 column per label"):
        prepare(_two_entities(), PrepareConfig(id_column="id", time_column="t", targets={"y": "multilabel"}),
                labels=labels)


def test_entities_without_a_target_value_are_counted_in_the_report(tmp_path):
    labels = pl.DataFrame({"id": [1, 2], "y": [0.5, None]})
    config = PrepareConfig(id_column="id", time_column="t", targets={"y": "regression"})

    prepared = prepare(_two_entities(), config, labels=labels.head(1), output=tmp_path / "a")
    assert prepared.report.targets_missing == {"y": 1}
    assert json.loads((tmp_path / "a" / "report.json").read_text())["targets_missing"] == {"y": 1}
    assert "target 'y': 1 entities without a value" in prepared.report.summary()
    assert prepare(_two_entities(), config, labels=labels).report.targets_missing == {"y": 1}


def test_an_entity_whose_every_time_is_null_is_reported():
    events = _two_entities().with_columns(pl.when(pl.col("id") == 2).then(None).otherwise(pl.col("t")).alias("t"))

    report = prepare(events, PrepareConfig(id_column="id", time_column="t")).report

    assert report.entities_out == 1
    assert report.entities_dropped == {"every event had a null t": 1}
    assert report.rows_dropped == {"null t": 2}


def test_label_ids_of_another_dtype_or_null_are_named():
    config = PrepareConfig(id_column="id", time_column="t", targets={"y": "binary"})

    with pytest.raises(DataError, match=r"labels' 'id' is String but the events' is Int64.*first: 'c1'"):
        prepare(_two_entities(), config, labels=pl.DataFrame({"id": ["c1", "2"], "y": [0, 1]}))
    with pytest.raises(DataError, match=r"labels table has 1 rows with a null 'id'"):
        prepare(_two_entities(), config, labels=pl.DataFrame({"id": [1, None], "y": [0, 1]}))
    as_strings = prepare(_two_entities(), config, labels=pl.DataFrame({"id": ["1", "2"], "y": [0, 1]}))
    assert as_strings.table["y"].to_list() == [0, 1]  # "1" and "2" are ids an Int64 can hold


def test_quantize_buckets_are_bounded():
    with pytest.raises(ConfigError, match=r"quantize.x=100000: expected a whole number >= 2 and <= 1024"):
        prepare(_two_entities(x=[1.0, 2.0, 3.0, 4.0]),
                PrepareConfig(id_column="id", time_column="t", numeric=["x"], quantize={"x": 100_000}))


def test_pandas_frame_with_duplicate_column_names_is_named():
    frame = pd.DataFrame([[1, 1, 2.0, 3.0]], columns=["id", "t", "x", "x"])

    with pytest.raises(ColumnError, match=r"several columns named \['x'\]"):
        prepare(frame, PrepareConfig(id_column="id", time_column="t", numeric=["x"]))
