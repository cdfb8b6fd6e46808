"""Event times as int64 epoch seconds: the unit of integer times, and the check that they are plausible.

An integer time column is read in `time_unit` (s, ms, us, ns) and floored to seconds. Integer
times whose magnitude is beyond `MAX_EPOCH_SECONDS` (the year ~5138) are refused: they are
almost always milliseconds or microseconds read as seconds, which would silently give every
gap and calendar feature a nonsense value. The error names the column, the row and the value,
and suggests the unit its magnitude implies. Polars (`prepare`, `predict`), Spark and the
recommender's log reader all use these rules.
"""

from __future__ import annotations

import polars as pl

from eventseq.errors import ColumnError, ConfigError, DataError

TIME_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
MAX_EPOCH_SECONDS = 100_000_000_000  # 1e11 s: the year ~5138; a ms epoch of today is ~1.7e12


def check_time_unit(time_unit: str, option: str = "time_unit") -> int:
    """The factor from `time_unit` to seconds; ConfigError naming `option` if it is not a unit."""
    if time_unit not in TIME_UNITS:
        raise ConfigError(f"{option}={time_unit!r}: expected one of {list(TIME_UNITS)} (the unit of integer times)")
    return TIME_UNITS[time_unit]


def check_unit_applies(time_kind: str, time_unit: str, column: str, dtype: object) -> None:
    """Refuse a time_unit other than seconds for a datetime column (its unit is in its dtype)."""
    if time_kind == "datetime" and time_unit != "s":
        raise ConfigError(f"time_unit={time_unit!r} applies to integer times, but '{column}' is {dtype} (its unit "
                          f"is in its dtype): remove time_unit")


def integer_seconds(values: pl.Expr, time_unit: str) -> pl.Expr:
    """Integer times in `time_unit` -> int64 seconds, floored (so -1 ms is second -1, as for datetimes)."""
    factor = check_time_unit(time_unit)
    values = values.cast(pl.Int64)
    return values if factor == 1 else values.floordiv(factor)


def implausible(seconds: pl.Expr) -> pl.Expr:
    """True where epoch seconds are beyond +-MAX_EPOCH_SECONDS (null stays null)."""
    return seconds.abs() > MAX_EPOCH_SECONDS


def guessed_unit(raw_value: int) -> str:
    """The coarsest unit in which a raw integer time is a plausible epoch time (ns for any int64)."""
    return next(unit for unit, factor in TIME_UNITS.items() if abs(raw_value) / factor <= MAX_EPOCH_SECONDS)


def implausible_time_error(column: str, row: int, raw_value: int, count: int, time_unit: str) -> DataError:
    """The error for integer times that are not plausible epoch times in `time_unit`."""
    guess = guessed_unit(raw_value)
    return DataError(
        f"time column '{column}' has {count:,} integer values that are not plausible epoch times in "
        f"{time_unit} (first at row {row}: {raw_value}, {raw_value // TIME_UNITS[time_unit]:,} s, beyond the "
        f"year 5000): if the column is in {guess}, set time_unit={guess}"
    )


def check_integer_times(frame: pl.DataFrame, column: str, time_unit: str, row_column: str | None = None) -> None:
    """Raise DataError if an integer time of `frame[column]` is implausible in `time_unit` (module docstring).

    The row named is `row_column`'s value of the first bad row, or its position when None.
    """
    bad = implausible(integer_seconds(pl.col(column), time_unit)).fill_null(False)
    count = frame.select(bad.sum()).item()
    if count:
        position = int(frame.select(bad.arg_true().first()).item())
        row = position if row_column is None else int(frame.get_column(row_column)[position])
        raise implausible_time_error(column, row, int(frame.get_column(column)[position]), count, time_unit)


def time_kind_of(dtype: pl.DataType, column: str) -> str:
    """"int" or "datetime" for a raw time column's dtype; ColumnError for any other dtype."""
    if dtype.is_integer():
        return "int"
    if isinstance(dtype, (pl.Datetime, pl.Date)):
        return "datetime"
    raise ColumnError(
        f"time column '{column}' has dtype {dtype}: expected integer seconds, a datetime or a date "
        f"(parse strings first, e.g. pl.col('{column}').str.to_datetime())"
    )
