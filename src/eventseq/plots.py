"""Plots a person would rather look at than read: training curves."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from eventseq._io import atomic_path


def plot_training_curves(
    metrics_csv: str | os.PathLike | list[str | os.PathLike], output: str | os.PathLike
) -> Path | None:
    """Plot per-epoch losses and validation metrics from Lightning CSV logs into a PNG.

    Args:
        metrics_csv: one metrics.csv, or several in order (a run and its resumed parts).
        output: PNG path (written atomically).

    Returns the PNG path, or None if the logs have no epoch metrics yet.
    """
    from matplotlib.figure import Figure

    paths = [Path(p) for p in (metrics_csv if isinstance(metrics_csv, list) else [metrics_csv])]
    parts = [pl.read_csv(p, infer_schema_length=None) for p in paths if p.exists()]
    parts = [part for part in parts if "epoch" in part.columns]
    if not parts:
        return None
    log = pl.concat(parts, how="diagonal_relaxed")
    per_epoch = log.group_by("epoch").agg(pl.all().drop_nulls().last()).sort("epoch")
    losses = [c for c in per_epoch.columns if c.endswith("_loss") and not c.startswith("test")]
    scores = [c for c in per_epoch.columns if c.startswith("val_") and not c.endswith("_loss")]
    if not losses and not scores:
        return None
    figure = Figure(figsize=(11, 4))  # not pyplot: the caller's backend (a notebook's) stays as it is
    axes = figure.subplots(1, 2)
    for column in losses:
        axes[0].plot(per_epoch["epoch"], per_epoch[column], marker="o", label=column)
    axes[0].set(title="loss", xlabel="epoch")
    for column in scores:
        axes[1].plot(per_epoch["epoch"], per_epoch[column], marker="o", label=column)
    axes[1].set(title="validation metrics", xlabel="epoch")
    for axis in axes:
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    figure.tight_layout()
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return Path(output)


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
    """2-D map of entity embeddings (emb_* columns), coloured by a label, saved as PNG.

    Args:
        embeddings: id column + emb_* columns (as written by `eventseq embed`).
        labels: optional table with the id column and `target`.
        method: pca (default), tsne (scikit-learn), or umap (if umap-learn is installed).
        max_points: a random sample of at most this many entities is drawn.
    """
    from matplotlib.figure import Figure
    import numpy as np

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

        points = PCA(n_components=2, random_state=seed).fit_transform(values)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        points = TSNE(n_components=2, random_state=seed, init="pca").fit_transform(values)
    elif method == "umap":
        try:
            import umap
        except ImportError:
            raise ConfigError("method=umap needs the umap-learn package (pip install umap-learn)") from None
        points = umap.UMAP(n_components=2, random_state=seed).fit_transform(values)
    else:
        raise ConfigError(f"method={method!r}: expected pca, tsne or umap")
    figure = Figure(figsize=(6, 5))
    axis = figure.subplots()
    if target is not None and target in frame.columns:
        colours = frame[target].to_numpy()
        for value in np.unique(colours):
            chosen = colours == value
            axis.scatter(points[chosen, 0], points[chosen, 1], s=6, alpha=0.6, label=f"{target}={value}")
        axis.legend(markerscale=3)
    else:
        axis.scatter(points[:, 0], points[:, 1], s=6, alpha=0.6)
    axis.set(title=f"entity embeddings ({method.upper()}, {frame.height:,} entities)")
    figure.tight_layout()
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return Path(output)
