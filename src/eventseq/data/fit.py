"""Fitting a schema: what `prepare` learns from the raw events (vocabularies, numeric statistics,
quantile edges, target classes, sources, text features).

`fit_statistics` computes with Polars' streaming engine what fitting reads from the data; the Spark
engine computes the same `FitStatistics` itself; `schema_from_statistics` turns either into the
`Schema`, so both engines share every rule (vocabulary order, rare values, numeric defaults, target
classes and their errors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from eventseq.data.prepare_config import PrepareConfig
from eventseq.data.sources import fit_sources
from eventseq.data.schema import CategoricalFeature, NumericFeature, Schema, Target
from eventseq.data.text import fit_text_features
from eventseq.data.times import check_unit_applies, time_kind_of
from eventseq.errors import ColumnError, DataError, FileFormatError


def fit_schema(frame: pl.DataFrame | pl.LazyFrame, labels: pl.DataFrame | None, config: PrepareConfig) -> Schema:
    """Learn the schema from an event frame (and optional per-entity labels).

    A LazyFrame is aggregated with Polars' streaming engine, so fitting never holds the events.
    """
    return schema_from_statistics(fit_statistics(frame.lazy(), labels, config), config)


def final_moments(moments: tuple[float | None, float | None], transform: str, column: str) -> tuple[float, float]:
    """The mean and std a numeric feature is standardized with (0 and 1 unless it is standardized).

    Raises:
        DataError: the values are so large that their mean or std overflows (is not finite).
    """
    mean, std = (moments[0] or 0.0), (moments[1] or 1.0)
    if "standardize" not in transform:
        return 0.0, 1.0
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise DataError(
            f"numeric column '{column}' cannot be standardized: its values are so large that their "
            f"{'mean' if not math.isfinite(mean) else 'standard deviation'} overflows; use "
            f"numeric_transform.{column}=log_standardize, or clean the values"
        )
    return float(mean), float(std) or 1.0


def fit_statistics(events: pl.LazyFrame, labels: pl.DataFrame | None, config: PrepareConfig) -> FitStatistics:
    """Compute with Polars what fitting a schema reads from the data (see FitStatistics)."""
    columns = events.collect_schema()
    for column in config.numeric:
        require_numeric(columns[column], column)
    for column in config.categorical:
        require_scalar(columns[column], column)

    def collect(*frames: pl.LazyFrame) -> list[pl.DataFrame]:
        try:
            return pl.collect_all(list(frames), engine="streaming")
        except (pl.exceptions.ComputeError, OSError) as error:
            raise FileFormatError(f"cannot read the events: {error}") from None

    rows = collect(events.select(pl.len()))[0].item()
    if rows == 0:
        raise DataError("the event table is empty: no rows to prepare")
    counted = collect(*[
        events.select(categorical_values(pl.col(column), columns[column]).cast(pl.String).drop_nulls()
                      .value_counts(sort=False)).unnest(column)
        for column in config.categorical
    ])
    category_counts = dict(zip(config.categorical, counted))
    transforms = {column: config.numeric_transform.get(column, config.default_numeric_transform)
                  for column in config.numeric}
    numeric_moments: dict[str, tuple[float | None, float | None]] = {}
    if config.numeric:
        expressions = []
        for column in config.numeric:
            values = numeric_transform(pl.col(column).cast(pl.Float64), transforms[column], 0.0, 1.0)
            finite = values.filter(values.is_finite())
            expressions += [finite.mean().alias(f"{column}/mean"), finite.std().alias(f"{column}/std")]
        moments = collect(events.select(expressions))[0].row(0, named=True)
        numeric_moments = {column: (moments[f"{column}/mean"], moments[f"{column}/std"]) for column in config.numeric}
    edges: dict[str, list[float]] = {}
    if config.quantize:
        from eventseq.data.tokens import quantile_expressions

        expressions = []
        for column, bins in config.quantize.items():
            mean, std = final_moments(numeric_moments[column], transforms[column], column)
            final = numeric_transform(pl.col(column).cast(pl.Float64), transforms[column], mean, std)
            expressions += quantile_expressions(final, bins, prefix=f"{column}/")
        quantiles = collect(events.select(expressions))[0].row(0, named=True)
        for column, bins in config.quantize.items():
            values = sorted({float(quantiles[f"{column}/{i}"]) for i in range(bins + 1)
                             if quantiles[f"{column}/{i}"] is not None})
            edges[column] = values if len(values) >= 2 else []
    target_values = {}
    for column in config.targets:
        if labels is not None and column in labels.columns:
            target_values[column] = labels.get_column(column)
        else:  # only the distinct values: the events may not fit in memory
            target_values[column] = collect(events.select(pl.col(column).unique()))[0].get_column(column)
    sources: dict[str, list[str]] = {}
    if config.source_column is not None:
        names = [c for c in (*config.categorical, *config.numeric, *config.text) if c != config.source_column]
        sources = fit_sources(events, config.source_column, names)
    text_features = fit_text_features(columns, config.text, config.text_encoder)
    return FitStatistics(columns[config.time_column], category_counts, numeric_moments, target_values,
                         edges, sources, text_features)


@dataclass
class FitStatistics:
    """What fitting a schema reads from the data, whichever engine computed it.

    `fit_statistics` computes it with Polars, `eventseq.data.spark` with Spark;
    `schema_from_statistics` turns it into the Schema, so both engines share every rule (vocabulary
    order, rare values, numeric defaults, target classes and their errors).

    Attributes:
        time_dtype: the raw time column's dtype, as Polars names it.
        category_counts: per categorical column, a frame of its non-null values cast to strings
            (in a column named like the feature) and their occurrences (`count`).
        numeric_moments: per numeric column, the mean and sample standard deviation (ddof=1) of its
            finite transformed values (transform with mean 0, std 1); None where undefined.
        target_values: per target column, its values (all of them, or only the distinct ones).
        edges: per quantized numeric column, its quantile edges (see data/tokens.py).
        sources: per source, the features it has (several merged sources, data/sources.py).
        text_features: the fitted text features (data/text.py).
    """

    time_dtype: pl.DataType
    category_counts: dict[str, pl.DataFrame]
    numeric_moments: dict[str, tuple[float | None, float | None]]
    target_values: dict[str, pl.Series]
    edges: dict[str, list[float]] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)
    text_features: list[Any] = field(default_factory=list)


def schema_from_statistics(statistics: FitStatistics, config: PrepareConfig) -> Schema:
    """Build the Schema from the statistics an engine computed (see FitStatistics).

    Raises:
        ColumnError: the time column or a regression target has the wrong dtype.
        DataError: a target without values, with one class, or binary with more than two classes.
    """
    features: list[Any] = []
    for column in config.categorical:
        counts = (
            statistics.category_counts[column]
            .filter(pl.col("count") >= config.min_frequency)
            .sort(["count", column], descending=[True, False])
        )
        if config.max_vocab_size is not None:
            counts = counts.head(config.max_vocab_size)
        features.append(CategoricalFeature(name=column, vocabulary=counts[column].to_list()))
    for column in config.numeric:
        transform = config.numeric_transform.get(column, config.default_numeric_transform)
        mean, std = final_moments(statistics.numeric_moments[column], transform, column)
        features.append(NumericFeature(name=column, transform=transform, mean=mean, std=std,
                                       edges=statistics.edges.get(column, [])))
    features.extend(statistics.text_features)
    time_kind = time_kind_of(statistics.time_dtype, config.time_column)
    check_unit_applies(time_kind, config.time_unit, config.time_column, statistics.time_dtype)
    targets = [fit_target(column, task, statistics.target_values[column]) for column, task in config.targets.items()]
    return Schema(
        id_column=config.id_column,
        time_column=config.time_column,
        time_kind=time_kind,
        time_unit=config.time_unit,
        features=features,
        targets=targets,
        invalid_numeric=config.invalid_numeric,
        fill_value=config.fill_value,
        source_column=config.source_column,
        sources=statistics.sources,
    )


def require_scalar(dtype: pl.DataType, column: str) -> None:
    if isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
        raise ColumnError(f"categorical column '{column}' has dtype {dtype}: expected one value per event "
                          f"(explode the lists into several events, or join their values into one string)")


def require_numeric(dtype: pl.DataType, column: str) -> None:
    """Raise ColumnError unless a numeric feature's raw dtype is a number type."""
    if not dtype.is_numeric():
        raise ColumnError(f"numeric column '{column}' has dtype {dtype}: expected a number type")


def fit_target(column: str, task: str, values: pl.Series) -> Target:
    if isinstance(values.dtype, (pl.List, pl.Array, pl.Struct)):
        raise ColumnError(
            f"target '{column}' is a {values.dtype} column: a target holds one value per entity. A "
            f"multilabel target is one 0/1 column per label, each declared multilabel "
            f"(targets={{label_a: multilabel, label_b: multilabel}}); make them with "
            f"pl.col('{column}').list.to_struct().struct.unnest() or one is_in per label"
        )
    values = values.drop_nulls()
    if values.len() == 0:
        raise DataError(f"target '{column}' has no non-null values")
    check_finite_target(column, values)
    if task == "regression":
        if not values.dtype.is_numeric():
            raise ColumnError(f"regression target '{column}' has dtype {values.dtype}: expected numbers")
        return Target(name=column, task=task)
    classes = values.unique().sort().to_list()
    if len(classes) < 2:
        raise DataError(
            f"target '{column}' has one class ({classes[0]!r}): a {task} target needs at least two"
        )
    if task in ("binary", "multilabel") and len(classes) != 2:
        raise DataError(
            f"target '{column}' is declared {task} but has {len(classes)} classes "
            f"({classes[:10]}...): use multiclass, or map it to two values"
        )
    return Target(name=column, task=task, classes=classes)


def check_finite_target(column: str, values: pl.Series, ids: pl.Series | None = None) -> None:
    """Refuse NaN/inf target values: a missing target is null (reported), never NaN (it would train a NaN model)."""
    if not values.dtype.is_float():
        return
    bad = ~values.is_finite().fill_null(True)
    count = int(bad.sum())
    if count:
        first = f" (first: entity {ids.filter(bad)[0]!r})" if ids is not None else ""
        raise DataError(
            f"target '{column}' has {count:,} NaN/inf values{first}: a missing target must be null "
            f"(counted in report.json as without a value); drop those rows or fill the target"
        )


def numeric_transform(values: pl.Expr, transform: str, mean: float, std: float) -> pl.Expr:
    if transform in ("log", "log_standardize"):
        values = values.sign() * values.abs().log1p()
    if transform in ("standardize", "log_standardize"):
        values = (values - mean) / std
    return values


def categorical_values(values: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A categorical column's values with NaN (of a float column) as null: a missing value, never a category."""
    return values.fill_nan(None) if dtype.is_float() else values
