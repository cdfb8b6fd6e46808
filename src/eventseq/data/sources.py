"""Several event sources per entity (multimodal): card transactions + app events + ...

`merge_sources` stacks the sources' event tables into one time-ordered stream with a `source`
column; a column that a source lacks is null for its events. `prepare` (given a dict of sources)
then records in `Schema.sources` which features each source has: numerics a source lacks are 0 for
its events instead of "invalid", categoricals it lacks are the unknown id, and the EventEncoder
gives every source its own encoder over its own fields (nn/event_encoder.py). So one sequence table
and one batch type carry all sources, and every objective (supervised, CoLES, ...) works unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from eventseq.data.inputs import EventsLike, read_events
from eventseq.errors import ColumnError, ConfigError, DataError

if TYPE_CHECKING:
    from eventseq.data.prepare_config import PrepareConfig

SOURCE_COLUMN = "source"


def merge_sources(
    sources: dict[str, object], id_column: str, time_column: str, source_column: str = SOURCE_COLUMN
) -> pl.LazyFrame:
    """Stack several event tables into one stream with a `source_column` naming each row's source.

    Args:
        sources: source name -> events (pandas, Polars, LazyFrame or a Parquet/CSV path).
        id_column, time_column: present in every source, with the same meaning and type.
        source_column: name of the added column.

    Returns:
        A LazyFrame with the union of the columns; columns a source lacks are null for its rows.
        Rows keep their source order; prepare sorts by time (stable), so same-time events of
        different sources follow the order of `sources`.

    Raises:
        ConfigError: fewer than one source, a reserved or empty name.
        ColumnError: a source lacks the id or time column, a shared column has different types,
            or a source already has a column called `source_column`.
    """
    if not sources:
        raise ConfigError("sources is empty: give at least one event table")
    frames = []
    dtypes: dict[str, tuple[str, pl.DataType]] = {}
    for name, events in sources.items():
        if not name:
            raise ConfigError("a source needs a non-empty name")
        frame = read_events(events)  # type: ignore[arg-type]
        schema = frame.collect_schema()
        for required in (id_column, time_column):
            if required not in schema.names():
                raise ColumnError(f"source '{name}' has no column '{required}' (columns: {schema.names()})")
        if source_column in schema.names():
            raise ColumnError(f"source '{name}' already has a column '{source_column}', which merging adds")
        for column, dtype in schema.items():
            if column in dtypes and dtypes[column][1] != dtype:
                other, other_dtype = dtypes[column]
                if not (dtype.is_numeric() and other_dtype.is_numeric()):
                    raise ColumnError(
                        f"column '{column}' is {other_dtype} in source '{other}' but {dtype} in source "
                        f"'{name}': a shared column needs one type (rename or cast it)"
                    )
            dtypes.setdefault(column, (name, dtype))
        frames.append(frame.with_columns(pl.lit(name).alias(source_column)))
    try:
        return pl.concat(frames, how="diagonal_relaxed")
    except pl.exceptions.PolarsError as error:
        raise DataError(f"cannot merge the sources {list(sources)}: {error}") from None


def fit_sources(frame: pl.DataFrame | pl.LazyFrame, source_column: str, features: list[str]) -> dict[str, list[str]]:
    """Source -> the features it has (any non-null value among its rows), in feature order."""
    present = (
        frame.lazy().group_by(source_column)
        .agg([pl.col(name).is_not_null().any().alias(name) for name in features])
        .sort(source_column)
        .collect(engine="streaming")
    )
    return {
        str(row[source_column]): [name for name in features if row[name]]
        for row in present.iter_rows(named=True)
    }


def merge_declared(sources: dict[str, EventsLike], config: PrepareConfig) -> pl.LazyFrame:
    """Several sources → one stream (`merge_sources`); sets, on `config`, the source column as a categorical."""
    config.source_column = config.source_column or SOURCE_COLUMN
    if config.source_column not in config.categorical:
        config.categorical = [*config.categorical, config.source_column]
    return merge_sources(sources, config.id_column, config.time_column, config.source_column)
