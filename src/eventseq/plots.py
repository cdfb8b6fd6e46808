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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
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
    plt.close(figure)
    return Path(output)
