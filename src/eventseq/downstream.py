"""Downstream evaluation: per-entity features + labels → cross-validated classical models.

Two sources of features, compared on the same folds:

- `aggregate_features(table, schema)`: the classical feature-engineering baseline computed from a
  sequence table (event count, time span, category counts and fractions, numeric statistics);
- embeddings written by `eventseq embed` (id column + `emb_*` columns).

`evaluate` cross-validates scikit-learn / LightGBM / CatBoost models on one feature table;
`compare_feature_sets` runs it for several named tables on the same entities and the same folds, so
the rows of its result are directly comparable. Everything on data is whole-column Polars or NumPy;
the only Python loops are over features, models and folds.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from eventseq.data.schema import FIRST_VALUE_ID, PADDING_ID, TIME_COLUMN, NumericFeature, Schema
from eventseq.errors import ColumnError, ConfigError, DataError, did_you_mean
from eventseq.tables import render_table

MODELS = ("logreg", "lightgbm", "catboost")
TASKS = ("auto", "binary", "multiclass", "regression")
METRICS = {"binary": "auroc", "multiclass": "accuracy", "regression": "rmse"}
# an integer-valued target with at most this many distinct values is detected as multiclass
MAX_AUTO_CLASSES = 20

# Defaults chosen to be quick and reasonable on small to medium tables; override per model with
# `model_params={"lightgbm": {"n_estimators": 1000}}`.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "logreg": {"C": 1.0, "max_iter": 1000},  # Ridge gets {"alpha": 1 / C} for regression
    "lightgbm": {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "verbose": -1,
        "n_jobs": 2,
        # no timing-based choice between row- and column-wise histograms: same seed, same result
        "force_col_wise": True,
        "deterministic": True,
    },
    "catboost": {"iterations": 300, "verbose": 0, "thread_count": 2, "allow_writing_files": False},
}
_PACKAGES = {"lightgbm": "lightgbm", "catboost": "catboost"}


# ----------------------------------------------------------------------------- aggregate features


class AggregateFeatures:
    """Classical per-entity features from a sequence table (scikit-learn contract).

    Per entity: `n_events`, `time_span_s` (last − first event time, seconds), `mean_gap_s`
    (span / (n_events − 1); null for a single event). Per categorical feature `f`: `f_nunique`
    (distinct ids), and for each of the `max_categories` most frequent ids `c` (learned by `fit`)
    `f_count_c` and `f_frac_c` (count / n_events). Id 1 is the unknown/rare bucket; padding (0) is
    never counted. Per numeric feature `f`: `f_mean`, `f_std` (population, ddof=0), `f_min`,
    `f_max`, `f_sum`, on the original scale when `raw_numeric` (the schema's transform undone),
    else on the prepared scale.

    Args:
        schema: the schema the table was prepared with (names the id, features and targets).
        max_categories: per categorical feature, how many of the most frequent ids get count and
            fraction columns (None = every id seen by `fit`, 0 = none).
        raw_numeric: undo the schema's numeric transform (log, standardize) before aggregating,
            so that e.g. `amount_sum` is a sum of amounts, not of log-standardized amounts.

    Attributes (after `fit`):
        categories_: {categorical feature: sorted list of the ids that get columns}.
    """

    def __init__(self, schema: Schema, max_categories: int | None = 50, raw_numeric: bool = True) -> None:
        self.schema = schema
        self.max_categories = max_categories
        self.raw_numeric = raw_numeric

    def fit(self, table: pl.DataFrame) -> AggregateFeatures:
        """Learn which category ids get columns: the most frequent ones in `table`.

        Raises:
            ConfigError: bad `max_categories`. ColumnError: a column named by the schema is missing
            or is not a list column.
        """
        if self.max_categories is not None and (not isinstance(self.max_categories, int) or self.max_categories < 0):
            raise ConfigError(f"max_categories={self.max_categories!r}: expected an integer >= 0 or None")
        self._check_table(table)
        table = self._without_absent_fields(table)
        categories: dict[str, list[int]] = {}
        for feature in self.schema.categorical:
            counts = (
                table.select(pl.col(feature.name).explode().alias("id"))
                .filter(pl.col("id").is_not_null() & (pl.col("id") != PADDING_ID))
                .group_by("id")
                .len()
                .sort(["len", "id"], descending=[True, False])  # ties: smaller id first
            )
            if self.max_categories is not None:
                counts = counts.head(self.max_categories)
            categories[feature.name] = sorted(counts["id"].to_list())
        self.categories_ = categories
        return self

    def transform(self, table: pl.DataFrame) -> pl.DataFrame:
        """One row per row of `table` (same order): the id column and the aggregate features.

        Raises:
            ConfigError: not fitted. ColumnError: a column named by the schema is missing.
        """
        if not hasattr(self, "categories_"):
            raise ConfigError("AggregateFeatures is not fitted: call fit(table) first")
        self._check_table(table)
        table = self._without_absent_fields(table)
        times = pl.col(TIME_COLUMN)
        n_events = times.list.len()
        span = (times.list.max() - times.list.min()).cast(pl.Float64)
        columns: list[pl.Expr] = [
            pl.col(self.schema.id_column),
            n_events.cast(pl.Int64).alias("n_events"),
            span.alias("time_span_s"),
            pl.when(n_events > 1).then(span / (n_events - 1)).otherwise(None).alias("mean_gap_s"),
        ]
        for feature in self.schema.categorical:
            ids = pl.col(feature.name)
            columns.append(ids.list.eval(pl.element().filter(pl.element() != PADDING_ID)).list.n_unique()
                           .cast(pl.Int64).alias(f"{feature.name}_nunique"))
            for category in self.categories_.get(feature.name, []):
                count = ids.list.count_matches(category).cast(pl.Int64)
                columns.append(count.alias(f"{feature.name}_count_{category}"))
                columns.append((count / n_events).alias(f"{feature.name}_frac_{category}"))
        for feature in self.schema.numeric:
            values = pl.col(feature.name).cast(pl.List(pl.Float64))
            if self.raw_numeric:
                values = values.list.eval(_undo_transform(pl.element(), feature))
            columns += [
                values.list.mean().alias(f"{feature.name}_mean"),
                values.list.std(ddof=0).alias(f"{feature.name}_std"),
                values.list.min().alias(f"{feature.name}_min"),
                values.list.max().alias(f"{feature.name}_max"),
                values.list.sum().alias(f"{feature.name}_sum"),
            ]
        names = [column.meta.output_name() for column in columns]
        clashes = sorted({name for name in names if names.count(name) > 1})
        if clashes:
            raise ColumnError(f"aggregate feature names clash: {clashes}; rename the feature columns")
        return table.select(columns)

    def _without_absent_fields(self, table: pl.DataFrame) -> pl.DataFrame:
        """Several merged sources: a field's value at events of a source that lacks it becomes null.

        prepare stores 0 (numerics) and the unknown id (categoricals) there, which are placeholders,
        not values: nulls are left out of every statistic and count.
        """
        schema = self.schema
        if not schema.sources or schema.source_column not in table.columns:
            return table
        source_feature = next(f for f in schema.categorical if f.name == schema.source_column)
        lacking = {}
        for feature in schema.features:
            sources = [source for source, names in schema.sources.items()
                       if feature.name not in names and source in source_feature.vocabulary]
            if sources and feature.name != schema.source_column:
                lacking[feature.name] = [source_feature.vocabulary.index(source) + FIRST_VALUE_ID for source in sources]
        if not lacking:
            return table
        row = "__eventseq_row__"
        names = [schema.source_column, *lacking]
        events = table.select(pl.int_range(pl.len()).alias(row), *names).explode(names)
        events = events.with_columns([
            pl.when(pl.col(schema.source_column).is_in(ids)).then(None).otherwise(pl.col(name)).alias(name)
            for name, ids in lacking.items()
        ])
        lists = events.group_by(row, maintain_order=True).agg(list(lacking))
        return table.with_columns(lists.sort(row).select(list(lacking)))

    def fit_transform(self, table: pl.DataFrame) -> pl.DataFrame:
        """`fit(table)`, then `transform(table)`."""
        return self.fit(table).transform(table)

    def _check_table(self, table: pl.DataFrame) -> None:
        if not isinstance(table, pl.DataFrame):
            raise DataError(
                f"expected a Polars DataFrame (a sequence table, e.g. load_prepared(dir).table), "
                f"got {type(table).__name__}"
            )
        required = [self.schema.id_column, TIME_COLUMN, *self.schema.feature_names]
        for column in required:
            if column not in table.columns:
                raise ColumnError(
                    f"column '{column}' (named by the schema) not found in the sequence table"
                    f"{did_you_mean(column, table.columns)}; columns: {table.columns}"
                )
            if column != self.schema.id_column and not isinstance(table.schema[column], pl.List):
                raise ColumnError(
                    f"column '{column}' has dtype {table.schema[column]}: a sequence table holds one "
                    f"list per entity (pass the table written by prepare, not raw events)"
                )


def _undo_transform(values: pl.Expr, feature: NumericFeature) -> pl.Expr:
    """Inverse of prepare's numeric transform (standardize, then sign·log1p|x|)."""
    if feature.transform in ("standardize", "log_standardize"):
        values = values * feature.std + feature.mean
    if feature.transform in ("log", "log_standardize"):
        values = values.sign() * (values.abs().exp() - 1.0)
    return values


def aggregate_features(table: pl.DataFrame, schema: Schema, max_categories: int | None = 50,
                       raw_numeric: bool = True) -> pl.DataFrame:
    """The classical feature-engineering baseline: `AggregateFeatures(...).fit_transform(table)`.

    Args:
        table: a sequence table (one row per entity, list columns), e.g. `load_prepared(dir).table`.
        schema: its schema.
        max_categories: count/fraction columns for at most this many most frequent ids per
            categorical feature (None = all).
        raw_numeric: aggregate numerics on their original scale (undo log/standardize).

    Returns:
        One row per entity: the id column, then the features described in `AggregateFeatures`.

    Raises:
        ColumnError: a column named by the schema is missing or not a list column.
    """
    return AggregateFeatures(schema, max_categories, raw_numeric).fit_transform(table)


# ----------------------------------------------------------------------------- evaluation


def prepared_task(schema: Schema, target: str) -> str:
    """The `evaluate` task of a target prepared with the data: its own, a multilabel column being binary."""
    task = schema.target(target).task
    return "binary" if task == "multilabel" else task


def detect_task(values: pl.Series) -> str:
    """binary (2 distinct values), multiclass (≤ 20 integer or non-numeric values), else regression.

    Raises:
        DataError: fewer than two distinct values.
    """
    values = values.drop_nulls()
    distinct = values.n_unique()
    if distinct < 2:
        shown = values[0] if values.len() else None
        raise DataError(
            f"target '{values.name}' has one distinct value ({shown!r}) over {values.len()} rows: "
            f"nothing to learn"
        )
    if distinct == 2:
        return "binary"
    if not values.dtype.is_numeric():
        return "multiclass"
    if values.dtype.is_float():
        finite = values.filter(values.is_finite())
        integer_valued = finite.len() == values.len() and bool((finite == finite.round(0)).all())
    else:
        integer_valued = True
    return "multiclass" if integer_valued and distinct <= MAX_AUTO_CLASSES else "regression"


def evaluate(
    features: pl.DataFrame | pd.DataFrame,
    labels: pl.DataFrame | pd.DataFrame,
    id_column: str,
    target: str,
    models: Sequence[str] = MODELS,
    folds: int = 5,
    seed: int = 0,
    task: str = "auto",
    model_params: Mapping[str, Mapping[str, Any]] | None = None,
    verbose: bool = False,
    stack_groups: Sequence[Sequence[str]] | None = None,
) -> pl.DataFrame:
    """Cross-validate classical models on per-entity features.

    Features and labels are joined on `id_column` (entities in both, null targets dropped) and
    sorted by id, so the folds depend only on the set of entities, the target and `seed`: every
    model, and every feature table over the same entities, sees the same folds. Classification uses
    stratified K-fold, regression K-fold (both shuffled with `seed`). Numeric and boolean feature
    columns are used (others are skipped with a note); nulls are NaN (LightGBM and CatBoost handle
    them, logreg imputes the training-fold median).

    Args:
        features: id column + feature columns (e.g. embeddings, `aggregate_features`).
        labels: id column + `target`.
        id_column: the entity id column in both tables.
        target: the target column of `labels`.
        models: any of "logreg" (StandardScaler + LogisticRegression, Ridge for regression),
            "lightgbm", "catboost". A model whose package is missing is skipped with a note.
        folds: number of cross-validation folds (≥ 2).
        seed: seed of the folds and of the models.
        task: "auto" (see `detect_task`), "binary", "multiclass" or "regression".
        model_params: per-model keyword overrides, e.g. {"lightgbm": {"n_estimators": 50}}.
        verbose: print one line per model as it finishes.
        stack_groups: two or more lists of feature columns. Each model is then a stacked ensemble
            (scikit-learn's StackingClassifier / StackingRegressor): one copy of the model per column
            group, fitted on that group alone, and a logistic (ridge for regression) regression over
            their predictions, fitted on out-of-fold predictions (3-fold, inside each training fold).
            Unlike one model on the joined columns, a weak group cannot crowd a strong one out.

    Returns:
        One row per model: model, metric (auroc | accuracy | rmse), mean and std (ddof=0) of the
        metric over the folds, seconds (fit + predict, all folds).

    Raises:
        ColumnError: id or target column missing, no numeric feature column, target among the features.
        DataError: no entity in both tables, duplicate ids, one-class target, a class rarer than `folds`,
            infinite feature values.
        ConfigError: unknown model/task, bad `folds`, no model available, `stack_groups` with fewer
            than two groups, an empty group, or a column not among the numeric features.
    """
    X, y, names, task = _design(features, labels, id_column, target, task)
    groups = None if stack_groups is None else _stack_indices(stack_groups, names)
    return _cross_validate(X, y, task, list(models), folds, seed, model_params, verbose, groups)


def _stack_indices(stack_groups: Sequence[Sequence[str]], names: list[str]) -> list[list[int]]:
    """Column groups → positions in the design matrix, each group checked."""
    groups = [list(group) for group in stack_groups]
    if len(groups) < 2:
        raise ConfigError(f"stack_groups has {len(groups)} group(s): stacking needs at least two column groups")
    position = {name: i for i, name in enumerate(names)}
    indices = []
    for number, group in enumerate(groups):
        if not group:
            raise ConfigError(f"stack_groups[{number}] is empty: every group needs at least one feature column")
        missing = [name for name in group if name not in position]
        if missing:
            raise ColumnError(f"stack_groups[{number}] names '{missing[0]}', not a numeric feature column"
                              f"{did_you_mean(missing[0], names)}")
        indices.append([position[name] for name in group])
    return indices


def cross_validation_folds(
    labels: pl.DataFrame | pd.DataFrame, id_column: str, target: str, folds: int = 5, seed: int = 0,
    task: str = "auto",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds `evaluate` uses for these labelled entities, as (training ids, test ids) per fold.

    For a model scored outside `evaluate` (e.g. a network trained per fold) on exactly the same
    folds as the classical models. Arguments as in `evaluate`.
    """
    labels = _polars(labels, "labels")
    _require_column(labels, id_column, "the labels")
    ids = labels.select(id_column).with_columns(pl.lit(0.0).alias("__constant"))
    _, y, _, task = _design(ids, labels, id_column, target, task)
    ordered = labels.filter(pl.col(target).is_not_null()).sort(id_column)[id_column].to_numpy()
    return [(ordered[fit], ordered[test]) for fit, test in _fold_indices(y, task, folds, seed)]


def compare_feature_sets(
    sets: Mapping[str, pl.DataFrame | pd.DataFrame],
    labels: pl.DataFrame | pd.DataFrame,
    id_column: str,
    target: str,
    models: Sequence[str] = MODELS,
    folds: int = 5,
    seed: int = 0,
    task: str = "auto",
    model_params: Mapping[str, Mapping[str, Any]] | None = None,
    verbose: bool = False,
    stack: Sequence[str] = (),
) -> pl.DataFrame:
    """`evaluate` each named feature table on the same entities and the same folds.

    Only entities present in every table and in the labels are used, so rows of the result compare
    feature sets, not entity sets. Arguments as in `evaluate`.

    Args:
        stack: names of two or more of `sets`: adds the set `stacked: <a> | <b>`, each model
            stacked over one copy of itself per named set (`evaluate(stack_groups=...)`).

    Returns:
        The concatenated `evaluate` tables with a leading `features` column (the names of `sets`).

    Raises:
        ConfigError: no feature set; `stack` naming fewer than two sets or an unknown one. Otherwise
            as `evaluate`.
    """
    if not sets:
        raise ConfigError("compare_feature_sets needs at least one feature set")
    stack = list(stack)
    if stack:
        unknown = [name for name in stack if name not in sets]
        if unknown:
            raise ConfigError(f"stack names '{unknown[0]}', not a feature set{did_you_mean(unknown[0], list(sets))}; "
                              f"sets: {list(sets)}")
        if len(set(stack)) < 2:
            raise ConfigError(f"stack={stack}: stacking needs at least two different feature sets")
    frames = {name: _polars(frame, f"feature set '{name}'") for name, frame in sets.items()}
    for name, frame in frames.items():
        check_finite_embeddings(frame, f"feature set '{name}'")
    label_frame = _polars(labels, "labels")
    _require_column(label_frame, id_column, "the labels")
    _require_column(label_frame, target, "the labels")
    common = label_frame.filter(pl.col(target).is_not_null()).select(id_column)
    for name, frame in frames.items():
        _require_column(frame, id_column, f"feature set '{name}'")
        frame_ids, common = _matching_ids(frame.select(id_column), common, id_column)
        common = common.join(frame_ids, on=id_column, how="semi")
        if common.height == 0:
            raise DataError(
                f"no '{id_column}' is in the labels and in every feature set (none left after "
                f"feature set '{name}'): check that they describe the same entities"
            )
    if verbose:
        print(f"{common.height:,} entities (in the labels and every feature set), {folds}-fold cross-validation, "
              f"seed {seed}")
    results = []
    for name, frame in frames.items():
        frame_ids, ids = _matching_ids(frame, common, id_column)
        restricted = frame_ids.join(ids, on=id_column, how="semi")
        if verbose:
            print(f"[{name}]")
        table = evaluate(restricted, label_frame, id_column, target, models, folds, seed, task, model_params, verbose)
        results.append(table.select(pl.lit(name).alias("features"), pl.all()))
    if stack:
        name = "stacked: " + " | ".join(stack)
        joined, groups = common, []
        for number, part in enumerate(stack):
            # every column gets its set's number, so equal names in two sets never clash
            frame = _polars(frames[part], f"feature set '{part}'")
            renamed = {c: f"{number}:{c}" for c in frame.columns if c != id_column}
            frame_ids, joined = _matching_ids(frame.rename(renamed), joined, id_column)
            joined = joined.join(frame_ids, on=id_column, how="inner")
            groups.append([renamed[c] for c in _numeric_columns(frame, id_column)])
        if verbose:
            print(f"[{name}]")
        table = evaluate(joined, label_frame, id_column, target, models, folds, seed, task, model_params, verbose,
                         stack_groups=groups)
        results.append(table.select(pl.lit(name).alias("features"), pl.all()))
    return pl.concat(results)


def concat_features(a: pl.DataFrame | pd.DataFrame, b: pl.DataFrame | pd.DataFrame, id_column: str,
                    suffix: str = "_b") -> pl.DataFrame:
    """Join two feature tables on `id_column` (entities in both); clashing names in `b` get `suffix`.

    Raises:
        ColumnError: `id_column` missing. DataError: no common id, or duplicate ids.
    """
    a, b = _polars(a, "the first feature table"), _polars(b, "the second feature table")
    _require_column(a, id_column, "the first feature table")
    _require_column(b, id_column, "the second feature table")
    for frame, what in ((a, "first"), (b, "second")):
        _require_unique_ids(frame, id_column, f"the {what} feature table")
    a, b = _matching_ids(a, b, id_column)
    b = b.rename({c: f"{c}{suffix}" for c in b.columns if c != id_column and c in a.columns})
    order = "__eventseq_order__"  # keep a's row order whatever the Polars version's join does
    joined = (a.with_row_index(order).join(b, on=id_column, how="inner").sort(order).drop(order))
    if joined.height == 0:
        raise DataError(f"the two feature tables share no '{id_column}' value: {_id_examples(a, b, id_column)}")
    return joined


def format_table(table: pl.DataFrame, markdown: bool = False) -> str:
    """Render an `evaluate` / `compare_feature_sets` table: one row per result, "mean ± std".

    Args:
        table: the result table.
        markdown: a Markdown table instead of aligned plain text.
    """
    header = [c for c in ("features", "model", "metric") if c in table.columns] + ["mean ± std", "seconds"]
    rows = [
        [*(str(row[c]) for c in header[:-2]), f"{row['mean']:.4f} ± {row['std']:.4f}", f"{row['seconds']:.1f}"]
        for row in table.iter_rows(named=True)  # a handful of result rows, not data
    ]
    return render_table(header, rows, markdown, right_aligned=("seconds",))


# ----------------------------------------------------------------------------- internals


def check_finite_embeddings(frame: pl.DataFrame, source: str) -> None:
    """Refuse NaN/inf in the emb_* columns: a model that produced them is broken, and a score on them means nothing.

    Raises:
        DataError: naming `source` (a file or a feature set), the count and the first entity's row.
    """
    columns = [column for column in frame.columns if column.startswith("emb_")]
    if not columns:
        return
    bad = frame.select(pl.any_horizontal([~pl.col(c).is_finite().fill_null(False) for c in columns]).alias("bad"))
    count = int(bad.get_column("bad").sum())
    if count:
        row = int(bad.get_column("bad").arg_true()[0])
        raise DataError(f"{source} has NaN/inf embeddings for {count:,} entities (first at row {row}): the model "
                        f"that wrote them produced non-finite outputs; retrain it or embed again")


def _polars(frame: Any, what: str) -> pl.DataFrame:
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pd.DataFrame):
        return pl.from_pandas(frame)
    raise DataError(f"{what} must be a Polars or pandas DataFrame, got {type(frame).__name__}")


def _require_column(frame: pl.DataFrame, column: str, where: str) -> None:
    if column not in frame.columns:
        raise ColumnError(
            f"column '{column}' not found in {where}{did_you_mean(column, frame.columns)}; "
            f"columns: {frame.columns[:20]}{' ...' if frame.width > 20 else ''}"
        )


def _require_unique_ids(frame: pl.DataFrame, id_column: str, where: str) -> None:
    duplicated = frame.filter(pl.col(id_column).is_duplicated())
    if duplicated.height:
        raise DataError(
            f"{where} has {duplicated.height} rows with a repeated '{id_column}' "
            f"(e.g. {duplicated[id_column][0]!r}): expected one row per entity"
        )
    if frame[id_column].null_count():
        raise DataError(f"{where} has null '{id_column}' values")


def _matching_ids(a: pl.DataFrame, b: pl.DataFrame, id_column: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Give both id columns one dtype so they can be joined (String when they differ otherwise)."""
    left, right = a.schema[id_column], b.schema[id_column]
    if left == right:
        return a, b
    if left.is_integer() and right.is_integer():
        common: pl.DataType = pl.Int64
    else:
        common = pl.String
    return a.with_columns(pl.col(id_column).cast(common)), b.with_columns(pl.col(id_column).cast(common))


def _id_examples(a: pl.DataFrame, b: pl.DataFrame, id_column: str) -> str:
    return f"e.g. {a[id_column].head(3).to_list()} vs {b[id_column].head(3).to_list()}"


def _numeric_columns(frame: pl.DataFrame, id_column: str) -> list[str]:
    """The columns `evaluate` learns from: numeric and boolean ones, the id column left out."""
    return [c for c, t in frame.schema.items() if c != id_column and (t.is_numeric() or t == pl.Boolean)]


def _design(
    features: Any, labels: Any, id_column: str, target: str, task: str
) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Join, validate and convert: (X [N, F] float64, y [N], feature names, task), rows sorted by id."""
    if task not in TASKS:
        raise ConfigError(f"task={task!r}: expected one of {list(TASKS)}")
    features = _polars(features, "features")
    labels = _polars(labels, "labels")
    _require_column(features, id_column, "the features")
    _require_column(labels, id_column, "the labels")
    _require_column(labels, target, "the labels")
    if target in features.columns:
        raise ColumnError(
            f"the features contain the target column '{target}': drop it (it would leak the answer)"
        )
    _require_unique_ids(features, id_column, "the features")
    if labels.schema[target].is_float():
        bad = labels.filter(~pl.col(target).is_finite() & pl.col(target).is_not_null())
        if bad.height:
            raise DataError(f"target '{target}' has {bad.height:,} NaN/inf values in the labels (first: entity "
                            f"{bad.get_column(id_column)[0]!r}): a missing target must be null; drop or fill them")
    labels = labels.select(id_column, target).filter(pl.col(target).is_not_null())
    _require_unique_ids(labels, id_column, "the labels")
    numeric = _numeric_columns(features, id_column)
    skipped = [c for c in features.columns if c != id_column and c not in numeric]
    if not numeric:
        raise ColumnError(
            f"the features have no numeric column besides '{id_column}' "
            f"(columns: {features.columns[:20]}): nothing to learn from"
        )
    if skipped:
        print(f"note: skipping {len(skipped)} non-numeric feature columns: {skipped[:10]}", file=sys.stderr)
    features, labels = _matching_ids(features.select(id_column, *numeric), labels, id_column)
    joined = features.join(labels, on=id_column, how="inner").sort(id_column)
    unlabelled = features.height - joined.height
    if unlabelled and joined.height:
        # reported, never silently dropped: these entities have features but no (non-null) label
        example = features.join(labels, on=id_column, how="anti")[id_column].head(3).to_list()
        print(f"note: {unlabelled:,} of {features.height:,} entities have no '{target}' label and are left out "
              f"(e.g. {example})", file=sys.stderr)
    if joined.height == 0:
        raise DataError(
            f"no '{id_column}' value is in both the features and the labels "
            f"({_id_examples(features, labels, id_column)}): check the id column and the files"
        )
    X = joined.select(pl.col(numeric).cast(pl.Float64)).to_numpy()
    infinite = ~np.isfinite(X) & ~np.isnan(X)
    if infinite.any():
        column = numeric[int(np.argwhere(infinite.any(axis=0))[0, 0])]
        raise DataError(f"feature column '{column}' has infinite values: replace them (or make them null)")
    y_series = joined[target]
    if task == "auto":
        task = detect_task(y_series)
    elif y_series.n_unique() < 2:
        detect_task(y_series)  # raises the one-value error
    if task == "regression":
        if not y_series.dtype.is_numeric():
            raise ColumnError(f"regression target '{target}' has dtype {y_series.dtype}: expected numbers")
        y = y_series.cast(pl.Float64).to_numpy()
    else:
        classes, y = np.unique(y_series.to_numpy(), return_inverse=True)
        if task == "binary" and len(classes) != 2:
            raise DataError(
                f"target '{target}' has {len(classes)} classes ({list(classes[:10])}): binary needs two; "
                f"use task='multiclass'"
            )
    return X, y, numeric, task


def _fold_indices(y: np.ndarray, task: str, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    if not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds={folds!r}: cross-validation needs at least 2")
    if len(y) < folds:
        raise DataError(f"{len(y)} labelled entities are fewer than folds={folds}")
    if task == "regression":
        return list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(y))
    counts = np.bincount(y)
    if counts.min() < folds:
        raise DataError(
            f"a target class has {counts.min()} entities, fewer than folds={folds}: every fold needs every "
            f"class; use fewer folds{' or task=regression' if task == 'multiclass' else ''}"
        )
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _check_model_params(name: str, task: str, seed: int, params: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """Build the model once, so that a parameter it does not take is named before any fold is fitted."""
    try:
        _make_model(name, task, seed, params)
    except (TypeError, ValueError) as error:
        message = str(error).splitlines()[0]
        keys = [key for key in given if f"'{key}'" in message or key in message] or list(given)
        where = f"model_params.{name}.{keys[0]}" if keys else f"model_params.{name}"
        raise ConfigError(f"{where}: {name} does not take it ({message}); see its documentation for the "
                          f"parameters it takes") from None


def _make_model(name: str, task: str, seed: int, params: Mapping[str, Any]) -> Any:
    classify = task != "regression"
    if name == "logreg":
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        if classify:
            final = LogisticRegression(random_state=seed, **params)
        else:
            ridge = {k: v for k, v in params.items() if k not in ("C", "max_iter")}
            ridge.setdefault("alpha", 1.0 / params.get("C", 1.0))
            final = Ridge(**ridge)
        # keep_empty_features: a column that is all-null in a training fold stays (as 0), so the
        # column count is the same at predict time
        imputer = SimpleImputer(strategy="median", keep_empty_features=True)
        return Pipeline([("impute", imputer), ("scale", StandardScaler()), ("model", final)])
    if name == "lightgbm":
        import lightgbm

        klass = lightgbm.LGBMClassifier if classify else lightgbm.LGBMRegressor
        return klass(random_state=seed, **params)
    import catboost

    if classify:
        loss = "MultiClass" if task == "multiclass" else "Logloss"
        return catboost.CatBoostClassifier(random_seed=seed, loss_function=loss, **params)
    return catboost.CatBoostRegressor(random_seed=seed, **params)


STACK_FOLDS = 3  # inner folds of a stacked model's out-of-fold predictions


def _make_stacked(name: str, task: str, seed: int, params: Mapping[str, Any], groups: list[list[int]]) -> Any:
    """One `name` model per column group, combined by a (logistic) regression on their predictions."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import StackingClassifier, StackingRegressor
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.pipeline import Pipeline

    estimators = [(f"group{number}", Pipeline([
        ("select", ColumnTransformer([("columns", "passthrough", columns)])),
        ("model", _make_model(name, task, seed, params)),
    ])) for number, columns in enumerate(groups)]
    if task == "regression":
        return StackingRegressor(estimators, final_estimator=RidgeCV(),
                                 cv=KFold(STACK_FOLDS, shuffle=True, random_state=seed))
    return StackingClassifier(estimators, final_estimator=LogisticRegression(max_iter=1000),
                              cv=StratifiedKFold(STACK_FOLDS, shuffle=True, random_state=seed))


def _score(model: Any, X: np.ndarray, y: np.ndarray, task: str) -> float:
    if task == "binary":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(y, model.predict_proba(X)[:, 1]))
    predicted = np.asarray(model.predict(X)).reshape(len(y))
    if task == "multiclass":
        return float(np.mean(predicted.astype(np.int64) == y))
    return float(np.sqrt(np.mean((predicted - y) ** 2)))


def _available_models(models: Iterable[str]) -> list[str]:
    models = list(models)
    for name in models:
        if name not in MODELS:
            raise ConfigError(f"unknown model '{name}'{did_you_mean(name, MODELS)}; available: {list(MODELS)}")
    available = []
    for name in models:
        package = _PACKAGES.get(name)
        if package is not None and importlib.util.find_spec(package) is None:
            print(f"note: {package} is not installed, skipping model '{name}' "
                  f"(pip install 'eventseq[downstream]')", file=sys.stderr)
            continue
        available.append(name)
    if not available:
        raise ConfigError(f"none of the models {models} is available; install 'eventseq[downstream]' or use logreg")
    return available


def _cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    task: str,
    models: list[str],
    folds: int,
    seed: int,
    model_params: Mapping[str, Mapping[str, Any]] | None,
    verbose: bool,
    stack_groups: list[list[int]] | None = None,
) -> pl.DataFrame:
    model_params = dict(model_params or {})
    unknown = [name for name in model_params if name not in MODELS]
    if unknown:
        raise ConfigError(f"model_params names unknown model '{unknown[0]}'{did_you_mean(unknown[0], MODELS)}")
    splits = _fold_indices(y, task, folds, seed)
    metric = METRICS[task]
    rows = []
    for name in _available_models(models):
        params = {**DEFAULT_PARAMS[name], **model_params.get(name, {})}
        _check_model_params(name, task, seed, params, model_params.get(name, {}))
        scores = []
        started = time.perf_counter()
        for train_index, test_index in splits:
            if stack_groups is None:
                model = _make_model(name, task, seed, params)
            else:
                model = _make_stacked(name, task, seed, params, stack_groups)
            model.fit(X[train_index], y[train_index])
            scores.append(_score(model, X[test_index], y[test_index], task))
        seconds = time.perf_counter() - started
        rows.append({"model": name, "metric": metric, "mean": float(np.mean(scores)),
                     "std": float(np.std(scores)), "seconds": seconds})
        if verbose:
            print(f"  {name:<9} {metric} {rows[-1]['mean']:.4f} ± {rows[-1]['std']:.4f}  ({seconds:.1f} s)")
    return pl.DataFrame(rows, schema={"model": pl.String, "metric": pl.String, "mean": pl.Float64,
                                      "std": pl.Float64, "seconds": pl.Float64})
