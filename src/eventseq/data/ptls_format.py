"""ptls-format Parquet: what pytorch-lifestream users already have on disk.

That layout is one row per entity, one list column per event feature and an `event_time` list
column — the same shape as our sequence table. Reading one explodes it back into events and runs
the ordinary `prepare` (so vocabularies, transforms and the schema are fitted exactly as for raw
logs); writing one drops our metadata and keeps the columns ptls expects.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from eventseq._io import read_parquet, write_parquet
from eventseq.data.prepare import prepare
from eventseq.data.prepare_config import PrepareConfig
from eventseq.data.schema import TIME_COLUMN
from eventseq.data.store import PreparedData
from eventseq.errors import ColumnError, did_you_mean


def read_ptls_parquet(
    path: str | os.PathLike, config: PrepareConfig, output: str | os.PathLike | None = None
) -> PreparedData:
    """Prepare a ptls-format Parquet file (or directory of files).

    Args:
        path: Parquet with one row per entity and list columns (`event_time` + features).
        config: the usual declaration; `time_column` names the time list column (often
            `event_time`), `categorical`/`numeric` the feature list columns, `targets` scalar columns.
        output: optional directory to write the prepared data into.

    Raises:
        ColumnError: a declared column is missing or is not a list column.
    """
    path = Path(path)
    table = pl.from_arrow(read_parquet(path)) if path.is_file() else pl.read_parquet(path)
    list_columns = [config.time_column, *config.categorical, *config.numeric]
    for column in [config.id_column, *list_columns, *config.targets]:
        if column not in table.columns:
            raise ColumnError(
                f"ptls file {path} has no column '{column}'{did_you_mean(column, table.columns)}; "
                f"columns: {table.columns}"
            )
    for column in list_columns:
        if not isinstance(table.schema[column], pl.List):
            raise ColumnError(f"ptls column '{column}' in {path} is {table.schema[column]}: expected a list column")
    targets = list(config.targets)
    events = table.select(config.id_column, *list_columns).explode(list_columns)
    labels = table.select(config.id_column, *targets) if targets else None
    return prepare(events, config, labels=labels, output=output)


def write_ptls_parquet(prepared: PreparedData, path: str | os.PathLike) -> Path:
    """Write a sequence table in ptls layout: id, `event_time` and feature lists, targets.

    Categorical ids keep our encoding (0 = padding, 1 = unknown, 2.. values), which ptls's
    embeddings accept as they are.
    """
    schema = prepared.schema
    columns = [schema.id_column, TIME_COLUMN, *schema.feature_names, *[t.name for t in schema.targets]]
    columns = [c for c in columns if c in prepared.table.columns]
    write_parquet(prepared.table.select(columns).to_arrow(), path)
    return Path(path)
