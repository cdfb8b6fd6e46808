"""`eventseq demo`: the whole pipeline on built-in synthetic data, end to end.

generate → prepare → train the default model (a GRU, early-stopped, stacked with LightGBM over
per-entity aggregates) → test on held-out entities → save → reload → predict from raw events with the saved schema → metric table, next to
the Bayes-optimal accuracy computed from the generator's true parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from eventseq.config import option
from eventseq._io import check_output, write_json, write_parquet


@dataclass
class DemoJob:
    """The demo.

    Attributes:
        output: directory for data, prepared table, run, predictions and plots.
        n_entities: synthetic clients to generate.
        max_epochs: training epochs at most (early stopping may stop sooner).
        hidden_size: GRU hidden size.
        seed: seed for data and training.
        progress: show progress bars.
        pretrained: also run CoLES pretraining → embeddings → downstream models and fine-tuning,
            and compare them with aggregates and the supervised GRU on the same test entities.
        coles_epochs: CoLES pretraining epochs.
    """

    output: str = "demo_output"
    n_entities: int = option(10_000, ge=50)
    max_epochs: int = option(20, ge=1)
    hidden_size: int = option(64, ge=1)
    seed: int = option(0, ge=0, le=2**32 - 1)
    progress: bool = True
    pretrained: bool = True
    coles_epochs: int = option(8, ge=1)


def run_demo(job: DemoJob) -> dict[str, float]:
    """Run the demo; print and return the metric table."""
    from eventseq.data.prepare import prepare
    from eventseq.data.prepare_config import PrepareConfig
    from eventseq.datasets.synthetic import SYNTHETIC_COLUMNS, make_transactions
    from eventseq.inference import predict
    from eventseq.saved import load_model
    from eventseq.training import TrainConfig, train

    root = check_output(job.output, "directory")
    steps = 8 if job.pretrained else 5
    timings: dict[str, float] = {}
    start = time.perf_counter()
    data = make_transactions(job.n_entities, seed=job.seed)
    write_parquet(data.events.to_arrow(), root / "data" / "events.parquet")
    write_parquet(data.labels.to_arrow(), root / "data" / "labels.parquet")
    timings["generate"] = time.perf_counter() - start
    print(f"[1/{steps}] generated {data.events.height:,} events for {job.n_entities:,} entities → {root / 'data'}")

    start = time.perf_counter()
    prepared = prepare(
        root / "data" / "events.parquet", PrepareConfig(**SYNTHETIC_COLUMNS),
        labels=root / "data" / "labels.parquet", output=root / "prepared",
    )
    timings["prepare"] = time.perf_counter() - start
    print(f"[2/{steps}] prepared → {root / 'prepared'}\n" + prepared.report.summary())

    config = TrainConfig(output=str(root / "run"), seed=job.seed)
    config.data.path = str(root / "prepared")
    config.model.sequence_encoder.hidden_size = job.hidden_size
    config.model.event_encoder.embedding_dims = {"mcc": 16}
    config.trainer.max_epochs = job.max_epochs
    config.data.batch_size = 128
    config.trainer.patience = 4
    config.trainer.progress_bar = job.progress
    start = time.perf_counter()
    result = train(config)
    timings["train"] = time.perf_counter() - start
    weights = result.metrics.get("combined_weights", {})
    print(f"[3/{steps}] trained a GRU for {int(result.metrics['epochs'])} epochs and stacked it with LightGBM over "
          f"aggregates (weights: GRU {weights.get('network', 1):.2f}, aggregates {weights.get('aggregates', 0):.2f}) "
          f"→ {result.model_dir}")

    start = time.perf_counter()
    model = load_model(result.model_dir)
    test_ids = result.dataset.entity_ids(result.splits["test"])
    test_events = data.events.filter(pl.col("entity_id").is_in(test_ids))
    predictions = predict(model, test_events, root / "predictions.parquet", progress=job.progress)
    timings["reload + predict"] = time.perf_counter() - start
    print(f"[4/{steps}] reloaded the model and predicted from raw events → {predictions}")

    scored = pl.read_parquet(root / "predictions.parquet").join(data.labels, on="entity_id")
    reloaded_accuracy = float((scored["label_pred"] == scored["label"]).mean())
    bayes = data.bayes_accuracy(test_ids)
    majority = float(max(scored["label"].mean(), 1 - scored["label"].mean()))
    parts = result.metrics.get("parts", {})
    table = {
        "test accuracy (default: GRU + aggregates)": result.metrics["test_accuracy"],
        "test accuracy (reloaded model, raw events)": reloaded_accuracy,
        "test AUROC (default: GRU + aggregates)": result.metrics["test_auroc"],
        "test AUROC (the GRU alone)": parts.get("network", result.metrics)["test_auroc"],
        "test AUROC (the aggregates part alone)": parts.get("aggregates", {}).get("test_auroc", float("nan")),
        "Bayes-optimal accuracy (same entities)": bayes,
        "majority-class accuracy": majority,
        "default / Bayes-optimal": result.metrics["test_accuracy"] / bayes,
    }
    print(f"[5/{steps}] results on held-out entities\n")
    width = max(len(k) for k in table) + 2
    print(f"{'metric':<{width}}value")
    for name, value in table.items():
        print(f"{name:<{width}}{value:.4f}")
    print("\n" + "  ".join(f"{k}: {v:.1f}s" for k, v in timings.items()))
    print(f"training curves: {result.run_dir / 'curves.png'}")
    write_json(root / "results.json", {"metrics": table, "seconds": timings})
    if not np.isclose(reloaded_accuracy, result.metrics["test_accuracy"], atol=1e-6):
        print("warning: the reloaded model's accuracy differs from the trained one")
    if job.pretrained:
        table.update(_pretrained_stage(job, root, result, timings["train"]))
        write_json(root / "results.json", {"metrics": table, "seconds": timings})
    return table


def _holdout_scores(features: pl.DataFrame, labels: pl.DataFrame, train_ids: np.ndarray, test_ids: np.ndarray,
                    seed: int) -> tuple[float, float]:
    """LightGBM fitted on the train entities' features, accuracy and AUROC on the test entities.

    """
    from lightgbm import LGBMClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score

    frame = features.join(labels.select("entity_id", "label"), on="entity_id")
    columns = [c for c in frame.columns if c not in ("entity_id", "label")]
    fit = frame.filter(pl.col("entity_id").is_in(train_ids))
    test = frame.filter(pl.col("entity_id").is_in(test_ids))
    model = LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=31, verbose=-1, random_state=seed,
                           n_jobs=1)  # OpenMP threads thrash on a busy 2-core machine
    model.fit(fit.select(columns).to_numpy(), fit["label"].to_numpy())
    probability = model.predict_proba(test.select(columns).to_numpy())[:, 1]
    truth = test["label"].to_numpy()
    return float(accuracy_score(truth, probability >= 0.5)), float(roc_auc_score(truth, probability))


def _add_row(rows: list[tuple[str, float, float, float]], name: str, scores: tuple[float, float],
             seconds: float) -> None:
    rows.append((name, *scores, seconds))


def _pretrained_stage(job: DemoJob, root: Path, supervised: Any, supervised_seconds: float) -> dict[str, float]:
    """CoLES → embeddings → LightGBM, vs aggregates, supervised and fine-tuned, on the same test entities."""
    from eventseq.data.store import load_prepared
    from eventseq.downstream import aggregate_features, concat_features
    from eventseq.inference import embed
    from eventseq.plots import plot_embedding_map
    from eventseq.training import PretrainConfig, TrainConfig, pretrain, train

    labels = pl.read_parquet(root / "data" / "labels.parquet")
    dataset = supervised.dataset
    test_ids = dataset.entity_ids(supervised.splits["test"])
    train_ids = dataset.entity_ids(np.concatenate([supervised.splits["train"], supervised.splits["valid"]]))
    rows: list[tuple[str, float, float, float]] = []

    start = time.perf_counter()
    aggregates = aggregate_features(load_prepared(root / "prepared").table, dataset.schema)
    _add_row(rows, "aggregates + LightGBM", _holdout_scores(aggregates, labels, train_ids, test_ids, job.seed),
             time.perf_counter() - start)

    start = time.perf_counter()
    config = PretrainConfig(output=str(root / "coles"), seed=job.seed)
    config.data.path = str(root / "prepared")
    config.model.sequence_encoder.hidden_size = job.hidden_size
    config.model.event_encoder.embedding_dims = {"mcc": 16}
    config.coles.views.min_len, config.coles.views.max_len, config.coles.views.split_count = 10, 40, 4
    config.trainer.max_epochs = job.coles_epochs
    config.trainer.patience = 3
    config.trainer.progress_bar = job.progress
    coles = pretrain(config)
    embeddings = embed(coles.module, root / "prepared", root / "embeddings.parquet", progress=job.progress)
    embeddings = pl.read_parquet(embeddings)
    coles_seconds = time.perf_counter() - start
    print(f"[6/8] CoLES pretrained ({coles.metrics.get('val_recall_at_3', float('nan')):.3f} recall@3) and embedded "
          f"{embeddings.height:,} entities → {root / 'embeddings.parquet'}")
    plot_embedding_map(embeddings, labels, "entity_id", root / "embedding_map.png", target="label")

    start = time.perf_counter()
    _add_row(rows, "CoLES embeddings + LightGBM", _holdout_scores(embeddings, labels, train_ids, test_ids, job.seed),
             coles_seconds + time.perf_counter() - start)
    start = time.perf_counter()
    both = concat_features(embeddings, aggregates, "entity_id")
    _add_row(rows, "CoLES + aggregates + LightGBM", _holdout_scores(both, labels, train_ids, test_ids, job.seed),
             coles_seconds + time.perf_counter() - start)
    rows.append(("default: GRU + aggregates", supervised.metrics["test_accuracy"], supervised.metrics["test_auroc"],
                 supervised_seconds))

    start = time.perf_counter()
    tune = TrainConfig(output=str(root / "finetuned"), seed=job.seed, init_from=str(coles.model_dir))
    tune.data.path = str(root / "prepared")
    tune.data.batch_size = 128
    tune.optimizer.encoder_lr = tune.optimizer.lr / 10
    tune.trainer.max_epochs = job.max_epochs
    tune.trainer.patience = 4
    tune.trainer.progress_bar = job.progress
    tuned = train(tune)
    rows.append(("CoLES → fine-tuned GRU + aggregates", tuned.metrics["test_accuracy"], tuned.metrics["test_auroc"],
                 coles_seconds + time.perf_counter() - start))
    print("[7/8] fine-tuned the CoLES encoder with a supervised head")

    print(f"[8/8] the same {len(test_ids):,} held-out entities, every method\n")
    print(f"{'method':<38}{'accuracy':>10}{'AUROC':>10}{'seconds':>10}")
    for name, accuracy, auroc, seconds in rows:
        print(f"{name:<38}{accuracy:>10.4f}{auroc:>10.4f}{seconds:>10.1f}")
    print(f"\nembedding map: {root / 'embedding_map.png'}")
    return {f"{name} accuracy": accuracy for name, accuracy, _, _ in rows} | {
        f"{name} AUROC": auroc for name, _, auroc, _ in rows
    }
