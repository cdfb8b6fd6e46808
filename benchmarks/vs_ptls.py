"""CoLES pretraining, eventseq vs pytorch-lifestream (ptls): same data, same model, one process.

Usage:
    python benchmarks/vs_ptls.py [--dataset synthetic|cdnow|both] [--entities 20500] [--epochs 2]
                                 [--batch-size 64] [--threads 2]

For each data set the events are prepared once with eventseq (`prepare`); ptls gets the very same
encoded sequences (categorical ids, transformed numerics) as its usual list of per-entity dicts of
tensors. Both libraries then train the same CoLES model for the same number of epochs on the same
training entities, embed every entity, and the embeddings of each are scored by LightGBM on the
same cross-validation folds. Prints (and writes to benchmarks/results/vs_ptls.md) a table of
eventseq / ptls ratios: training throughput (entities/s, view events/s), inference throughput
(entities/s) and downstream AUROC.

The same on both sides:
- model: embeddings per categorical (synthetic: mcc 16, channel 4; CDNOW: number_of_cds 16), the
  numeric column as it comes out of `prepare` (log_standardize) through a batch norm over real
  events only (ptls: `numeric_values="identity"`, `use_batch_norm_with_lens=True`), concatenated,
  then a 1-layer GRU (hidden 256, zero initial state), last hidden state as the embedding;
- CoLES views: `split_count` random slices per entity with lengths in [min_len, max_len]
  (ptls `SampleSlices`; a sequence no longer than min_len gives itself as every view);
- loss: margin 0.5 contrastive loss on L2-normalised embeddings, all positive pairs plus the
  5 hardest negatives per view (ptls `ContrastiveLoss` + `HardNegativePairSelector(neg_count=5)`);
- AdamW, lr 1e-3, no weight decay, constant rate, no gradient clipping; the same batch size
  (entities per step), the last incomplete batch dropped; the same train / validation entities
  (90% / 10%); the best epoch by validation recall is kept; the same seed and torch thread count;
- inference: every entity, the most recent `--max-len` events, the same batch size.

Where they differ (library behaviour, not settings):
- eventseq computes the loss as a mean over pairs, ptls as a sum: with Adam (scale invariant) and
  no gradient clipping this does not change the updates beyond Adam's epsilon;
- eventseq batches entities of similar length together and runs the GRU on packed sequences;
  ptls batches at random and runs the GRU over the padding too (the last real step is read);
- eventseq's time-delta input is turned off (`time_delta=False`): ptls has no equivalent;
- timing: only the training batches of each epoch are timed (a Lightning callback from the start
  of the epoch to the start of its validation); inference is timed from the call to the returned
  embeddings (eventseq reads the prepared Parquet, ptls starts from its in-memory records).
  eventseq's `pretrain` builds its own Trainer; the timing callback is appended to it by wrapping
  `eventseq.training.trainer.build_trainer` for the duration of the call.

Install (torch must stay the local CPU build; never let pip resolve ptls's dependencies):
    pip install --no-deps pytorch-lifestream
    pip install --no-deps transformers regex huggingface_hub tokenizers httpx2 httpcore2 \\
        truststore h11 duckdb pymonad onnxruntime
(ptls 0.7.0 imports transformers, duckdb, pymonad and onnxruntime at import time; its
`ptls.preprocessing` is not used.) Also needed: lightgbm (`eventseq[downstream]`) and, for CDNOW,
`pip install --no-deps lifetimes==0.11.3`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import polars as pl
import pytorch_lightning
import torch

import eventseq.training.trainer as training  # where fit_module builds its Trainer
from eventseq._io import atomic_path
from eventseq.data import PrepareConfig, PreparedData, SequenceDataset, prepare, split_by_entity
from eventseq.data.augment import ViewConfig
from eventseq.data.schema import TIME_COLUMN, Schema
from eventseq.datasets import CDNOW_COLUMNS, SYNTHETIC_COLUMNS, load_cdnow, make_transactions
from eventseq.downstream import compare_feature_sets
from eventseq.inference import embed
from eventseq.nn import EncoderConfig
from eventseq.nn.event_encoder import EventEncoderConfig
from eventseq.nn.sequence_encoder import SequenceEncoderConfig
from eventseq.objectives.coles import ColesConfig
from eventseq.optim import OptimizerConfig
from eventseq.training import PretrainConfig, pretrain

try:
    from ptls.data_load.datasets.dataloaders import inference_data_loader
    from ptls.frames import PtlsDataModule
    from ptls.frames.coles import CoLESModule, ColesDataset
    from ptls.frames.coles.losses import ContrastiveLoss
    from ptls.frames.coles.sampling_strategies import HardNegativePairSelector
    from ptls.frames.coles.split_strategy import SampleSlices
    from ptls.frames.inference_module import InferenceModule
    from ptls.nn import Head, RnnSeqEncoder, TrxEncoder
except ImportError as error:
    raise SystemExit(f"pytorch-lifestream cannot be imported ({error}): see the install steps at the top of {__file__}")

RESULTS = Path(__file__).resolve().parent / "results" / "vs_ptls.md"
HIDDEN_SIZE = 256
LEARNING_RATE = 1e-3
MARGIN = 0.5
NEGATIVES = 5
VALID_FRACTION = 0.1
SEED = 0


@dataclass
class BenchData:
    """One prepared data set and the settings that depend on it."""

    name: str
    prepared: PreparedData
    prepared_dir: Path
    target: str
    embedding_dims: dict[str, int]
    views: ViewConfig


@dataclass
class RunStats:
    """What one library's run measured."""

    train_seconds: float = 0.0
    train_entities: int = 0
    train_view_events: int = 0
    epochs: int = 0
    fit_seconds: float = 0.0  # the whole training call: set-up, validation, checkpoints...
    inference_seconds: float = 0.0
    inference_entities: int = 0
    embeddings: pl.DataFrame = field(default_factory=pl.DataFrame)
    int8_inference_seconds: float = 0.0  # eventseq only: embed(quantize=True), same batch size
    int8_embeddings: pl.DataFrame = field(default_factory=pl.DataFrame)


class _TrainLoopTimer:
    """Times the training batches of each epoch and counts what they held.

    The clock runs from the start of a training epoch to the start of its validation (or to
    the end of the epoch when there is none), so validation, checkpointing and logging that
    Lightning runs at the end of an epoch are not counted.
    """

    def __init__(self, stats: RunStats, count_batch: Any) -> None:
        self.stats = stats
        self.count_batch = count_batch  # batch -> (entities, events in the views)
        self._started: float | None = None

    def _stop(self) -> None:
        if self._started is not None:
            self.stats.train_seconds += time.perf_counter() - self._started
            self.stats.epochs += 1
            self._started = None

    def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        entities, events = self.count_batch(batch)
        self.stats.train_entities += entities
        self.stats.train_view_events += events

    def on_validation_start(self, trainer: Any, module: Any) -> None:
        self._stop()

    def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
        self._stop()


# `lightning` and `pytorch_lightning` are separate packages whose Trainers only accept their own
# Callback class: the same timer, once for each.
class LightningTimer(_TrainLoopTimer, L.Callback):
    pass


class PytorchLightningTimer(_TrainLoopTimer, pytorch_lightning.Callback):
    pass


def _count_eventseq_batch(batch: Any) -> tuple[int, int]:
    return int(batch.index.unique().numel()), int(batch.lengths.sum())


def _count_ptls_batch(batch: Any) -> tuple[int, int]:
    padded, owners = batch
    return int(owners.unique().numel()), int(padded.seq_lens.sum())


# ----------------------------------------------------------------------------- data
def load_synthetic(entities: int, workdir: Path) -> BenchData:
    """The built-in synthetic transactions: lengths 20..80 (mean 50 events per entity)."""
    data = make_transactions(n_entities=entities, min_length=20, max_length=80, seed=SEED)
    output = workdir / "synthetic_prepared"
    prepared = prepare(data.events, PrepareConfig(**SYNTHETIC_COLUMNS), labels=data.labels, output=output)
    return BenchData("synthetic", prepared, output, "label", {"mcc": 16, "channel": 4},
                     ViewConfig(split_count=5, min_len=15, max_len=150))


def load_cdnow_data(workdir: Path) -> BenchData:
    """CDNOW purchase histories with the churn label; most customers have a single purchase."""
    events, labels = load_cdnow()
    output = workdir / "cdnow_prepared"
    prepared = prepare(events, PrepareConfig(**CDNOW_COLUMNS), labels=labels, output=output)
    return BenchData("cdnow", prepared, output, "churn", {"number_of_cds": 16},
                     ViewConfig(split_count=5, min_len=1, max_len=150))


def ptls_records(dataset: SequenceDataset, schema: Schema) -> list[dict[str, torch.Tensor]]:
    """The sequence table in ptls's in-memory format: one dict of 1-D tensors per entity.

    Categorical ids keep eventseq's encoding (0 = padding, which ptls's embeddings also treat as
    padding); numerics are the transformed float32 values. One Python object per entity is what
    ptls's datasets consume, so this split into per-entity tensors is unavoidable on its side.
    """
    # copies: the flat arrays are read-only views of Arrow buffers, which torch will not wrap
    columns = {TIME_COLUMN: np.array(dataset.columns[TIME_COLUMN], dtype=np.int64)}
    for feature in schema.features:
        dtype = np.int64 if feature.kind == "categorical" else np.float32
        columns[feature.name] = np.array(dataset.columns[feature.name], dtype=dtype)
    cut = dataset.offsets[1:-1]
    pieces = {name: np.split(values, cut) for name, values in columns.items()}
    return [
        {name: torch.from_numpy(pieces[name][row]) for name in columns}
        for row in range(len(dataset.offsets) - 1)
    ]


# ----------------------------------------------------------------------------- eventseq
@contextlib.contextmanager
def _timed_trainers(callback: L.Callback) -> Iterator[None]:
    """Append `callback` to the Trainer that `eventseq.training.pretrain` builds."""
    original = training.build_trainer

    def build_with_timer(*args: Any, **kwargs: Any) -> L.Trainer:
        trainer = original(*args, **kwargs)
        trainer.callbacks.append(callback)
        return trainer

    training.build_trainer = build_with_timer
    try:
        yield
    finally:
        training.build_trainer = original


def run_eventseq(data: BenchData, args: argparse.Namespace, run_dir: Path, train_rows: np.ndarray) -> RunStats:
    """CoLES with `eventseq.training.pretrain`, then `eventseq.inference.embed` over every entity."""
    config = PretrainConfig(output=str(run_dir), seed=SEED)
    config.data.path = str(data.prepared_dir)
    config.data.batch_size = args.batch_size
    config.data.max_len = args.max_len
    config.data.valid_fraction = VALID_FRACTION
    config.model = EncoderConfig(
        event_encoder=EventEncoderConfig(embedding_dims=dict(data.embedding_dims), time_delta=False),
        sequence_encoder=SequenceEncoderConfig(type="gru", hidden_size=HIDDEN_SIZE, pooling="last"),
    )
    config.coles = ColesConfig(loss="margin", margin=MARGIN, negatives_per_anchor=NEGATIVES, views=data.views)
    config.optimizer = OptimizerConfig(lr=LEARNING_RATE, weight_decay=0.0)
    config.trainer.max_epochs = args.epochs
    config.trainer.patience = args.epochs + 1
    config.trainer.gradient_clip_val = 0.0
    config.trainer.progress_bar = False

    stats = RunStats()
    start = time.perf_counter()
    with _timed_trainers(LightningTimer(stats, _count_eventseq_batch)):
        result = pretrain(config)
    stats.fit_seconds = time.perf_counter() - start
    if not np.array_equal(result.splits["train"], train_rows):
        raise RuntimeError("eventseq trained on other entities than the split given to ptls")

    start = time.perf_counter()
    embeddings = embed(result.module, data.prepared_dir, batch_size=args.batch_size, progress=False,
                       max_len=args.max_len)
    stats.inference_seconds = time.perf_counter() - start
    stats.inference_entities = embeddings.height
    stats.embeddings = embeddings

    start = time.perf_counter()
    stats.int8_embeddings = embed(result.module, data.prepared_dir, batch_size=args.batch_size, progress=False,
                                  max_len=args.max_len, quantize=True)
    stats.int8_inference_seconds = time.perf_counter() - start
    return stats


# ----------------------------------------------------------------------------- ptls
def build_ptls_module(data: BenchData) -> CoLESModule:
    """The same CoLES model in ptls's building blocks."""
    schema = data.prepared.schema
    trx_encoder = TrxEncoder(
        embeddings={f.name: {"in": f.num_embeddings, "out": data.embedding_dims[f.name]} for f in schema.categorical},
        numeric_values={f.name: "identity" for f in schema.numeric},
        use_batch_norm=True,
        use_batch_norm_with_lens=True,  # statistics over real events only, as eventseq
    )
    seq_encoder = RnnSeqEncoder(trx_encoder=trx_encoder, hidden_size=HIDDEN_SIZE, type="gru",
                                trainable_starter=None)  # zero initial state, as eventseq
    return CoLESModule(
        seq_encoder=seq_encoder,
        head=Head(use_norm_encoder=True),
        loss=ContrastiveLoss(margin=MARGIN, sampling_strategy=HardNegativePairSelector(neg_count=NEGATIVES)),
        validation_metric=None,  # BatchRecallTopK(K=4): recall@(split_count - 1), as eventseq
        optimizer_partial=partial(torch.optim.AdamW, lr=LEARNING_RATE, weight_decay=0.0),
        lr_scheduler_partial=partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=1.0),  # constant
    )


def run_ptls(data: BenchData, args: argparse.Namespace, run_dir: Path, records: list[dict[str, torch.Tensor]],
             splits: dict[str, np.ndarray]) -> RunStats:
    """CoLES with ptls (ColesDataset + PtlsDataModule + pytorch_lightning Trainer), then
    `InferenceModule` + `trainer.predict` over every entity."""
    views = data.views
    pytorch_lightning.seed_everything(SEED, workers=True, verbose=False)

    def coles_dataset(rows: np.ndarray) -> ColesDataset:
        return ColesDataset([records[row] for row in rows],
                            splitter=SampleSlices(views.split_count, views.min_len, views.max_len))

    datamodule = PtlsDataModule(
        train_data=coles_dataset(splits["train"]), train_batch_size=args.batch_size,
        train_drop_last=len(splits["train"]) > args.batch_size,
        valid_data=coles_dataset(splits["valid"]), valid_batch_size=args.batch_size,
    )
    module = build_ptls_module(data)
    stats = RunStats()
    best = pytorch_lightning.callbacks.ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best", monitor="valid/recall_top_k", mode="max"
    )
    trainer = pytorch_lightning.Trainer(
        max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[best, PytorchLightningTimer(stats, _count_ptls_batch)],
        deterministic="warn",  # as eventseq's Trainer
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule)
    if best.best_model_path:
        module.load_state_dict(torch.load(best.best_model_path, weights_only=False)["state_dict"])
    stats.fit_seconds = time.perf_counter() - start

    predictor = pytorch_lightning.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                                          enable_model_summary=False, enable_checkpointing=False)
    start = time.perf_counter()
    # inference_data_loader deletes non-tensor fields of the records it is given: ours have none
    loader = inference_data_loader(records, max_seq_len=args.max_len, batch_size=args.batch_size)
    # pandas_output=True fails in ptls 0.7.0 when the records carry no scalar field, and the loader
    # drops scalar fields (an id) anyway: take the tensors, in the order of the records
    parts = predictor.predict(InferenceModule(model=module.seq_encoder, pandas_output=False, model_out_name="emb"),
                              loader)
    values = torch.cat([part["emb"] for part in parts]).numpy()  # [N, H]
    stats.inference_seconds = time.perf_counter() - start
    id_column = data.prepared.schema.id_column
    columns = {f"emb_{index:03d}": values[:, index] for index in range(values.shape[1])}
    stats.embeddings = pl.DataFrame({id_column: data.prepared.table[id_column], **columns})
    stats.inference_entities = len(values)
    return stats


# ----------------------------------------------------------------------------- comparison
def compare(data: BenchData, args: argparse.Namespace, workdir: Path) -> tuple[list[list[str]], dict[str, RunStats]]:
    """Train, embed and evaluate with both libraries; the table rows for this data set."""
    schema = data.prepared.schema
    dataset = SequenceDataset.from_table(data.prepared.table, schema)
    splits = split_by_entity(len(dataset), VALID_FRACTION, 0.0, None, SEED)  # what pretrain does
    records = ptls_records(dataset, schema)
    events = int(np.diff(dataset.offsets).sum())
    print(f"\n== {data.name}: {len(dataset):,} entities, {events:,} events; "
          f"train {len(splits['train']):,} / valid {len(splits['valid']):,}", flush=True)

    runs = {
        "eventseq": run_eventseq(data, args, workdir / f"{data.name}_eventseq", splits["train"]),
        "ptls": run_ptls(data, args, workdir / f"{data.name}_ptls", records, splits),
    }
    for name, stats in runs.items():
        print(f"{name:>9}: train loop {stats.train_seconds:.1f}s over {stats.epochs} epochs "
              f"({stats.train_entities:,} entities, {stats.train_view_events:,} view events), "
              f"fit {stats.fit_seconds:.1f}s, inference {stats.inference_seconds:.1f}s", flush=True)

    id_column = schema.id_column
    labels = data.prepared.table.select(id_column, data.target)
    feature_sets = {name: stats.embeddings for name, stats in runs.items()}
    feature_sets["eventseq int8"] = runs["eventseq"].int8_embeddings
    scores = compare_feature_sets(
        feature_sets, labels, id_column=id_column, target=data.target,
        models=("lightgbm",), folds=args.folds, seed=SEED,
    )
    metric = {row["features"]: row for row in scores.iter_rows(named=True)}
    mine, theirs = runs["eventseq"], runs["ptls"]

    def rate(count: int, seconds: float) -> float:
        return count / seconds if seconds > 0 else float("nan")

    label = f"{data.name} ({len(dataset):,} entities, {events:,} events)"
    measures = [
        ("training entities/s", rate(mine.train_entities, mine.train_seconds),
         rate(theirs.train_entities, theirs.train_seconds), "{:,.0f}"),
        ("training view events/s", rate(mine.train_view_events, mine.train_seconds),
         rate(theirs.train_view_events, theirs.train_seconds), "{:,.0f}"),
        ("training loop seconds", mine.train_seconds, theirs.train_seconds, "{:.1f}"),
        ("inference entities/s", rate(mine.inference_entities, mine.inference_seconds),
         rate(theirs.inference_entities, theirs.inference_seconds), "{:,.0f}"),
        ("inference entities/s, eventseq `quantize=true` (int8)",
         rate(mine.inference_entities, mine.int8_inference_seconds),
         rate(theirs.inference_entities, theirs.inference_seconds), "{:,.0f}"),
        (f"LightGBM {metric['eventseq']['metric'].upper()} ({args.folds}-fold, same folds)",
         metric["eventseq"]["mean"], metric["ptls"]["mean"], "{:.4f}"),
        (f"LightGBM {metric['eventseq']['metric'].upper()}, eventseq int8 embeddings",
         metric["eventseq int8"]["mean"], metric["ptls"]["mean"], "{:.4f}"),
    ]
    rows = []
    for index, (what, ours, other, number) in enumerate(measures):
        if what.startswith("LightGBM"):
            ours_name = "eventseq int8" if "int8" in what else "eventseq"
            ours_text = f"{ours:.4f} ± {metric[ours_name]['std']:.4f}"
            other_text = f"{other:.4f} ± {metric['ptls']['std']:.4f}"
        else:
            ours_text, other_text = number.format(ours), number.format(other)
        rows.append([label if index == 0 else "", what, ours_text, other_text, f"{ours / other:.2f}"])
    return rows, runs


def markdown_table(rows: list[list[str]]) -> str:
    header = ["data", "measure", "eventseq", "ptls", "eventseq / ptls"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["synthetic", "cdnow", "both"], default="both")
    parser.add_argument("--entities", type=int, default=20_500,
                        help="synthetic entities (lengths 20..80, mean 50 events each); CDNOW is used whole")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="entities per training step (x5 views)")
    parser.add_argument("--max-len", type=int, default=512, help="most recent events kept per entity")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                        help="torch.set_num_threads for both libraries")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds of the LightGBM score")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file for the table")
    parser.add_argument("--workdir", type=Path, default=None, help="keep prepared data and runs here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning|pytorch_lightning|lightning_fabric")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vs_ptls_"))
    started = time.perf_counter()
    rows: list[list[str]] = []
    try:
        names = ["synthetic", "cdnow"] if args.dataset == "both" else [args.dataset]
        for name in names:
            data = load_synthetic(args.entities, workdir) if name == "synthetic" else load_cdnow_data(workdir)
            data_rows, _ = compare(data, args, workdir)
            rows.extend(data_rows)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - started

    settings = (
        f"CoLES, GRU {HIDDEN_SIZE}, {args.epochs} epochs, batch {args.batch_size} entities x 5 views, "
        f"AdamW lr {LEARNING_RATE}, margin loss {MARGIN} + {NEGATIVES} hard negatives; "
        f"torch {torch.__version__}, {args.threads} threads; total {total / 60:.1f} min"
    )
    table = markdown_table(rows)
    print(f"\n{settings}\n\n{table}")
    report = (
        f"# eventseq vs pytorch-lifestream (CoLES)\n\n"
        f"`python benchmarks/vs_ptls.py --dataset {args.dataset} --entities {args.entities} "
        f"--epochs {args.epochs} --batch-size {args.batch_size} --threads {args.threads}`, "
        f"{dt.date.today().isoformat()}\n\n{settings}\n\n{table}\n"
    )
    with atomic_path(args.output) as tmp:
        tmp.write_text(report)
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
