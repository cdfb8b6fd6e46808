"""Plots a person would rather look at than read: training curves and maps of entity embeddings.

Each plot is built as a matplotlib Figure (`training_curves_figure`, `embedding_map_figure`: what the
tests read) and saved as a PNG by its `plot_*` function. No pyplot: the caller's backend (a
notebook's) stays as it is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from eventseq._io import atomic_path


def metric_label(name: str) -> str:
    """A logged metric's name as a reader says it: val_ndcg_at_10 -> "validation NDCG@10"."""
    words = {"val": "validation", "train": "training", "test": "test", "auroc": "AUROC", "ndcg": "NDCG",
             "hr": "hit rate", "mrr": "MRR", "rmse": "RMSE", "mae": "MAE", "f1": "F1", "acc": "accuracy"}
    text = " ".join(words.get(part, part) for part in name.split("_"))
    return re.sub(r" at (\d+)\b", r"@\1", text)


def _per_epoch(paths: list[Path]) -> pl.DataFrame | None:
    parts = [pl.read_csv(p, infer_schema_length=None) for p in paths if p.exists()]
    parts = [part for part in parts if "epoch" in part.columns]
    if not parts:
        return None
    log = pl.concat(parts, how="diagonal_relaxed")
    return log.group_by("epoch").agg(pl.all().drop_nulls().last()).sort("epoch")


def _panels() -> tuple[Any, Any, Any]:
    """A Figure with the loss panel (left) and the score panel (right)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.4))
    loss_axis, score_axis = figure.subplots(1, 2)
    return figure, loss_axis, score_axis


def _best_epoch(log: pl.DataFrame, column: str, mode: str) -> dict[str, Any] | None:
    """The row (epoch, column) of the best logged value of `column` (mode min or max); None if never logged."""
    values = log.select("epoch", column).drop_nulls()
    return values.sort(column, descending=mode == "max").row(0, named=True) if values.height else None


def _finish(figure: Any, title: str | None) -> Any:
    """Grid, whole-epoch ticks and a legend where something is labelled, on every panel; the title; the layout."""
    from matplotlib.ticker import MaxNLocator

    for axis in figure.axes:
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


CurveLogs = str | os.PathLike | list[str | os.PathLike]  # one run's metrics.csv, or its parts in order


def _paths(logs: CurveLogs) -> list[Path]:
    return [Path(p) for p in (logs if isinstance(logs, list) else [logs])]


def training_curves_figure(
    metrics_csv: CurveLogs | Mapping[str, CurveLogs],
    monitor: tuple[str, str] | None = None,
    title: str | None = None,
) -> Any:
    """The training curves of a run as a Figure: losses on the left, validation metrics on the right.

    Args:
        metrics_csv: one Lightning metrics.csv, or several in order (a run and its resumed parts);
            or several runs by name ({"fold 1": ..., "fold 2": ...}: a cross-validated run's folds,
            `encoder=auto`'s candidates), drawn one colour each: training (solid) and validation
            (dashed) loss on the left, the monitored metric on the right with each run's best epoch.
        monitor: (metric, "min" or "max"): the early-stopping metric; its best epoch is marked on
            both panels (the epoch whose weights the saved model holds).
        title: shown above the panels (the run's name).

    Returns:
        The Figure, or None if the logs have no epoch metrics yet.
    """
    if isinstance(metrics_csv, Mapping):
        return _runs_figure(metrics_csv, monitor, title)
    per_epoch = _per_epoch(_paths(metrics_csv))
    if per_epoch is None:
        return None
    losses = [c for c in per_epoch.columns if c.endswith("_loss") and not c.startswith("test")]
    scores = [c for c in per_epoch.columns if c.startswith("val_") and not c.endswith("_loss")]
    if not losses and not scores:
        return None
    epochs = per_epoch["epoch"] + 1  # Lightning counts from 0; people from 1
    figure, loss_axis, score_axis = _panels()
    for axis, columns, name in ((loss_axis, losses, "loss (lower is better)"),
                                (score_axis, scores, "validation metrics")):
        for column in columns:
            axis.plot(epochs, per_epoch[column], marker="o", markersize=3, label=metric_label(column))
        axis.set(title=name, xlabel="epoch", ylabel="loss" if axis is loss_axis else "metric value")
    if monitor is not None and monitor[0] in per_epoch.columns:
        column = monitor[0]
        best = _best_epoch(per_epoch, column, monitor[1])
        if best is not None:
            for axis in (loss_axis, score_axis):
                axis.axvline(best["epoch"] + 1, color="grey", linestyle="--", linewidth=1,
                             label=f"best epoch {best['epoch'] + 1}: {metric_label(column)} {best[column]:.4g}")
    return _finish(figure, title)


def _runs_figure(runs: Mapping[str, CurveLogs], monitor: tuple[str, str] | None, title: str | None) -> Any:
    """Several runs on one Figure (see `training_curves_figure`); None if none has epoch metrics."""
    logs = {name: log for name, paths in runs.items() if (log := _per_epoch(_paths(paths))) is not None}
    if not logs:
        return None
    figure, loss_axis, score_axis = _panels()
    colours = [f"C{number % 10}" for number in range(len(logs))]
    score_name = monitor[0] if monitor is not None else None
    for (name, log), colour in zip(logs.items(), colours):
        epochs = log["epoch"] + 1  # Lightning counts from 0; people from 1
        for column, style in (("train_loss", "-"), ("val_loss", "--")):
            if column in log.columns:
                loss_axis.plot(epochs, log[column], style, color=colour, marker="o", markersize=2,
                               label=name if style == "-" or "train_loss" not in log.columns else None)
        if score_name is None:  # no monitor: the first validation score any run logged
            score_name = next((c for c in log.columns if c.startswith("val_") and not c.endswith("_loss")), None)
        if score_name in log.columns:
            values = log.select("epoch", score_name).drop_nulls()
            score_axis.plot(values["epoch"] + 1, values[score_name], color=colour, marker="o", markersize=2,
                            label=name)
            best = _best_epoch(values, score_name, monitor[1]) if monitor is not None else None
            if best is not None:
                score_axis.plot(best["epoch"] + 1, best[score_name], "*", color=colour, markersize=11)
    loss_axis.set(title="loss (solid: training, dashed: validation)", xlabel="epoch", ylabel="loss")
    score_axis.set(title=metric_label(score_name) + (" (★: best epoch, the weights kept)" if monitor else "")
                   if score_name else "validation metrics", xlabel="epoch", ylabel="metric value")
    return _finish(figure, title)


def plot_training_curves(
    metrics_csv: CurveLogs | Mapping[str, CurveLogs],
    output: str | os.PathLike,
    monitor: tuple[str, str] | None = None,
    title: str | None = None,
) -> Path | None:
    """Save `training_curves_figure` as a PNG (written atomically); None if there is nothing to plot yet."""
    figure = training_curves_figure(metrics_csv, monitor, title)
    if figure is None:
        return None
    return _save(figure, output)


def embedding_map_figure(
    embeddings: pl.DataFrame,
    labels: pl.DataFrame | None,
    id_column: str,
    target: str | None = None,
    method: str = "pca",
    max_points: int = 5000,
    seed: int = 0,
) -> Any:
    """A 2-D map of entity embeddings (emb_* columns) as a Figure, coloured by a label.

    The axes say what they are (PC1 with its share of the variance, t-SNE or UMAP components), and
    with a label the title says how well the embeddings themselves (not the 2-D picture) separate it:
    the 5-nearest-neighbour accuracy, cross-validated, against the majority class.

    Args:
        embeddings: id column + emb_* columns (as written by `eventseq embed`).
        labels: optional table with the id column and `target`.
        method: pca (default), tsne (scikit-learn), or umap (if umap-learn is installed).
        max_points: a random sample of at most this many entities is drawn.

    Raises:
        ConfigError: no emb_* columns, an unknown method, or umap without umap-learn.
    """
    import numpy as np
    from matplotlib.figure import Figure

    from eventseq.errors import ConfigError

    frame = embeddings
    if labels is not None and target is not None:
        frame = frame.join(labels.select(id_column, target), on=id_column, how="inner")
    if frame.height > max_points:
        frame = frame.sample(max_points, seed=seed)
    values = frame.select(pl.col("^emb_.*$")).to_numpy()
    if values.shape[1] == 0:
        raise ConfigError("no emb_* columns to plot")
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        points = pca.fit_transform(values)
        share = pca.explained_variance_ratio_
        axis_names = (f"PC1 ({share[0]:.0%} of the variance)", f"PC2 ({share[1]:.0%} of the variance)")
    elif method == "tsne":
        from sklearn.manifold import TSNE

        points = TSNE(n_components=2, random_state=seed, init="pca").fit_transform(values)
        axis_names = ("t-SNE 1", "t-SNE 2")
    elif method == "umap":
        try:
            import umap
        except ImportError:
            raise ConfigError("method=umap needs the umap-learn package (pip install umap-learn)") from None
        points = umap.UMAP(n_components=2, random_state=seed).fit_transform(values)
        axis_names = ("UMAP 1", "UMAP 2")
    else:
        raise ConfigError(f"method={method!r}: expected pca, tsne or umap")
    figure = Figure(figsize=(6.5, 5.5))
    axis = figure.subplots()
    title = f"entity embeddings ({frame.height:,} entities)"
    if target is not None and target in frame.columns:
        colours = frame[target].to_numpy()
        for value in np.unique(colours):
            chosen = colours == value
            axis.scatter(points[chosen, 0], points[chosen, 1], s=6, alpha=0.6, label=f"{target} = {value}")
        axis.legend(markerscale=3, fontsize="small")
        title += "\n" + _separation(values, colours, target, seed)
    else:
        axis.scatter(points[:, 0], points[:, 1], s=6, alpha=0.6)
    axis.set(title=title, xlabel=axis_names[0], ylabel=axis_names[1])
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def _separation(values: Any, classes: Any, target: str, seed: int) -> str:
    """How well the embeddings separate `classes`: 5-NN accuracy (3-fold) against the majority class."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    _, counts = np.unique(classes, return_counts=True)
    majority = counts.max() / counts.sum()
    if len(counts) < 2 or counts.min() < 3:
        return f"too few entities per {target} value\nto measure how well the embeddings separate them"
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    accuracy = float(cross_val_score(KNeighborsClassifier(5), values, classes, cv=folds).mean())
    verdict = "separate" if accuracy > majority + 0.05 else "hardly separate"
    return f"the embeddings {verdict} {target}\n5-NN accuracy {accuracy:.2f}, majority class {majority:.2f}"


def plot_embedding_map(
    embeddings: pl.DataFrame,
    labels: pl.DataFrame | None,
    id_column: str,
    output: str | os.PathLike,
    target: str | None = None,
    method: str = "pca",
    max_points: int = 5000,
    seed: int = 0,
) -> Path:
    """Save `embedding_map_figure` as a PNG (written atomically); the arguments are its own."""
    return _save(embedding_map_figure(embeddings, labels, id_column, target, method, max_points, seed), output)


def _save(figure: Any, output: str | os.PathLike) -> Path:
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return Path(output)
