"""From a raw event log to a sequence table: one row per entity, one list column per feature.

This module is the orchestration; each step lives in its own module:

- `prepare_config.py`: `PrepareConfig`, the declaration of the columns and policies;
- `inputs.py`: reading and checking the event and label tables;
- `fit.py`: fitting the `Schema` (vocabularies, statistics, target classes);
- `encode.py`: encoding events with a schema (`encode_events`, the path inference takes too);
- `store.py`: `PreparedData`, the prepare directory on disk, `load_prepared`;
- `hashing.py`: the entity-id hash that assigns entities to shards;
- `spark.py`: the same steps as a PySpark job (`engine="spark"`).

scikit-learn contract: `SequencePreparer(config)` stores the declaration, `fit` learns the `Schema`,
`transform` encodes events with it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import polars as pl

from eventseq._io import PART_FILE, write_parquet
from eventseq.config import with_overrides
from eventseq.data.encode import encode_events, encode_frame, event_bpe, labels_with_event_ids, labels_with_events
from eventseq.data.fit import fit_schema
from eventseq.data.hashing import entity_shards
from eventseq.data.inputs import ROW_COLUMN, EventsLike, load_inputs, scan_inputs
from eventseq.data.prepare_config import ENGINES, PrepareConfig, check_shards
from eventseq.data.schema import Schema
from eventseq.data.sources import merge_declared
from eventseq.data.store import (
    DATA_FILE,
    PreparedData,
    PrepareReport,
    add_report,
    check_prepare_output,
    load_prepared,
    prepared_directory,
    sequence_arrow,
    write_schema_and_report,
)
from eventseq.errors import ConfigError, DataError
from eventseq.progress import progress_bar


class SequencePreparer:
    """Fits a Schema on an event table and encodes event tables into sequence tables."""

    def __init__(self, config: PrepareConfig) -> None:
        self.config = config

    def fit(self, events: EventsLike, labels: EventsLike | None = None) -> SequencePreparer:
        """Learn vocabularies, numeric statistics, target classes (and event-BPE merges). Returns self."""
        self._fit(events, labels, encode_labels=False)
        return self

    def transform(self, events: EventsLike, labels: EventsLike | None = None) -> PreparedData:
        """Encode events (and attach the labels' targets) with the fitted schema."""
        if not hasattr(self, "schema_"):
            raise ConfigError("SequencePreparer.transform called before fit")
        return encode_events(events, self.schema_, labels, targets=list(self.config.targets), config=self.config)

    def fit_transform(self, events: EventsLike, labels: EventsLike | None = None) -> PreparedData:
        """Fit the schema and encode the same events (with the labels' targets) with it."""
        prepared = self._fit(events, labels, encode_labels=True)
        assert prepared is not None
        return prepared

    def _fit(self, events: EventsLike, labels: EventsLike | None, encode_labels: bool,
             done: Callable[[str], None] = lambda step: None) -> PreparedData | None:
        """Fit `schema_`; the events encoded with it when `encode_labels` or event BPE needs them (else None).

        The labels give the target classes; their rows are checked against the events only when encoded
        (fit alone does not care about a labelled entity without events). `done(step)` is told when the
        read, fit and encode steps end (a progress bar).
        """
        config = self.config
        config.validate()
        frame, label_frame = load_inputs(events, labels, config)
        done(f"read {frame.height:,} rows")
        self.schema_ = fit_schema(frame, label_frame, config)
        done("fitted the schema")
        if not (encode_labels or config.bpe_fields):
            return None
        targets = list(config.targets) if encode_labels else []
        prepared = encode_frame(frame, label_frame if encode_labels else None, self.schema_, targets, config)
        prepared = event_bpe(prepared, config)  # the merges are learned on the encoded events
        self.schema_ = prepared.schema
        done(f"encoded {prepared.table.height:,} entities")
        return prepared


def prepare(
    events: EventsLike | dict[str, EventsLike],
    config: PrepareConfig | None = None,
    labels: EventsLike | None = None,
    output: str | os.PathLike | None = None,
    engine: str = "polars",
    shards: int | None = None,
    progress: bool = False,
    **overrides: Any,
) -> PreparedData:
    """Fit a schema on raw events and encode them into a sequence table.

    Args:
        events: raw event table: pandas/Polars DataFrame, Polars LazyFrame, or a Parquet/CSV path
            (with engine="spark" also a PySpark DataFrame); or a dict source name -> such a table
            (several sources, merged by time).
        config: the column declaration; keyword `overrides` set individual PrepareConfig fields.
        labels: optional per-entity labels (id column + target columns).
        output: if given, a directory to write data.parquet, schema.json and report.json into.
        engine: "polars" (in process) or "spark" (a PySpark job, `eventseq.data.spark`: the same
            schema and table; the result is collected here, so for tables larger than this
            process's memory call `eventseq.data.spark.prepare_spark` or the CLI instead).
        shards: write data.parquet as a directory of this many part files (see PreparedData.save);
            None: one file with polars, one part per million events with spark.
        progress: show the steps (read, fit, encode, write) as a bar with their elapsed time (polars).

    Returns:
        PreparedData (table, schema, report).

    Raises:
        ColumnError, DataError, ConfigError, FileFormatError: bad input, with the column/row/file named.
    """
    config = with_overrides(config if config is not None else PrepareConfig(), overrides, "prepare",
                            ("engine", "shards"))
    if engine not in ENGINES:
        raise ConfigError(f"engine={engine!r}: expected one of {list(ENGINES)}")
    if shards is not None:
        check_shards(shards)
    if output is not None:
        check_prepare_output(output)
    if engine == "spark":
        from eventseq.data.spark import prepare_spark

        result = prepare_spark(events, config, labels, output=output, shards=shards)
        if output is None:
            return result.to_prepared()
        return PreparedData(table=load_prepared(output).table, schema=result.schema, report=result.report)
    if isinstance(events, dict):
        events = merge_declared(events, config)
    with progress_bar("prepare", progress, total=3 + (output is not None), unit=" steps") as bar:
        def done(step: str) -> None:
            bar.set_postfix_str(step, refresh=False)
            bar.update()

        prepared = SequencePreparer(config)._fit(events, labels, encode_labels=True, done=done)
        assert prepared is not None
        if output is not None:
            prepared.save(output, shards=shards)
            done(f"wrote {output}")
    return prepared


def prepare_in_shards(
    events: EventsLike | dict[str, EventsLike],
    config: PrepareConfig,
    output: str | os.PathLike,
    shards: int,
    labels: EventsLike | None = None,
    progress: bool = False,
) -> tuple[Schema, PrepareReport]:
    """Prepare an event log larger than memory with Polars: the memory held is one shard's.

    The schema is fitted with streaming aggregations over the whole log (`fit_statistics`); then
    the entities are split by a hash of their id into `shards` groups, and each group is read
    (streaming scan + filter), encoded by the same `encode_frame` as `prepare` and written as one
    part file `output/data.parquet/part-<k>.parquet` before the next is read (`hashing.entity_shards`:
    the same entity lands in the same part on every run). Event BPE learns its
    merges on the first non-empty shard (a sample of entities) and applies them to every shard.
    The part files hold whole entities, sorted by id within each part.

    Args:
        events: raw events (a Parquet file or directory, CSV, a LazyFrame, a DataFrame) or a dict of
            sources.
        config: the column declaration and policies.
        output: the prepare directory to write (data.parquet/, schema.json, report.json).
        shards: number of hash groups (= part files; empty groups write no file).
        labels: optional per-entity labels table (read into memory: one row per entity).
        progress: a bar over the shards, with rate and ETA, once the schema is fitted.

    Returns:
        (schema, report), summed over the shards; the table is never held whole.

    Raises:
        ConfigError: text fields (their ids are per dataset), bad shards; otherwise as `prepare`.
    """
    config = dataclasses.replace(config)
    check_shards(shards)
    check_prepare_output(output)
    if isinstance(events, dict):
        events = merge_declared(events, config)
    config.validate()
    if config.text:
        raise ConfigError("text fields are not supported with shards= yet (their ids are per dataset): "
                          "prepare them in one piece")
    lazy, label_frame = scan_inputs(events, labels, config)
    lazy = lazy.with_row_index(ROW_COLUMN)  # row numbers of the whole input, for error messages
    raw_schema = fit_schema(lazy, label_frame, config)  # streaming aggregations: the events are never held
    schema: Schema | None = None  # with event BPE: learned on the first shard
    id_column = config.id_column
    ids = lazy.select(pl.col(id_column).unique()).collect(engine="streaming").get_column(id_column)
    if ids.null_count():  # as encode_frame says it for one piece
        nulls = lazy.filter(pl.col(id_column).is_null()).select(pl.len(), pl.col(ROW_COLUMN).first())
        count, row = nulls.collect(engine="streaming").row(0)
        raise DataError(f"id column '{id_column}' has {count:,} null values (first at row {row})")
    shard_of_id = pl.Series(entity_shards(ids.to_arrow(), shards))
    report = PrepareReport()
    if label_frame is not None:
        label_frame = labels_with_event_ids(label_frame, id_column, ids.dtype)
        # labelled entities without events belong to no shard: refused or reported here, once
        label_frame = labels_with_events(label_frame, ids, config, report)
    with prepared_directory(output) as directory, progress_bar("prepare", progress, shards, " shards") as bar:
        parts = directory / DATA_FILE
        parts.mkdir()
        written = 0
        for shard in range(shards):
            shard_ids = ids.filter(shard_of_id == shard)
            if shard_ids.len():  # an empty hash group writes no file
                frame = lazy.filter(pl.col(id_column).is_in(shard_ids)).collect(engine="streaming")
                shard_labels = None if label_frame is None else label_frame.filter(pl.col(id_column).is_in(shard_ids))
                prepared = event_bpe(encode_frame(frame, shard_labels, raw_schema, list(config.targets), config),
                                     config, schema)
                schema = prepared.schema
                add_report(report, prepared.report)
                write_parquet(sequence_arrow(prepared.table, schema), parts / PART_FILE.format(index=written))
                written += 1
                bar.set_postfix_str(f"{report.events_out:,} events", refresh=False)
                del frame, prepared
            bar.update()
        write_schema_and_report(directory, schema or raw_schema, report)
    return schema or raw_schema, report
