from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from eventseq.errors import ConfigError
from eventseq.plots import plot_embedding_map, plot_training_curves


def _embeddings(n: int = 60) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    values = rng.normal(size=(n, 4)) + labels[:, None] * 3
    frame = pl.DataFrame({"id": np.arange(n), **{f"emb_{i}": values[:, i] for i in range(4)}})
    return frame, pl.DataFrame({"id": np.arange(n), "label": labels})


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_map_is_a_png(tmp_path, method):
    embeddings, labels = _embeddings()
    path = plot_embedding_map(embeddings, labels, "id", tmp_path / "map.png", target="label", method=method)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("*.tmp"))


def test_embedding_map_rejects_unknown_method_and_no_columns(tmp_path):
    embeddings, labels = _embeddings()
    with pytest.raises(ConfigError, match="pca, tsne or umap"):
        plot_embedding_map(embeddings, labels, "id", tmp_path / "map.png", method="lda")
    with pytest.raises(ConfigError, match="emb_"):
        plot_embedding_map(embeddings.select("id"), None, "id", tmp_path / "map.png")


def test_training_curves_join_resumed_logs(tmp_path):
    first = tmp_path / "a.csv"
    second = tmp_path / "b.csv"
    pl.DataFrame({"epoch": [0, 0], "step": [5, 5], "train_loss": [0.9, None], "val_loss": [None, 0.8]}).write_csv(first)
    pl.DataFrame({"epoch": [1], "step": [10], "train_loss": [0.7], "val_loss": [0.6]}).write_csv(second)
    assert plot_training_curves([first, second], tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert plot_training_curves([tmp_path / "missing.csv"], tmp_path / "none.png") is None


def test_plotting_leaves_the_callers_matplotlib_backend_alone(tmp_path):
    """A notebook's inline backend must survive `train`/`pretrain` (which save curves.png)."""
    import matplotlib
    import polars as pl

    from eventseq.plots import plot_embedding_map, plot_training_curves

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        log = tmp_path / "metrics.csv"
        pl.DataFrame({"epoch": [0, 1], "train_loss": [1.0, 0.5], "val_auroc": [0.6, 0.7]}).write_csv(log)
        assert plot_training_curves(log, tmp_path / "curves.png").stat().st_size > 0
        embeddings = pl.DataFrame({"id": [1, 2, 3], "emb_0": [0.0, 1.0, 2.0], "emb_1": [1.0, 0.0, 1.0]})
        assert plot_embedding_map(embeddings, None, "id", tmp_path / "map.png").stat().st_size > 0
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
