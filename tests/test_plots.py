from __future__ import annotations

import re

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


def test_training_curves_name_their_axes_and_mark_the_best_epoch(tmp_path):
    from eventseq.plots import metric_label, training_curves_figure

    log = tmp_path / "metrics.csv"
    pl.DataFrame({"epoch": [0, 1, 2], "train_loss": [1.0, 0.6, 0.5], "val_loss": [0.9, 0.7, 0.8],
                  "val_ndcg_at_10": [0.3, 0.5, 0.4]}).write_csv(log)
    figure = training_curves_figure(log, monitor=("val_ndcg_at_10", "max"), title="rec_full (rec_ranker)")
    loss_axis, score_axis = figure.axes
    assert (loss_axis.get_xlabel(), loss_axis.get_ylabel()) == ("epoch", "loss")
    assert (score_axis.get_xlabel(), score_axis.get_ylabel()) == ("epoch", "metric value")
    legend = [text.get_text() for text in score_axis.get_legend().get_texts()]
    assert legend == ["validation NDCG@10", "best epoch 2: validation NDCG@10 0.5"]  # epochs counted from 1
    assert [text.get_text() for text in loss_axis.get_legend().get_texts()][:2] == ["training loss", "validation loss"]
    assert figure._suptitle.get_text() == "rec_full (rec_ranker)"
    assert metric_label("val_hr_at_10") == "validation hit rate@10"


def test_embedding_map_axes_say_what_they_are_and_the_title_says_whether_the_label_separates():
    from eventseq.plots import embedding_map_figure

    embeddings, labels = _embeddings(90)  # the label shifts every dimension by 3: well separated
    axis = embedding_map_figure(embeddings, labels, "id", target="label").axes[0]
    assert axis.get_xlabel().startswith("PC1 (") and axis.get_xlabel().endswith("% of the variance)")
    assert re.search(r"the embeddings separate label\n5-NN accuracy 0\.9\d, majority class 0\.50", axis.get_title())
    noise = labels.with_columns(pl.Series("label", np.random.default_rng(1).permutation(labels["label"].to_numpy())))
    assert "hardly separate" in embedding_map_figure(embeddings, noise, "id", target="label").axes[0].get_title()


def test_several_runs_share_one_figure_one_colour_each_with_each_runs_best_epoch(tmp_path):
    """A cross-validated run's folds (or auto's candidates) on one curves.png."""
    from eventseq.plots import training_curves_figure

    runs = {}
    for number, scores in enumerate(([0.6, 0.7, 0.65], [0.5, 0.55, 0.8])):
        log = tmp_path / f"fold{number}.csv"
        pl.DataFrame({"epoch": [0, 1, 2], "train_loss": [1.0, 0.8, 0.6], "val_loss": [0.9, 0.8, 0.85],
                      "val_auroc": scores}).write_csv(log)
        runs[f"fold {number + 1}"] = log
    runs["fold 3"] = [tmp_path / "missing.csv"]  # a run without logs is left out, not an error
    figure = training_curves_figure(runs, monitor=("val_auroc", "max"), title="cv")
    loss_axis, score_axis = figure.axes
    assert [text.get_text() for text in score_axis.get_legend().get_texts()] == ["fold 1", "fold 2"]
    assert [text.get_text() for text in loss_axis.get_legend().get_texts()] == ["fold 1", "fold 2"]
    assert len(loss_axis.lines) == 4  # training and validation loss per run
    stars = [line for line in score_axis.lines if line.get_marker() == "*"]
    assert [(list(star.get_xdata()), list(star.get_ydata())) for star in stars] == [([2], [0.7]), ([3], [0.8])]
    assert stars[0].get_color() == score_axis.lines[0].get_color()  # a run's best epoch in its own colour
    assert score_axis.get_title().startswith("validation AUROC")
    assert training_curves_figure({"fold 1": [tmp_path / "missing.csv"]}) is None
    assert plot_training_curves(runs, tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
