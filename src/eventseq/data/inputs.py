"""Reading a user's event table: pandas, Polars (eager or lazy), or a CSV/Parquet path, checked.

Every reader of raw events (prepare, predict on raw events, several sources, rec prepare) goes
through `read_events`, so a file problem is named the same way everywhere: a missing or empty
file, a directory without Parquet files, parts that disagree, a pandas column of mixed types.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Union

import pandas as pd
import polars as pl

from eventseq._io import open_parquet
from eventseq.errors import ColumnError, DataError, FileFormatError, did_you_mean

if TYPE_CHECKING:
    from eventseq.data.prepare_config import PrepareConfig

# (with engine="spark", `prepare` also takes a PySpark DataFrame)
EventsLike = Union[pd.DataFrame, pl.DataFrame, pl.LazyFrame, str, os.PathLike]
ROW_COLUMN = "__eventseq_row__"  # the input's row numbers, carried along for error messages (both engines)


def read_events(events: EventsLike) -> pl.LazyFrame:
    """Accept pandas, Polars (eager or lazy) or a Parquet/CSV path; return a LazyFrame."""
    if isinstance(events, pl.LazyFrame):
        return events
    if isinstance(events, pl.DataFrame):
        return events.lazy()
    if isinstance(events, pd.DataFrame):
        return from_pandas(events).lazy()
    if isinstance(events, (str, os.PathLike)):
        return _scan_path(Path(events))
    if type(events).__module__.startswith("pyspark"):
        raise DataError("events is a PySpark DataFrame: pass engine='spark' to prepare it with Spark")
    raise DataError(
        f"events must be a pandas/Polars DataFrame, a Polars LazyFrame or a Parquet path, "
        f"got {type(events).__name__}"
    )


def _scan_path(path: Path) -> pl.LazyFrame:
    """A CSV file, a Parquet file or a directory of Parquet files, checked before anything is read.

    Raises:
        FileFormatError: naming the file: missing, empty (0 bytes), not CSV/Parquet, a directory
            without .parquet files, or Parquet files whose columns or types differ.
    """
    if not path.exists():
        raise FileFormatError(f"event file not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise FileFormatError(f"{path} is empty (0 bytes): expected a CSV file with a header or a Parquet file")
    if path.suffix.lower() == ".csv":
        lazy = pl.scan_csv(path)
        try:
            lazy.collect_schema()
        except (pl.exceptions.PolarsError, OSError) as error:
            raise FileFormatError(f"cannot read CSV {path}: {str(error).splitlines()[0]}") from None
        return lazy
    if path.is_file():
        open_parquet(path)  # fail early, naming the file, if it is corrupt
        return pl.scan_parquet(path)
    files = sorted(p for p in path.rglob("*.parquet") if p.is_file()
                   and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts))
    if not files:
        others = sorted(p.name for p in path.iterdir())[:5]
        raise FileFormatError(f"{path} is a directory without .parquet files (it holds {others or 'nothing'}): "
                              f"expected Parquet part files, or pass one file")
    first = open_parquet(files[0]).schema_arrow
    for file in files[1:]:
        other = open_parquet(file).schema_arrow
        if other.names != first.names or other.types != first.types:
            differences = [f"{name}: {dict(zip(first.names, first.types)).get(name, 'absent')} in {files[0].name}, "
                           f"{dict(zip(other.names, other.types)).get(name, 'absent')} here"
                           for name in dict.fromkeys([*first.names, *other.names])
                           if dict(zip(first.names, first.types)).get(name) != dict(zip(other.names, other.types)).get(name)]
            raise FileFormatError(f"{file} does not match the other parts of {path}: {'; '.join(differences[:3])}; "
                                  f"every part must have the same columns and types")
    return pl.scan_parquet(files)


def from_pandas(frame: pd.DataFrame) -> pl.DataFrame:
    """Convert pandas to Polars; a column Arrow cannot convert (mixed types) is named in the error."""
    duplicated = sorted({str(name) for name in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        raise ColumnError(f"the pandas DataFrame has several columns named {duplicated}: rename or drop the copies "
                          f"(e.g. frame.loc[:, ~frame.columns.duplicated()])")
    try:
        return pl.from_pandas(frame)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as error:  # ArrowInvalid is a ValueError
        for column in frame.columns:  # only on failure: find the culprit column by column
            try:
                pl.from_pandas(frame[[column]])
            except (TypeError, ValueError, pl.exceptions.PolarsError) as column_error:
                raise ColumnError(
                    f"column '{column}' (pandas dtype {frame[column].dtype}) cannot be converted: it holds "
                    f"values of mixed types ({column_error}); clean or cast it first"
                ) from None
        raise DataError(f"cannot convert the pandas DataFrame: {error}") from None


def collect_frame(frame: pl.LazyFrame, what: str) -> pl.DataFrame:
    """Collect `frame`, turning a read failure into FileFormatError naming `what`."""
    try:
        return frame.collect()
    except (pl.exceptions.ComputeError, OSError) as error:
        raise FileFormatError(f"cannot read {what}: {error}") from None


def check_columns(frame_schema: pl.Schema, required: list[str], where: str) -> None:
    """Raise ColumnError for the first of `required` missing from `frame_schema`, with the closest name."""
    available = list(frame_schema.names())
    for column in required:
        if column not in available:
            raise ColumnError(
                f"column '{column}' not found in {where}{did_you_mean(column, available)}; "
                f"available columns: {available}"
            )


def load_inputs(
    events: EventsLike, labels: EventsLike | None, config: PrepareConfig
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The event table's declared columns collected (checked), and the labels collected."""
    lazy, label_frame = scan_inputs(events, labels, config)
    what = f"events {events}" if isinstance(events, (str, os.PathLike)) else "events"
    return collect_frame(lazy, what), label_frame


def scan_inputs(
    events: EventsLike, labels: EventsLike | None, config: PrepareConfig
) -> tuple[pl.LazyFrame, pl.DataFrame | None]:
    """The event table as a LazyFrame of the declared columns (checked), and the labels collected."""
    lazy = read_events(events)
    label_lazy = read_events(labels) if labels is not None else None
    event_columns = [config.id_column, config.time_column, *config.categorical, *config.numeric, *config.text]
    event_schema = lazy.collect_schema()
    check_columns(event_schema, event_columns, "the event table")

    label_frame = None
    targets_in_events = [t for t in config.targets if t in event_schema.names()]
    if label_lazy is not None:
        label_schema = label_lazy.collect_schema()
        check_columns(label_schema, [config.id_column], "the labels table")
        missing = [t for t in config.targets if t not in targets_in_events]
        check_columns(label_schema, missing, "the labels table")
        what = f"labels {labels}" if isinstance(labels, (str, os.PathLike)) else "labels"
        label_frame = collect_frame(label_lazy.select(config.id_column, *missing), what)
    else:
        check_columns(event_schema, list(config.targets), "the event table (no labels table given)")
    return lazy.select(*event_columns, *targets_in_events), label_frame
