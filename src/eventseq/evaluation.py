"""`eventseq evaluate` as a Python function: classical models cross-validated on a model's embeddings,
on per-entity aggregates of the prepared data, and on both.

`evaluate(config)` gathers the feature sets (an embeddings file, embeddings computed from a saved
model, aggregates of a prepare directory), the labels and the task, then hands them to
`downstream.compare_feature_sets` and writes the report. The CLI command is this function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from eventseq import downstream
from eventseq._io import atomic_path, check_output, read_labels, read_parquet
from eventseq.config import check_options, option, with_overrides
from eventseq.data.store import PreparedData, load_prepared
from eventseq.errors import ColumnError, ConfigError, DataError


@dataclass
class EvaluateConfig:
    """Cross-validate classical models on embeddings, aggregate features, and both.

    Attributes:
        embeddings: Parquet written by `eventseq embed` (id + emb_* columns); optional.
        model: a saved model (e.g. a CoLES run's model/): embeddings are computed from it and
            `data`; given with `embeddings`, the file is used and checked against the model's width.
        data: a prepare directory: its sequence table gives the aggregate features, and the target
            when `labels` is not given; optional (but embeddings or data is needed).
        labels: Parquet/CSV with the id column and the target (default: the target column of
            the prepared `data` table).
        target: target column (default: the only target in the schema of `data`).
        id_column: entity id column (default: the schema's id column, else the first column of
            the embeddings file).
        task: auto (2 values: binary; few integer values: multiclass; else regression), binary,
            multiclass or regression.
        models: any of logreg, lightgbm, catboost (a missing package is skipped with a note).
        model_params: per-model keyword overrides, e.g. model_params.lightgbm.n_estimators=500.
        folds: cross-validation folds (stratified for classification); the same for every model
            and feature set.
        seed: seed of the folds and the models.
        aggregates: evaluate aggregate features of `data` (null = yes when data is given).
        stacked: with embeddings and aggregates, also a stacked model per model type: one copy
            fitted on the embeddings, one on the aggregates, a logistic (ridge) regression over their
            out-of-fold predictions (`compare_feature_sets(stack=...)`).
        max_categories: per categorical feature, count/fraction columns for this many most
            frequent values.
        output: report file: .csv for the table, anything else for Markdown; empty = only print.
    """

    embeddings: str | None = None
    model: str | None = None
    data: str | None = None
    labels: str | None = None
    target: str | None = None
    id_column: str | None = None
    task: str = option("auto", choices=("auto", "binary", "multiclass", "regression"))
    models: list[str] = field(default_factory=lambda: ["logreg", "lightgbm", "catboost"])
    model_params: dict[str, Any] = field(default_factory=dict)
    folds: int = option(5, ge=2)
    seed: int = option(0, ge=0, le=2**32 - 1)
    aggregates: bool | None = None
    stacked: bool = True
    max_categories: int = option(50, ge=0)
    output: str | None = "evaluation.md"


def evaluate(config: EvaluateConfig | None = None, **overrides: Any) -> pl.DataFrame:
    """Cross-validate classical models on each feature set; print the table and write the report.

    Args:
        config: what to evaluate; keyword `overrides` set individual EvaluateConfig fields
            (`evaluate(data="prepared", model="runs/coles/model", output=None)`).

    Returns:
        The result table (`downstream.compare_feature_sets`): one row per feature set, model and metric.

    Raises:
        ConfigError: nothing to evaluate, or a needed input missing (named).
        ColumnError, DataError, FileFormatError: bad embeddings, labels or data, naming the file.
    """
    config = with_overrides(config if config is not None else EvaluateConfig(), overrides, "evaluate")
    check_options(config)
    if config.output:
        check_output(config.output, "file")
    if not config.embeddings and not config.data and not config.model:
        raise ConfigError(
            "evaluate needs embeddings=... (Parquet from `eventseq embed`), data=... (a prepare "
            "directory, for aggregate features), or both"
        )
    prepared = load_prepared(config.data) if config.data else None
    use_aggregates = config.aggregates if config.aggregates is not None else prepared is not None
    if use_aggregates and prepared is None:
        raise ConfigError("aggregates=true needs data=... (a prepare directory)")
    embeddings = _embeddings(config, prepared)
    if not use_aggregates and embeddings is None:
        raise ConfigError("nothing to evaluate: aggregates=false and no embeddings=... given")
    id_column = config.id_column or (prepared.schema.id_column if prepared else embeddings.columns[0])
    target, labels, task = _labels(config, prepared)

    sets = {}
    if use_aggregates:
        assert prepared is not None
        sets["aggregates"] = downstream.aggregate_features(prepared.table, prepared.schema, config.max_categories)
    if embeddings is not None:
        sets["embeddings"] = embeddings
    if use_aggregates and embeddings is not None:
        sets["embeddings + aggregates"] = downstream.concat_features(embeddings, sets["aggregates"], id_column)
    stack = ["embeddings", "aggregates"] if config.stacked and "embeddings + aggregates" in sets else []
    table = downstream.compare_feature_sets(
        sets, labels, id_column, target, config.models, config.folds, config.seed, task, config.model_params,
        verbose=True, stack=stack,
    )
    print()
    print(downstream.format_table(table))
    if config.output:
        _write_report(table, config, target)
    return table


def _embeddings(config: EvaluateConfig, prepared: PreparedData | None) -> pl.DataFrame | None:
    """The embeddings feature set: the file given, checked against the model if both are given, or computed
    from the model and the prepared data; None if neither is given."""
    if config.model and config.embeddings:
        # the file stands for the model's embeddings: it must at least have the model's width
        from eventseq.saved import load_model, require_family

        model = load_model(config.model)
        require_family(model, ("supervised", "self-supervised"), "eventseq evaluate model=", config.model)
        width = getattr(model, "embedding_dim", model.encoder.embedding_dim)
        embeddings = read_embeddings(config.embeddings)
        found = sum(column.startswith("emb_") for column in embeddings.columns)
        if found != width:
            raise DataError(
                f"{config.embeddings} has {found} emb_* columns but model {config.model} embeds into {width} "
                f"dimensions: it was written by another model (re-run `eventseq embed` or drop embeddings=)"
            )
        return embeddings
    if config.model:
        if prepared is None:
            raise ConfigError("model=... needs data=... (a prepare directory) to embed")
        from eventseq.inference import embed

        return embed(config.model, config.data, progress=False)
    return read_embeddings(config.embeddings) if config.embeddings else None


def _labels(config: EvaluateConfig, prepared: PreparedData | None) -> tuple[str, pl.DataFrame, str]:
    """(target column, labels table with the id and the target, task) from the labels file or the prepared data."""
    target = config.target
    if not target:
        if config.labels or prepared is None or len(prepared.schema.targets) != 1:
            known = [t.name for t in prepared.schema.targets] if prepared else []
            raise ConfigError(f"'target' is required (pass target=...){f'; targets in data: {known}' if known else ''}")
        target = prepared.schema.targets[0].name
    if config.labels:
        labels = read_labels(config.labels)
    elif prepared is not None:
        if target not in prepared.table.columns:
            known = [t.name for t in prepared.schema.targets]
            raise ColumnError(f"target '{target}' is not in the prepared data (targets: {known}); pass labels=...")
        labels = prepared.table.select(prepared.schema.id_column, target)
    else:
        raise ConfigError("labels=... is required when no data=... is given")
    task = config.task
    if task == "auto" and prepared is not None and not config.labels:
        task = downstream.prepared_task(prepared.schema, target)
    return target, labels, task


def read_embeddings(path: str | Path) -> pl.DataFrame:
    """An embeddings file (from `eventseq embed`), checked: emb_* columns, all finite.

    Raises:
        ColumnError: no emb_* columns; DataError: NaN/inf values; FileFormatError: an unreadable file.
    """
    embeddings = pl.from_arrow(read_parquet(path))
    assert isinstance(embeddings, pl.DataFrame)
    if not any(column.startswith("emb_") for column in embeddings.columns):
        raise ColumnError(f"embeddings={path} has no emb_* columns (columns: {embeddings.columns[:10]}): it is not "
                          f"a file `eventseq embed` wrote")
    downstream.check_finite_embeddings(embeddings, str(path))
    return embeddings


def _write_report(table: pl.DataFrame, config: EvaluateConfig, target: str) -> None:
    """The table as CSV (an output ending in .csv) or as a Markdown report naming its inputs, written atomically."""
    assert config.output
    output = Path(config.output)
    with atomic_path(output) as tmp:
        if output.suffix.lower() == ".csv":
            table.write_csv(tmp)
        else:
            sources = ", ".join(f"{k}: `{v}`" for k, v in (("embeddings", config.embeddings), ("data", config.data),
                                                            ("labels", config.labels)) if v)
            tmp.write_text(
                f"# Downstream evaluation\n\n- target: `{target}`; {sources}\n"
                f"- {config.folds}-fold cross-validation, seed {config.seed}, the same folds for every row\n\n"
                f"{downstream.format_table(table, markdown=True)}\n"
            )
    print(f"written: {output}")
