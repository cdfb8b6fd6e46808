"""Tests for prepare_in_shards: the bounded-memory Polars path gives what prepare gives."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from eventseq.data import PrepareConfig, load_prepared, prepare
from eventseq.data.prepare import prepare_in_shards
from eventseq.datasets import SYNTHETIC_COLUMNS, make_transactions
from eventseq.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    data = make_transactions(n_entities=300, seed=3)
    directory = tmp_path_factory.mktemp("raw")
    third = data.events.height // 3 + 1
    for index in range(3):  # three files, read back in name order: the original row order
        data.events.slice(index * third, third).write_parquet(directory / f"events-{index}.parquet")
    return data, directory


def _sorted(table: pl.DataFrame) -> pl.DataFrame:
    return table.sort("entity_id")


@pytest.mark.parametrize("changes", [{}, {"quantize": {"amount": 4}, "bpe_fields": ["mcc"], "bpe_merges": 20}],
                         ids=["plain", "bpe"])
def test_shards_give_the_same_table_schema_and_report(raw, tmp_path, changes):
    data, directory = raw
    events = pl.concat([pl.read_parquet(path) for path in sorted(directory.glob("*.parquet"))])
    config = PrepareConfig(**{**SYNTHETIC_COLUMNS, **changes})
    whole = prepare(events, config, labels=data.labels)
    schema, report = prepare_in_shards(events, config, tmp_path / "out", shards=4, labels=data.labels)
    parts = sorted((tmp_path / "out" / "data.parquet").glob("part-*.parquet"))
    assert len(parts) == 4
    ids = [set(pl.read_parquet(part)["entity_id"].to_list()) for part in parts]
    assert sum(map(len, ids)) == len(set().union(*ids)) == 300  # whole entities, each in one part
    loaded = load_prepared(tmp_path / "out")
    if not changes:  # BPE learns its merges on the first shard only, so its tokens differ
        assert schema == whole.schema
        assert_frame_equal(_sorted(loaded.table), _sorted(whole.table))
        assert report == whole.report
    else:
        assert schema.bpe is not None and schema.numeric[0].edges == whole.schema.numeric[0].edges
        counts = np.expm1(loaded.table["token_events"].explode().to_numpy()).round().sum()
        assert counts == report.events_out == events.height > report.tokens_out


def test_cli_streams_a_parquet_directory(raw, tmp_path):
    from eventseq.cli import main

    data, directory = raw
    data.labels.write_parquet(tmp_path / "labels.parquet")
    code = main(["prepare", f"input={directory}", f"labels={tmp_path / 'labels.parquet'}", "shards=3",
                 f"output={tmp_path / 'out'}", "id_column=entity_id", "time_column=event_time",
                 "categorical=[mcc,channel]", "numeric=[amount]", "targets={label:binary}"])
    assert code == 0
    loaded = load_prepared(tmp_path / "out")
    assert loaded.table.height == 300 and loaded.table["event_time"].list.len().sum() == data.events.height
    assert loaded.table["entity_id"].is_sorted()


def test_errors_name_the_row_of_the_whole_input(tmp_path):
    events = pl.DataFrame({"id": [1, 2, 3, None, 5], "t": [1, 2, 3, 4, 5], "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    with pytest.raises(DataError, match=r"first at row 3"):
        prepare_in_shards(events, PrepareConfig(id_column="id", time_column="t", numeric=["x"]), tmp_path, 2)
    with pytest.raises(ConfigError, match="text fields"):
        prepare_in_shards(events.with_columns(pl.lit("a").alias("name")),
                          PrepareConfig(id_column="id", time_column="t", text=["name"]), tmp_path, 2)
    with pytest.raises(ConfigError, match="shards=0"):
        prepare_in_shards(events, PrepareConfig(id_column="id", time_column="t"), tmp_path, 0)


def test_labelled_entities_without_events_are_refused_or_reported_as_prepare_does(raw, tmp_path):
    data, _ = raw
    labels = pl.concat([data.labels, data.labels.head(2).with_columns(pl.col("entity_id") + 10_000)])
    config = PrepareConfig(**SYNTHETIC_COLUMNS)
    with pytest.raises(DataError, match=r"2 labelled entities have no events \(first: 10000\)"):
        prepare_in_shards(data.events, config, tmp_path / "refused", shards=3, labels=labels)
    config.entities_without_events = "drop"
    whole = prepare(data.events, config, labels=labels)
    _, report = prepare_in_shards(data.events, config, tmp_path / "dropped", shards=3, labels=labels)
    assert report.entities_dropped == whole.report.entities_dropped == {"labelled but no events": 2}
    assert report == whole.report


def test_progress_counts_the_shards_and_the_steps(raw, tmp_path, capsys):
    data, _ = raw
    config = PrepareConfig(**SYNTHETIC_COLUMNS)
    prepare_in_shards(data.events, config, tmp_path / "sharded", shards=3, labels=data.labels, progress=True)
    bar = capsys.readouterr().err
    assert "prepare: 100%" in bar and "3/3" in bar and "shards" in bar and f"{data.events.height:,} events" in bar
    prepare(data.events, config, labels=data.labels, output=tmp_path / "whole", progress=True)
    bar = capsys.readouterr().err
    assert "4/4" in bar and f"wrote {tmp_path / 'whole'}" in bar
    prepare(data.events, config, labels=data.labels)  # off by default in the API
    assert capsys.readouterr().err == ""
