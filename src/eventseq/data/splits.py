"""Splits by entity (stratified when a target is given) and by time (train until T, gap, valid after)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
from sklearn.model_selection import train_test_split

from eventseq.data.schema import TIME_COLUMN
from eventseq.errors import ConfigError, DataError


def split_by_entity(
    count: int,
    valid_fraction: float = 0.2,
    test_fraction: float = 0.0,
    stratify: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Split entity positions into train / valid / test.

    Args:
        count: number of entities.
        valid_fraction: share of entities held out for validation.
        test_fraction: share of entities held out for the test.
        stratify: per-entity class labels to keep class shares equal across parts (None = random).
        seed: random seed.

    Returns:
        {"train": positions, "valid": positions, "test": positions} (sorted int64 arrays).
    """
    if not 0 < valid_fraction < 1 or not 0 <= test_fraction < 1 or valid_fraction + test_fraction >= 1:
        raise ConfigError(
            f"valid_fraction={valid_fraction}, test_fraction={test_fraction}: expected valid_fraction > 0 (the "
            f"validation entities choose the best epoch), test_fraction >= 0, each < 1 and their sum < 1"
        )
    positions = np.arange(count)
    if stratify is not None and stratify.ndim > 1:
        stratify = None  # multilabel / multi-target: fall back to a random split
    if stratify is not None and np.unique(stratify).size * 2 > count:
        stratify = None  # regression-like targets cannot be stratified
    # Whole counts, rounded before the ceiling so that float noise (0.2 + 0.1 = 0.30000000000000004)
    # cannot move an entity: 100 entities at 0.2 / 0.1 give exactly 20 valid and 10 test.
    valid_count = math.ceil(round(valid_fraction * count, 9))
    test_count = math.ceil(round(test_fraction * count, 9))
    try:
        train, rest = train_test_split(
            positions, test_size=valid_count + test_count, stratify=stratify, random_state=seed
        )
        parts = {"train": train}
        if test_fraction > 0:
            valid, test = train_test_split(
                rest,
                test_size=test_count,
                stratify=None if stratify is None else stratify[rest],
                random_state=seed,
            )
            parts.update(valid=valid, test=test)
        else:
            parts.update(valid=rest, test=np.array([], dtype=np.int64))
    except ValueError as error:
        raise DataError(f"cannot split {count} entities ({error})") from None
    return {name: np.sort(part).astype(np.int64) for name, part in parts.items()}


def entity_folds(count: int, folds: int, seed: int, stratify: np.ndarray | None = None
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """`folds` folds of `count` entity positions as (inside, outside) pairs, shuffled with `seed`; stratified by
    the class labels `stratify` when every class present has at least `folds` entities (at most `count` folds)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    positions = np.arange(count)
    if stratify is not None:
        labels = np.asarray(stratify).reshape(-1).astype(np.int64)
        counts = np.bincount(labels)
        if counts[counts > 0].min() >= folds:  # every fold gets every class
            return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(positions, labels))
    return list(KFold(min(folds, count), shuffle=True, random_state=seed).split(positions))


PARTS = ("train", "valid", "test")
PART_COLUMN = "part"


def given_splits(table: pl.DataFrame, ids: np.ndarray, id_column: str, source: str) -> dict[str, np.ndarray]:
    """A user-given entity split: `table` holds `id_column` and `part` (train, valid or test) per entity.

    Every entity of `ids` must have a part (none is dropped without a word); ids of `table` that are not
    among `ids` are left out with a note. A run's own splits.parquet is such a table.

    Args:
        table: the split (e.g. read from a Parquet / CSV file).
        ids: the entity ids of the data, in its order.
        id_column: the id column of the data, also expected in `table`.
        source: where the split comes from, for messages (e.g. "data.splits=folds.parquet").

    Returns:
        {"train": positions, "valid": positions, "test": positions} into `ids` (sorted int64 arrays).

    Raises:
        ColumnError: the id or part column is missing. DataError: an unknown part, an id given twice, an entity
            of the data without a part, or no train or no valid entity.
    """
    import sys

    from eventseq.errors import ColumnError

    for column in (id_column, PART_COLUMN):
        if column not in table.columns:
            raise ColumnError(f"{source} has no column '{column}' (columns: {table.columns[:10]}): a split names each "
                              f"entity's '{id_column}' and its '{PART_COLUMN}' (train, valid or test)")
    table = table.select(id_column, pl.col(PART_COLUMN).cast(pl.String))
    unknown = table.filter(~pl.col(PART_COLUMN).is_in(PARTS))
    if unknown.height:
        raise DataError(f"{source}: part {unknown[PART_COLUMN][0]!r} (entity {unknown[id_column][0]!r}) is not one of "
                        f"{list(PARTS)}")
    repeated = table.filter(pl.col(id_column).is_duplicated())
    if repeated.height:
        raise DataError(f"{source} gives entity {repeated[id_column][0]!r} more than one part")
    data = pl.DataFrame({id_column: ids}).with_row_index("__position")
    left, right = data.schema[id_column], table.schema[id_column]
    if left != right:
        common = pl.Int64 if left.is_integer() and right.is_integer() else pl.String
        data, table = (frame.with_columns(pl.col(id_column).cast(common)) for frame in (data, table))
    joined = data.join(table, on=id_column, how="left")
    missing = joined.filter(pl.col(PART_COLUMN).is_null())
    if missing.height:
        raise DataError(f"{source} gives no part to {missing.height:,} of the {len(ids):,} entities (e.g. "
                        f"{missing[id_column].head(3).to_list()}): list every entity with train, valid or test")
    extra = table.height - (joined.height - missing.height)
    if extra:
        print(f"note: {source} lists {extra:,} ids that are not in the data; they are left out", file=sys.stderr)
    parts = {part: np.sort(joined.filter(pl.col(PART_COLUMN) == part)["__position"].to_numpy()).astype(np.int64)
             for part in PARTS}
    for part in ("train", "valid"):
        if not len(parts[part]):
            raise DataError(f"{source} has no '{part}' entity: training needs both train and valid entities")
    return parts


def _to_seconds(moment: int | dt.datetime | dt.date | str) -> int:
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    if isinstance(moment, dt.datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return int(moment.timestamp())
    if isinstance(moment, dt.date):
        return _to_seconds(dt.datetime(moment.year, moment.month, moment.day))
    return int(moment)


def split_by_time(
    table: pl.DataFrame,
    train_until: int | dt.datetime | dt.date | str,
    gap: int | dt.timedelta = 0,
    valid_until: int | dt.datetime | dt.date | str | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cut every entity's events at a time: before `train_until` → train, from `train_until + gap` → valid.

    Args:
        table: sequence table with the `event_time` list column (seconds) and feature list columns.
        train_until: first moment excluded from training (seconds, datetime, date or ISO string).
        gap: time skipped between the parts (seconds or timedelta), so labels cannot leak.
        valid_until: first moment excluded from validation (None = no end).

    Returns:
        (train, valid) sequence tables; entities with no events in a part are left out of it.
    """
    start = _to_seconds(train_until)
    gap_seconds = int(gap.total_seconds()) if isinstance(gap, dt.timedelta) else int(gap)
    if gap_seconds < 0:
        raise ConfigError(f"gap must be >= 0, got {gap_seconds}")
    valid_start = start + gap_seconds
    valid_end = _to_seconds(valid_until) if valid_until is not None else None
    if TIME_COLUMN not in table.columns:
        raise DataError(f"sequence table has no '{TIME_COLUMN}' column")
    list_columns = [c for c, t in table.schema.items() if isinstance(t, pl.List)]
    times = pl.col(TIME_COLUMN)
    bounds = table.with_columns(
        times.list.eval(pl.element() < start).list.sum().alias("__train_end"),
        times.list.eval(pl.element() < valid_start).list.sum().alias("__valid_start"),
        (times.list.eval(pl.element() < valid_end).list.sum() if valid_end is not None else times.list.len())
        .alias("__valid_end"),
    )
    train = bounds.with_columns(
        pl.col(c).list.slice(0, pl.col("__train_end")) for c in list_columns
    ).filter(pl.col("__train_end") > 0)
    valid = bounds.with_columns(
        pl.col(c).list.slice(pl.col("__valid_start"), pl.col("__valid_end") - pl.col("__valid_start"))
        for c in list_columns
    ).filter(pl.col("__valid_end") > pl.col("__valid_start"))
    helper = ["__train_end", "__valid_start", "__valid_end"]
    return train.drop(helper), valid.drop(helper)
