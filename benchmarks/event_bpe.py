"""Event BPE: how much shorter sequences get, what fitting costs, and what it does downstream.

Usage:
    python benchmarks/event_bpe.py [--entities 3000] [--epochs 8] [--folds 5] [--output benchmarks/results/event_bpe.md]

On the built-in synthetic transactions (`make_transactions`; the binary label is planted in the
order of merchant categories and partly in amounts), the same events are prepared without BPE and
with event BPE over `mcc` (several merge counts) and over `mcc` x amount bucket. For each variant:

- compression: events / tokens, and the time of `prepare` (BPE fitting included);
- aggregates -> LightGBM (`aggregate_features`, counts and fractions of every token id, 5-fold
  AUROC on the same entities and folds, `compare_feature_sets`): BPE tokens are learned n-grams,
  so their counts carry order information that per-event counts lack;
- a supervised GRU (hidden 64, `--epochs` epochs, the same split and seed): test AUROC and the
  training time, which falls with the sequence length.

Torch runs on 2 threads; every variant is measured in this one process.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import torch

from eventseq.data import PrepareConfig, prepare
from eventseq.datasets.synthetic import SYNTHETIC_COLUMNS, make_transactions
from eventseq.downstream import aggregate_features, compare_feature_sets
from eventseq.training import TrainConfig, train

VARIANTS = {
    "no BPE": {},
    "BPE mcc, 50 merges": dict(bpe_fields=["mcc"], bpe_merges=50),
    "BPE mcc, 200 merges": dict(bpe_fields=["mcc"], bpe_merges=200),
    "BPE mcc, 800 merges": dict(bpe_fields=["mcc"], bpe_merges=800),
    "BPE mcc x amount bucket (4), 200 merges": dict(bpe_fields=["mcc", "amount"], bpe_merges=200),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--output", default="benchmarks/results/event_bpe.md")
    args = parser.parse_args()
    torch.set_num_threads(2)
    load_at_start = os.getloadavg()
    data = make_transactions(n_entities=args.entities, seed=0)
    base = PrepareConfig(**SYNTHETIC_COLUMNS, quantize={"amount": 4})
    rows, feature_sets = [], {}
    workdir = Path(tempfile.mkdtemp(prefix="event_bpe_"))
    for name, changes in VARIANTS.items():
        config = dataclasses.replace(base, **changes)
        start = time.perf_counter()
        prepared = prepare(data.events, config, labels=data.labels, output=workdir / str(len(rows)))
        prepare_seconds = time.perf_counter() - start
        tokens = int(prepared.table["event_time"].list.len().sum())
        feature_sets[name] = aggregate_features(prepared.table, prepared.schema, max_categories=None)
        train_config = TrainConfig(output=str(workdir / f"run{len(rows)}"))
        train_config.data.path = str(workdir / str(len(rows)))
        train_config.model.sequence_encoder.hidden_size = 64
        train_config.trainer.max_epochs = args.epochs
        train_config.trainer.progress_bar = False
        start = time.perf_counter()
        result = train(train_config)
        train_seconds = time.perf_counter() - start
        vocabulary = len(prepared.schema.features[0].vocabulary) if prepared.schema.bpe else None
        rows.append(dict(variant=name, tokens=tokens, events=prepared.report.events_out,
                         compression=prepared.report.events_out / tokens, vocabulary=vocabulary,
                         prepare_s=prepare_seconds, gru_auroc=result.metrics["test_auroc"], gru_s=train_seconds))
        print(f"{name}: {rows[-1]}", flush=True)
    scores = compare_feature_sets(feature_sets, data.labels, "entity_id", "label", models=["lightgbm"],
                                  folds=args.folds, model_params={"lightgbm": {"n_jobs": 1}})
    by_name = {row["features"]: row for row in scores.iter_rows(named=True)}
    lines = [
        f"`{' '.join(['python', *sys.argv])}` — {args.entities:,} synthetic entities, "
        f"{rows[0]['events']:,} events; GRU hidden 64, {args.epochs} epochs; torch {torch.__version__}, 2 threads",
        "",
        f"Load average {load_at_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end: the seconds "
        "columns are wall-clock times on a shared machine (the token counts are what shortens training).",
        "",
        "| variant | tokens | events/token | token vocabulary | prepare s | aggregates→LightGBM AUROC "
        f"({args.folds} folds) | GRU test AUROC | GRU train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        score = by_name[row["variant"]]
        lines.append(
            f"| {row['variant']} | {row['tokens']:,} | {row['compression']:.2f} | {row['vocabulary'] or '-'} | "
            f"{row['prepare_s']:.2f} | {score['mean']:.4f} ± {score['std']:.4f} | {row['gru_auroc']:.4f} | "
            f"{row['gru_s']:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
