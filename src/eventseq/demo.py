"""`eventseq demo`: the whole pipeline on built-in synthetic data, end to end.

generate → prepare → train a supervised GRU (early stopping, best checkpoint) → test on held-out
entities → save → reload → predict from raw events with the saved schema → metric table, next to
the Bayes-optimal accuracy computed from the generator's true parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from eventseq._io import write_json, write_parquet


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
    """

    output: str = "demo_output"
    n_entities: int = 10_000
    max_epochs: int = 20
    hidden_size: int = 64
    seed: int = 0
    progress: bool = True


def run_demo(job: DemoJob) -> dict[str, float]:
    """Run the demo; print and return the metric table."""
    from eventseq.data.prepare import PrepareConfig, prepare
    from eventseq.datasets.synthetic import SYNTHETIC_COLUMNS, make_transactions
    from eventseq.inference import predict
    from eventseq.saved import load_model
    from eventseq.training import TrainConfig, train

    root = Path(job.output)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    data = make_transactions(job.n_entities, seed=job.seed)
    write_parquet(data.events.to_arrow(), root / "data" / "events.parquet")
    write_parquet(data.labels.to_arrow(), root / "data" / "labels.parquet")
    timings["generate"] = time.perf_counter() - start
    print(f"[1/5] generated {data.events.height:,} events for {job.n_entities:,} entities → {root / 'data'}")

    start = time.perf_counter()
    prepared = prepare(
        root / "data" / "events.parquet", PrepareConfig(**SYNTHETIC_COLUMNS),
        labels=root / "data" / "labels.parquet", output=root / "prepared",
    )
    timings["prepare"] = time.perf_counter() - start
    print(f"[2/5] prepared → {root / 'prepared'}\n" + prepared.report.summary())

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
    print(f"[3/5] trained a GRU for {int(result.metrics['epochs'])} epochs → {result.model_dir}")

    start = time.perf_counter()
    model = load_model(result.model_dir)
    test_ids = result.dataset.entity_ids(result.splits["test"])
    test_events = data.events.filter(pl.col("entity_id").is_in(test_ids))
    predictions = predict(model, test_events, root / "predictions.parquet", progress=job.progress)
    timings["reload + predict"] = time.perf_counter() - start
    print(f"[4/5] reloaded the model and predicted from raw events → {predictions}")

    scored = pl.read_parquet(root / "predictions.parquet").join(data.labels, on="entity_id")
    reloaded_accuracy = float((scored["label_pred"] == scored["label"]).mean())
    bayes = data.bayes_accuracy(test_ids)
    majority = float(max(scored["label"].mean(), 1 - scored["label"].mean()))
    table = {
        "test accuracy (GRU)": result.metrics["test_accuracy"],
        "test accuracy (reloaded model, raw events)": reloaded_accuracy,
        "test AUROC (GRU)": result.metrics["test_auroc"],
        "Bayes-optimal accuracy (same entities)": bayes,
        "majority-class accuracy": majority,
        "GRU / Bayes-optimal": result.metrics["test_accuracy"] / bayes,
    }
    print("[5/5] results on held-out entities\n")
    width = max(len(k) for k in table) + 2
    print(f"{'metric':<{width}}value")
    for name, value in table.items():
        print(f"{name:<{width}}{value:.4f}")
    print("\n" + "  ".join(f"{k}: {v:.1f}s" for k, v in timings.items()))
    print(f"training curves: {result.run_dir / 'curves.png'}")
    write_json(root / "results.json", {"metrics": table, "seconds": timings})
    if not np.isclose(reloaded_accuracy, result.metrics["test_accuracy"], atol=1e-6):
        print("warning: the reloaded model's accuracy differs from the trained one")
    return table
