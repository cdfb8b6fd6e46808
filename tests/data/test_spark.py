"""Tests for eventseq.data.spark: the Spark engine prepares exactly what the Polars engine prepares."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import shutil
import sys

import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from eventseq.cli import main
from eventseq.data import PrepareConfig, PreparedData, load_prepared, prepare
from eventseq.data.store import SCHEMA_METADATA_KEY
from eventseq.data.schema import UNKNOWN_ID, Schema
from eventseq.datasets import SYNTHETIC_COLUMNS
from eventseq.errors import ColumnError, ConfigError, DataError

START = dt.datetime(2024, 3, 1)

# Input order matters. Time ties: client 1 (rows 1, 4), client 2 (rows 0, 3), client 4 (rows 9, 10)
# must keep input order. With min_frequency=2: mcc 'rare' (1x) and null map to unknown, channel 9
# (1x) too. Row 6 has no time (dropped, reported); row 7's amount is NaN (dropped under
# invalid_numeric=drop). Client 7 is labelled but has no events (dropped under
# entities_without_events=drop); client 10 has no label (null segment, spend). `region` is a target
# taken from the event table (constant per client).
EVENT_ROWS = {
    "client_id": [2, 1, 1, 2, 1, 3, 3, 3, 2, 4, 4, 10, 4],
    "ts": [START + dt.timedelta(seconds=s) if s is not None else None
           for s in [30, 20, 10, 30, 20, 5, None, 15, 10, 7, 7, 1, 3]],
    "mcc": ["food", "travel", "food", "cash", "food", None, "travel", "travel", "rare", "cash", "cash", "food", "fuel"],
    "channel": [1, 2, 1, 1, 2, 9, 1, 2, 1, 2, 2, 1, 1],
    "amount": [10.0, -3.0, 5.0, 0.0, 2.5, 100.0, 1.0, math.nan, 7.0, 3.0, 4.0, 1e6, -0.5],
    "qty": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
    "region": ["n", "n", "n", "n", "n", "s", "s", "s", "n", "s", "s", "s", "s"],  # a target, constant per client
}
LABEL_ROWS = {
    "client_id": [1, 2, 3, 4, 7],
    "segment": ["b", "a", "c", "a", "b"],
    "spend": [1.5, 2.0, 0.0, 3.25, 9.0],
}
CONFIG = PrepareConfig(
    id_column="client_id", time_column="ts", categorical=["mcc", "channel"], numeric=["amount", "qty"],
    numeric_transform={"amount": "log_standardize"}, min_frequency=2,
    targets={"segment": "multiclass", "spend": "regression", "region": "binary"},
    invalid_numeric="drop", entities_without_events="drop",
)


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (one core) for the whole test run; eventseq reuses the active session.

    Tests that need it are skipped where Java is missing (Spark runs on the JVM); the others run.
    """
    if shutil.which("java") is None:
        pytest.skip("the Spark engine needs Java 17+ and there is no `java` on PATH")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "3")  # input DataFrames come in 3 partitions
        .config("spark.sql.session.timeZone", "UTC")
        # tiny data: compiling generated code and the JVM's optimising compiler cost more than they save
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def polars_prepared() -> PreparedData:
    return prepare(pl.DataFrame(EVENT_ROWS), CONFIG, labels=pl.DataFrame(LABEL_ROWS))


def _spark_events(spark):
    """EVENT_ROWS as a Spark DataFrame, in input order, in several partitions (spark.default.parallelism)."""
    events = pl.DataFrame(EVENT_ROWS).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))  # naive = UTC
    frame = spark.createDataFrame(events.to_arrow(compat_level=pl.CompatLevel.oldest()))
    assert frame.rdd.getNumPartitions() == 3  # ties must keep input order across partitions too
    return frame


def _assert_same(actual: PreparedData, expected: PreparedData) -> None:
    """Same report and table, and the same schema up to float rounding of the fitted mean/std."""
    assert actual.report == expected.report
    actual_schema, expected_schema = actual.schema.to_dict(), expected.schema.to_dict()
    for got, want in zip(actual_schema["features"], expected_schema["features"]):
        for key in ("mean", "std"):
            if key in want:
                assert got.pop(key) == pytest.approx(want.pop(key), rel=1e-12)
    assert actual_schema == expected_schema
    # ids, times and categorical ids exactly; float32 values to the last bits of rounding
    assert_frame_equal(actual.table, expected.table, check_exact=False, rel_tol=1e-6, abs_tol=0.0)
    exact = [c for c, dtype in expected.table.schema.items() if dtype not in (pl.List(pl.Float32), pl.Float32)]
    assert_frame_equal(actual.table.select(exact), expected.table.select(exact), check_exact=True)


# ----------------------------------------------------------------------------- same result as Polars


def test_pandas_polars_and_spark_prepare_the_same(spark, polars_prepared):
    pandas_prepared = prepare(pd.DataFrame(EVENT_ROWS), CONFIG, labels=pd.DataFrame(LABEL_ROWS))
    spark_prepared = prepare(pd.DataFrame(EVENT_ROWS), CONFIG, labels=pd.DataFrame(LABEL_ROWS), engine="spark")

    assert_frame_equal(pandas_prepared.table, polars_prepared.table, check_exact=True)
    assert pandas_prepared.schema == polars_prepared.schema
    _assert_same(spark_prepared, polars_prepared)
    # what the shared behaviour is, so that "the same" is not vacuous
    schema, report = spark_prepared.schema, spark_prepared.report
    assert schema.categorical[0].vocabulary == ["food", "cash", "travel"]  # food 4x; cash, travel 3x: by value
    assert schema.categorical[1].vocabulary == ["1", "2"]
    assert report.rows_dropped == {"null ts": 1, "NaN/inf/null 'amount'": 1}
    assert report.entities_dropped == {"labelled but no events": 1}
    assert report.unknown_values == {"mcc": 3, "channel": 1}
    client_4 = spark_prepared.table.filter(pl.col("client_id") == 4).row(0, named=True)
    assert client_4["mcc"] == [UNKNOWN_ID, 3, 3]  # fuel (rare) at t=3, then the tie at t=7
    assert client_4["qty"] == [13.0, 10.0, 11.0]  # the tie keeps input order
    assert spark_prepared.table["client_id"].to_list() == [1, 2, 3, 4, 10]
    assert spark_prepared.table["segment"].to_list() == [1, 0, 2, 0, None]  # from the labels table
    assert spark_prepared.table["region"].to_list() == [0, 0, 1, 1, 1]  # from the event table


@pytest.fixture(scope="module")
def spark_output(spark, tmp_path_factory):
    """Spark engine on a 3-partition Spark DataFrame, written as 3 shards."""
    output = tmp_path_factory.mktemp("spark") / "prepared"
    labels = spark.createDataFrame(pd.DataFrame(LABEL_ROWS))
    prepared = prepare(_spark_events(spark), CONFIG, labels=labels, output=output,
                       engine="spark", shards=3)
    return output, prepared


def test_spark_dataframe_input_sharded_output_round_trips(spark_output, polars_prepared):
    output, prepared = spark_output

    _assert_same(load_prepared(output), polars_prepared)
    _assert_same(prepared, polars_prepared)


def test_sharded_output_layout(spark_output, polars_prepared):
    output, _ = spark_output

    assert sorted(p.name for p in output.iterdir()) == ["data.parquet", "report.json", "schema.json"]
    parts = sorted((output / "data.parquet").iterdir())
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    ids = [pq.read_table(p).column("client_id").to_pylist() for p in parts]
    assert sum(ids, []) == [1, 2, 3, 4, 10]  # whole entities, disjoint, in id order across parts
    polars_types = polars_prepared.table.to_arrow().schema.types  # the Arrow types of a Polars-engine file
    for part in parts:
        arrow_schema = pq.read_schema(part)
        assert Schema.from_json(arrow_schema.metadata[SCHEMA_METADATA_KEY].decode()) == load_prepared(output).schema
        assert arrow_schema.types == polars_types
    assert ds.dataset(output / "data.parquet").to_table().num_rows == 5  # pyarrow reads the directory
    alone = load_prepared(output / "data.parquet")  # the parts alone: schema from their metadata
    assert alone.table.equals(load_prepared(output).table)


def test_polars_engine_writes_the_same_sharded_layout(polars_prepared, tmp_path):
    polars_prepared.save(tmp_path / "first")  # one file first: shards replace it with a directory
    polars_prepared.save(tmp_path / "first", shards=2)

    parts = sorted((tmp_path / "first" / "data.parquet").iterdir())
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet"]
    assert [pq.read_table(p).num_rows for p in parts] == [2, 3]
    assert load_prepared(tmp_path / "first").table.equals(polars_prepared.table)
    polars_prepared.save(tmp_path / "first")  # and back to one file
    assert (tmp_path / "first" / "data.parquet").is_file()


def test_cli_prepare_engine_spark_shards(spark, tmp_path):
    data = tmp_path / "data"
    assert main(["generate", f"output={data}", "n_entities=40"]) == 0
    common = [f"input={data / 'events.parquet'}", f"labels={data / 'labels.parquet'}", "id_column=entity_id",
              "time_column=event_time", "categorical=[mcc,channel]", "numeric=[amount]", "targets={label:binary}"]

    assert main(["prepare", *common, f"output={tmp_path / 'polars'}"]) == 0
    assert main(["prepare", *common, f"output={tmp_path / 'spark'}", "engine=spark", "shards=4"]) == 0

    parts = sorted(p.name for p in (tmp_path / "spark" / "data.parquet").iterdir())
    assert parts == [f"part-0000{i}.parquet" for i in range(4)]
    _assert_same(load_prepared(tmp_path / "spark"), load_prepared(tmp_path / "polars"))


def test_docs_spark_example_runs(spark, tmp_path, monkeypatch, python_block):
    monkeypatch.chdir(tmp_path)
    code = python_block("data.md", "## `prepare` with Spark: `engine=spark`")

    namespace: dict = {}
    exec(compile(code, "docs", "exec"), namespace)

    assert len(list((tmp_path / "prepared_spark" / "data.parquet").glob("part-*.parquet"))) == 4
    assert namespace["table"].height == 500
    polars = prepare("events.parquet", PrepareConfig(**SYNTHETIC_COLUMNS), labels=namespace["data"].labels)
    _assert_same(load_prepared("prepared_spark"), polars)


# ----------------------------------------------------------------------------- bad input


def _error(engine: str, events: pl.DataFrame, **overrides) -> Exception:
    with pytest.raises(Exception) as caught:
        prepare(events, CONFIG, labels=pl.DataFrame(LABEL_ROWS), engine=engine, **overrides)
    return caught.value


@pytest.mark.parametrize(
    "change, overrides, error_class, named",
    [
        ({}, {"categorical": ["mcc", "chanel"]}, ColumnError, "'chanel' not found in the event table (did you"),
        ({"ts": [str(t) for t in EVENT_ROWS["ts"]]}, {}, ColumnError, "time column 'ts'"),
        ({"client_id": [2, 1, None, *EVENT_ROWS["client_id"][3:]]}, {}, DataError, "first at row 2"),
        ({}, {"invalid_numeric": "error"}, DataError, "first at row 7"),
        ({}, {"targets": {"segment": "binary"}}, DataError, "target 'segment'"),
        ({"region": ["n", "n", "n", "s", *EVENT_ROWS["region"][4:]]}, {}, DataError, "within entity 2"),
    ],
    ids=["missing-column", "string-time", "null-id", "nan-numeric", "binary-with-three-classes",
         "target-not-constant"],
)
def test_bad_input_raises_the_polars_engines_error(spark, change, overrides, error_class, named):
    events = pl.DataFrame({**EVENT_ROWS, **change})

    expected = _error("polars", events, **overrides)
    actual = _error("spark", events, **overrides)

    assert type(expected) is error_class and type(actual) is error_class
    assert named in str(actual)
    assert str(actual) == str(expected)


def test_spark_dataframe_needs_engine_spark(spark):
    with pytest.raises(DataError, match="engine='spark'"):
        prepare(spark.createDataFrame(pd.DataFrame(LABEL_ROWS)), CONFIG)


def test_unknown_engine_and_bad_shards():
    with pytest.raises(ConfigError, match="engine='dask'"):
        prepare(pl.DataFrame(EVENT_ROWS), CONFIG, engine="dask")
    with pytest.raises(ConfigError, match="shards=0"):
        prepare(pl.DataFrame(EVENT_ROWS), CONFIG, shards=0)


def test_spark_engine_refuses_what_it_does_not_support_yet(tmp_path):
    events = pl.DataFrame({"client": [1, 1], "ts": [1, 2], "mcc": ["a", "b"], "amount": [1.0, 2.0]})
    config = PrepareConfig(id_column="client", time_column="ts", categorical=["mcc"], numeric=["amount"],
                           quantize={"amount": 2})
    with pytest.raises(ConfigError, match="engine=spark does not support quantize"):
        prepare(events, config, engine="spark")
    with pytest.raises(ConfigError, match="several sources"):
        prepare({"card": events, "app": events.drop("amount", "mcc")}, dataclasses.replace(config, quantize={}),
                engine="spark")


def test_spark_reads_integer_times_in_time_unit_and_refuses_implausible_ones(spark):
    millis = pl.DataFrame({"id": [1, 1, 2], "t": [1_700_000_000_999, 1_700_000_005_000, -1], "x": [1.0, 2.0, 3.0]})
    config = PrepareConfig(id_column="id", time_column="t", numeric=["x"])

    _assert_same(prepare(millis.to_pandas(), config, engine="spark", time_unit="ms"),
                 prepare(millis, config, time_unit="ms"))
    with pytest.raises(DataError, match=r"time column 't' has 2 integer values.*row 0.*time_unit=ms"):
        prepare(millis.to_pandas(), config, engine="spark")


def test_spark_treats_nan_categoricals_huge_values_and_timeless_entities_as_polars_does(spark, tmp_path):
    events = pl.DataFrame({"id": [1, 1, 2, 2, 3], "t": [1, 2, 3, 4, None], "c": [1.0, float("nan"), 2.0, 1.0, 1.0],
                           "x": [1e200, 1.0, 2.0, 3.0, 4.0]})
    labels = pl.DataFrame({"id": [1, 2], "y": [0.5, None]})
    config = PrepareConfig(id_column="id", time_column="t", categorical=["c"], numeric=["x"],
                           invalid_numeric="drop", targets={"y": "regression"})

    events.write_parquet(tmp_path / "events.parquet")
    labels.write_parquet(tmp_path / "labels.parquet")
    expected = prepare(events, config, labels=labels)
    _assert_same(prepare(tmp_path / "events.parquet", config, labels=tmp_path / "labels.parquet", engine="spark"),
                 expected)
    assert expected.report.entities_dropped == {"every event had a null t": 1}
    assert expected.report.targets_missing == {"y": 1}
    assert expected.report.unknown_values == {"c": 1}  # the NaN of entity 1, not a category "NaN"
    assert expected.report.rows_dropped == {"null t": 1, "NaN/inf/null 'x'": 1}  # 1e200 is beyond float32
