"""Method leaderboard: every self-supervised method, one encoder width, the same time budget.

Usage:
    python benchmarks/methods.py [--dataset synthetic|cdnow|both] [--minutes 1.0] [--entities 3000]
                                 [--methods coles,vicreg,...] [--folds 5] [--seed 0]
                                 [--output benchmarks/results/methods.md]

Each method of `eventseq.objectives.methods.METHODS` (or the `--methods` subset) is
pretrained with `eventseq.training.pretrain` for at most `--minutes` of wall-clock time
(`trainer.max_minutes`; max_epochs 100, patience 5, the best validation epoch is kept), every
entity is embedded with `eventseq.inference.embed`, and LightGBM (n_jobs=1) is cross-validated on
the embeddings by `eventseq.downstream.compare_feature_sets`: every row is scored on the same
entities and the same folds. On the built-in synthetic set (`make_transactions`, binary `label`,
`--entities` clients) and on the real CDNOW churn set (23,570 customers; needs
`pip install --no-deps lifetimes==0.11.3`). A quick check of the script itself:
`python benchmarks/methods.py --dataset synthetic --entities 300 --minutes 0.05 --folds 2
--output /tmp/methods.md`. The full run (the defaults) takes about 45 minutes on 2 CPU threads.
Writes the table to `--output` (Markdown, the command on top) and a bar chart next to it (.png).

Rows next to the methods (always run):
- aggregates: `aggregate_features` (counts, fractions, numeric statistics) → LightGBM;
- random-init <encoder>: the embeddings of an untrained encoder of each architecture used by the
  methods run: the floor. A method below the floor of its own encoder has learned something that
  hurts the task, or is broken;
- supervised: the same GRU as CoLES trained end to end on the label, cross-fitted: for each fold,
  a model is trained (same time budget, 15% of the fold's training entities for early stopping)
  on the training entities only and scored (AUROC of its predicted probability) on that fold's
  test entities, the same folds as LightGBM's. Its score is comparable fold for fold, but the
  protocol differs: the network is the classifier (no LightGBM), it is trained `--folds` times
  (minutes and epochs are per fold), and it never sees the test entities, whereas the
  self-supervised encoders are pretrained on every entity (without labels) before LightGBM is
  cross-validated on their embeddings — the usual transductive protocol of embedding benchmarks.

Settings every method shares: batch 64 entities, the most recent 512 events, AdamW with each
config's default learning rate (pretrain 1e-3, supervised 3e-3), `pretrain`'s 10% validation
entities, torch on 2 threads. CoLES views: 4 slices of 10..40 events per entity (as the demo);
VICReg and Barlow Twins: 2 slices of 10..40; on CDNOW (median 1 purchase per customer) slices of
1..40 events, as benchmarks/vs_ptls.py, since slices of at least 10 would be the whole sequence for
98% of the customers. "minutes" is the wall-clock time of the whole
`pretrain` / `train` call (set-up, validation and saving included), so it can exceed the budget
by a few seconds; "epochs" counts the last, possibly partial, epoch cut by the budget.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import polars as pl
import torch
from sklearn.metrics import roc_auc_score

from eventseq._io import atomic_path
from eventseq.data import PrepareConfig, PreparedData, prepare
from eventseq.data.augment import ViewConfig
from eventseq.data.schema import TIME_COLUMN
from eventseq.datasets import CDNOW_COLUMNS, SYNTHETIC_COLUMNS, load_cdnow, make_transactions
from eventseq.downstream import aggregate_features, compare_feature_sets, cross_validation_folds
from eventseq.inference import embed, predict
from eventseq.nn import Encoder, EncoderConfig, EventEncoderConfig, SequenceEncoderConfig
from eventseq.objectives.methods import METHODS
from eventseq.objectives.selfsupervised import SelfSupervisedModule
from eventseq.training import PretrainConfig, TrainConfig, pretrain, train

RESULTS = Path(__file__).resolve().parent / "results" / "methods.md"
TORCH_THREADS = 2
LIGHTGBM_PARAMS = {"lightgbm": {"n_jobs": 1}}  # OpenMP threads thrash on a busy 2-core machine
MAX_EPOCHS = 100  # the time budget, or early stopping, ends training first
PATIENCE = 5
BATCH_SIZE = 64
MAX_LEN = 512  # most recent events per entity, in training and in `embed` / `predict`
# CoLES / VICReg / Barlow Twins slices (min_len, max_len) per data set: as the demo on the synthetic
# set; from 1 event on CDNOW (median 1 purchase), as benchmarks/vs_ptls.py, so views differ there
VIEW_LENGTHS = {"synthetic": (10, 40), "cdnow": (1, 40)}
COLES_VIEWS, TWO_VIEWS = 4, 2

GRU_64 = {"sequence_encoder": {"type": "gru", "hidden_size": 64}}
TRANSFORMER_64 = {"sequence_encoder": {"type": "transformer", "hidden_size": 64, "num_layers": 1, "num_heads": 4,
                                       "pooling": "mean"}}
# The encoder of every row, all of width 64. A 1-layer GRU of 64 units (last state pooled) wherever
# the method accepts it: cpc and gpt need a causal encoder, the others work with any. mlm and
# tabformer predict hidden events / fields from both sides, so they need a bidirectional encoder:
# a transformer of the same width (64, 1 layer, 4 heads, mean-pooled); tabformer also mixes the
# fields of each event with a field transformer (one 16-wide token per field). word2vec trains the
# event encoder's embedding tables only, and embeds an entity as the mean of its events' vectors.
# "supervised" is the end-to-end baseline, with the same GRU as CoLES. Event encoders otherwise
# use the library's defaults (embedding sizes from the vocabulary sizes, time delta on). The table
# gives each encoder's parameter count: the transformers are larger than the GRU at the same width.
ENCODERS: dict[str, dict[str, dict[str, Any]]] = {
    "coles": GRU_64,
    "vicreg": GRU_64,
    "barlow_twins": GRU_64,
    "cpc": GRU_64,
    "mlm": TRANSFORMER_64,
    "rtd": GRU_64,
    "gpt": GRU_64,
    "nsp": GRU_64,
    "sop": GRU_64,
    "tabformer": {**TRANSFORMER_64, "event_encoder": {"combine": "field_transformer", "default_embedding_dim": 16}},
    "word2vec": GRU_64,
    "supervised": GRU_64,
}
BASELINES = ("aggregates", "random-init", "supervised")


@dataclass
class BenchData:
    """One prepared data set."""

    name: str
    prepared: PreparedData
    prepared_dir: Path
    target: str

    @property
    def id_column(self) -> str:
        return self.prepared.schema.id_column

    @property
    def labels(self) -> pl.DataFrame:
        return self.prepared.table.select(self.id_column, self.target)


@dataclass
class Row:
    """One line of the leaderboard."""

    name: str
    kind: str  # self-supervised, baseline, floor or supervised
    encoder: str
    minutes: float | None = None
    epochs: float | None = None
    notes: list[str] = field(default_factory=list)
    mean: float = float("nan")
    std: float = float("nan")


# ----------------------------------------------------------------------------- data
def load_data(name: str, entities: int, seed: int, workdir: Path) -> BenchData:
    """Prepare the synthetic or the CDNOW data set into `workdir/<name>/prepared`."""
    output = workdir / name / "prepared"
    if name == "synthetic":
        data = make_transactions(n_entities=entities, seed=seed)
        prepared = prepare(data.events, PrepareConfig(**SYNTHETIC_COLUMNS), labels=data.labels, output=output)
        return BenchData(name, prepared, output, "label")
    events, labels = load_cdnow()
    prepared = prepare(events, PrepareConfig(**CDNOW_COLUMNS), labels=labels, output=output)
    return BenchData(name, prepared, output, "churn")


def describe_data(data: BenchData) -> str:
    lengths = data.prepared.table[TIME_COLUMN].list.len()
    positive = data.prepared.table[data.target].mean()
    return (f"{data.prepared.table.height:,} entities, {int(lengths.sum()):,} events (median {lengths.median():.0f} "
            f"per entity), `{data.target}` = 1 for {positive:.1%}")


def fold_ids(data: BenchData, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training ids, test ids) of each fold: the very folds `compare_feature_sets` scores LightGBM on."""
    return cross_validation_folds(data.labels, data.id_column, data.target, folds, seed)


# ----------------------------------------------------------------------------- rows
def encoder_config(settings: dict[str, dict[str, Any]]) -> EncoderConfig:
    return EncoderConfig(event_encoder=EventEncoderConfig(**settings.get("event_encoder", {})),
                         sequence_encoder=SequenceEncoderConfig(**settings["sequence_encoder"]))


def encoder_name(settings: dict[str, dict[str, Any]]) -> str:
    sequence = settings["sequence_encoder"]
    name = f"{sequence['type']} {sequence['hidden_size']}"
    if sequence.get("num_layers", 1) > 1:
        name += f" x{sequence['num_layers']}"
    if settings.get("event_encoder", {}).get("combine") == "field_transformer":
        name += " + field transformer"
    return name


def encoder_label(settings: dict[str, dict[str, Any]], data: BenchData) -> str:
    """The encoder's name and its parameter count on this data set's schema (vocabularies differ)."""
    parameters = sum(p.numel() for p in Encoder(data.prepared.schema, encoder_config(settings)).parameters())
    return f"{encoder_name(settings)} ({parameters / 1000:.1f}k params)"


def pretrain_config(method: str, data: BenchData, args: argparse.Namespace, run_dir: Path) -> PretrainConfig:
    config = PretrainConfig(method=method, output=str(run_dir), seed=args.seed)
    config.data.path = str(data.prepared_dir)
    config.data.batch_size = BATCH_SIZE
    config.data.max_len = MAX_LEN
    config.data.split_seed = args.seed
    config.model = encoder_config(ENCODERS[method])
    low, high = VIEW_LENGTHS[data.name]
    config.coles.views = ViewConfig(split_count=COLES_VIEWS, min_len=low, max_len=high)
    config.vicreg.views = ViewConfig(split_count=TWO_VIEWS, min_len=low, max_len=high)
    config.barlow_twins.views = ViewConfig(split_count=TWO_VIEWS, min_len=low, max_len=high)
    config.trainer.max_minutes = args.minutes
    config.trainer.max_epochs = MAX_EPOCHS
    config.trainer.patience = PATIENCE
    config.trainer.progress_bar = False
    return config


def loss_trace(run_dir: Path) -> list[str]:
    """Notes on the per-epoch training loss in the run's CSV log: its first and last value, or trouble."""
    logs = sorted((run_dir / "logs").glob("csv*/metrics.csv"))
    if not logs:
        return ["no training log"]
    log = pl.concat([pl.read_csv(path, infer_schema_length=None) for path in logs], how="diagonal_relaxed")
    if "train_loss" not in log.columns:
        return ["no epoch finished"]
    losses = log.filter(pl.col("train_loss").is_not_null()).sort("epoch")["train_loss"].to_numpy()
    if len(losses) == 0:
        return ["no epoch finished"]
    notes = [f"train loss {losses[0]:.3g}" + (f" → {losses[-1]:.3g}" if len(losses) > 1 else "")]
    if not np.isfinite(losses).all():
        notes.append("**non-finite loss**")
    elif len(losses) > 2 and losses[-1] >= losses[0] - 1e-3 * abs(losses[0]):
        notes.append("**loss did not decrease**")
    return notes


def embedding_notes(embeddings: pl.DataFrame) -> list[str]:
    """Warnings about the embeddings themselves: NaN/inf values, a collapse to one vector."""
    values = embeddings.select(pl.col("^emb_.*$")).to_numpy()
    notes = []
    bad = int((~np.isfinite(values)).sum())
    if bad:
        notes.append(f"**{bad:,} non-finite embedding values**")
    elif float(values.std(axis=0).max()) < 1e-6:
        notes.append("**all entities embed to one vector**")
    return notes


def run_method(method: str, data: BenchData, args: argparse.Namespace, workdir: Path) -> tuple[Row, pl.DataFrame | None]:
    """Pretrain `method` under the time budget and embed every entity."""
    row = Row(method, "self-supervised", encoder_label(ENCODERS[method], data))
    run_dir = workdir / data.name / method
    try:
        start = time.perf_counter()
        result = pretrain(pretrain_config(method, data, args, run_dir))
        row.minutes = (time.perf_counter() - start) / 60
        row.epochs = result.metrics.get("epochs")
        monitor = result.module.monitor[0]
        if monitor in result.metrics:
            row.notes.append(f"{monitor} {result.metrics[monitor]:.3g}")
        row.notes += loss_trace(run_dir)
        embeddings = embed(result.module, data.prepared_dir, progress=False, max_len=MAX_LEN)
        row.notes += embedding_notes(embeddings)
    except Exception as error:  # a broken method is a row of the report, not the end of the run
        traceback.print_exc()
        row.notes.append(f"**failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}**")
        embeddings = None
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        gc.collect()
    return row, embeddings


def random_init_embeddings(settings: dict[str, dict[str, Any]], data: BenchData, seed: int) -> pl.DataFrame:
    """Embeddings of an untrained encoder: the pooled output `embed` gives for every method but word2vec."""
    L.seed_everything(seed, verbose=False)
    # the objective is only a holder here: CoLES adds no layer in front of the encoder's output
    module = SelfSupervisedModule(data.prepared.schema, "coles", encoder_config(settings))
    return embed(module, data.prepared_dir, progress=False, max_len=MAX_LEN)


def run_supervised(data: BenchData, args: argparse.Namespace, workdir: Path,
                   folds: list[tuple[np.ndarray, np.ndarray]]) -> Row:
    """The end-to-end GRU, cross-fitted on the evaluation folds: one model per fold, AUROC on its test part."""
    row = Row("supervised (cross-fitted)", "supervised", encoder_label(ENCODERS["supervised"], data))
    schema, table = data.prepared.schema, data.prepared.table
    scores, minutes, epochs = [], [], []
    try:
        for index, (fit_ids, test_ids) in enumerate(folds):
            fold_dir = workdir / data.name / f"supervised_fold{index}"
            fit_part = table.filter(pl.col(data.id_column).is_in(fit_ids))
            PreparedData(fit_part, schema, data.prepared.report).save(fold_dir / "prepared")
            config = TrainConfig(output=str(fold_dir / "run"), seed=args.seed)
            config.data.path = str(fold_dir / "prepared")
            config.data.batch_size = BATCH_SIZE
            config.data.max_len = MAX_LEN
            config.data.test_fraction = 0.0  # the fold's test entities are the test set
            config.data.split_seed = args.seed
            config.model = encoder_config(ENCODERS["supervised"])
            config.trainer.max_minutes = args.minutes
            config.trainer.max_epochs = MAX_EPOCHS
            config.trainer.patience = PATIENCE
            config.trainer.progress_bar = False
            start = time.perf_counter()
            result = train(config)
            minutes.append((time.perf_counter() - start) / 60)
            epochs.append(result.metrics["epochs"])
            if index == 0:
                row.notes += loss_trace(fold_dir / "run")
            predictions = predict(result.module, data.prepared_dir, progress=False, max_len=MAX_LEN)
            scored = (predictions.filter(pl.col(data.id_column).is_in(test_ids))
                      .join(data.labels, on=data.id_column))
            probability = scored[f"{data.target}_proba"].to_numpy()
            if not np.isfinite(probability).all():
                row.notes.append(f"**fold {index}: non-finite probabilities**")
                probability = np.nan_to_num(probability, nan=0.5)
            scores.append(float(roc_auc_score(scored[data.target].to_numpy(), probability)))
            shutil.rmtree(fold_dir, ignore_errors=True)
            del result
            gc.collect()
    except Exception as error:
        traceback.print_exc()
        row.notes.append(f"**failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}**")
        return row
    row.mean, row.std = float(np.mean(scores)), float(np.std(scores))  # ddof=0, as `evaluate`
    row.minutes, row.epochs = float(np.mean(minutes)), float(np.mean(epochs))
    row.notes.append(f"one model per fold ({len(folds)} x the budget); minutes and epochs per fold")
    return row


def leaderboard(data: BenchData, args: argparse.Namespace, workdir: Path) -> list[Row]:
    """Every row for one data set, sorted best first."""
    print(f"\n== {data.name}: {describe_data(data)}", flush=True)
    folds = fold_ids(data, args.folds, args.seed)  # first: it checks the task before any training
    rows: dict[str, Row] = {}
    feature_sets: dict[str, pl.DataFrame] = {}

    rows["aggregates"] = Row("aggregates", "baseline", "-")
    feature_sets["aggregates"] = aggregate_features(data.prepared.table, data.prepared.schema)

    encoders = {encoder_name(ENCODERS[m]): ENCODERS[m] for m in args.methods}
    for name, settings in encoders.items():
        key = f"random-init {name}"
        rows[key] = Row(key, "floor", encoder_label(settings, data))
        feature_sets[key] = random_init_embeddings(settings, data, args.seed)

    for method in args.methods:
        row, embeddings = run_method(method, data, args, workdir)
        rows[method] = row
        print(f"  {method:<13} {row.minutes or 0:5.2f} min, {row.epochs} epochs; {'; '.join(row.notes)}", flush=True)
        if embeddings is not None:
            feature_sets[method] = embeddings

    supervised = run_supervised(data, args, workdir, folds)
    print(f"  supervised    {supervised.minutes or 0:5.2f} min/fold, AUROC {supervised.mean:.4f} ± {supervised.std:.4f}; "
          f"{'; '.join(supervised.notes)}", flush=True)

    scores = compare_feature_sets(feature_sets, data.labels, id_column=data.id_column, target=data.target,
                                  models=("lightgbm",), folds=args.folds, seed=args.seed,
                                  model_params=LIGHTGBM_PARAMS, verbose=True)
    for score in scores.iter_rows(named=True):  # one row per feature set
        rows[score["features"]].mean, rows[score["features"]].std = score["mean"], score["std"]
    return sorted([*rows.values(), supervised], key=lambda row: -row.mean if np.isfinite(row.mean) else np.inf)


# ----------------------------------------------------------------------------- report
def markdown_table(rows: list[Row], folds: int) -> str:
    header = ["#", "method", "kind", "encoder", f"AUROC (mean ± std, {folds} folds)", "minutes", "epochs", "notes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for rank, row in enumerate(rows, start=1):
        score = f"{row.mean:.4f} ± {row.std:.4f}" if np.isfinite(row.mean) else "-"
        kind = "supervised (other protocol)" if row.kind == "supervised" else row.kind
        cells = [str(rank), row.name, kind, row.encoder, score,
                 "-" if row.minutes is None else f"{row.minutes:.2f}",
                 "-" if row.epochs is None else f"{row.epochs:g}", "; ".join(row.notes)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict[str, list[Row]], folds: int, output: Path) -> None:
    """Horizontal bars (AUROC from chance, 0.5) with the fold std as error bars, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = {"self-supervised": "tab:blue", "baseline": "tab:orange", "floor": "tab:gray", "supervised": "tab:green"}
    inches = 0.38 * max(len(rows) for rows in results.values()) + 2.0
    figure, axes = plt.subplots(1, len(results), figsize=(7 * len(results), inches), squeeze=False)
    for axis, (name, rows) in zip(axes[0], results.items()):
        shown = [row for row in rows if np.isfinite(row.mean)][::-1]  # best at the top
        positions = np.arange(len(shown))
        means = np.array([row.mean for row in shown])
        stds = np.array([row.std for row in shown])
        axis.barh(positions, means - 0.5, left=0.5, xerr=stds, capsize=3,
                  color=[colours[row.kind] for row in shown], alpha=0.85)
        axis.set_yticks(positions, [row.name for row in shown])
        floors = [row.mean for row in shown if row.kind == "floor"]
        if floors:
            axis.axvline(max(floors), color="black", linestyle="--", linewidth=1)
        low = min(0.5, float((means - stds).min()) - 0.01)
        axis.set_xlim(low, min(1.0, float((means + stds).max()) + 0.02))
        axis.set(title=f"{name}: AUROC on the same {folds} CV folds", xlabel="AUROC (bars from chance, 0.5)")
        axis.grid(axis="x", alpha=0.3)
    legend = [Patch(color=colour, label=kind) for kind, colour in colours.items()]
    legend.append(plt.Line2D([], [], color="black", linestyle="--", label="best random-init floor"))
    figure.legend(handles=legend, loc="lower center", ncol=3, frameon=False)
    figure.tight_layout(rect=(0, 0.6 / inches, 1, 1))  # 0.6 inch at the bottom for the legend
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def machine_notes() -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return (f"{os.cpu_count()} logical CPUs ({model}), load average {load_average()} at the start; torch "
            f"{torch.__version__} on {torch.get_num_threads()} threads, LightGBM n_jobs=1; Python "
            f"{platform.python_version()}")


def command_line(args: argparse.Namespace) -> str:
    parts = ["python benchmarks/methods.py", f"--dataset {args.dataset}", f"--minutes {args.minutes:g}"]
    if args.dataset != "cdnow":
        parts.append(f"--entities {args.entities}")
    if args.methods != list(METHODS):
        parts.append(f"--methods {','.join(args.methods)}")
    parts += [f"--folds {args.folds}", f"--seed {args.seed}"]
    if args.output != RESULTS:
        parts.append(f"--output {args.output}")
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["synthetic", "cdnow", "both"], default="both")
    parser.add_argument("--minutes", type=float, default=1.0, help="wall-clock training budget of every model")
    parser.add_argument("--entities", type=int, default=3000, help="synthetic entities (CDNOW is used whole)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated self-supervised methods (default: all of {', '.join(METHODS)}); "
                             f"the baselines ({', '.join(BASELINES)}) always run")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds, the same for every row")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the models and the folds")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file; the chart goes next to it (.png)")
    args = parser.parse_args()
    args.methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = [name for name in args.methods if name not in METHODS]
    if unknown or not args.methods:
        parser.error(f"--methods: unknown {unknown}; available: {', '.join(METHODS)}")
    if round(args.minutes * 60) < 1:
        parser.error(f"--minutes {args.minutes}: the budget must be at least one second (Lightning's max_time)")
    if args.folds < 2:
        parser.error("--folds must be at least 2")

    torch.set_num_threads(TORCH_THREADS)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning|pytorch_lightning|lightning_fabric|torchmetrics")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")

    notes = machine_notes()
    workdir = Path(tempfile.mkdtemp(prefix="methods_"))
    started = time.perf_counter()
    results: dict[str, list[Row]] = {}
    descriptions: dict[str, str] = {}
    try:
        for name in (["synthetic", "cdnow"] if args.dataset == "both" else [args.dataset]):
            data = load_data(name, args.entities, args.seed, workdir)
            descriptions[name] = describe_data(data)
            results[name] = leaderboard(data, args, workdir)
            shutil.rmtree(workdir / name, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total = (time.perf_counter() - started) / 60

    settings = (
        f"Budget {args.minutes:g} min of training per model (max_epochs {MAX_EPOCHS}, patience {PATIENCE}), "
        f"batch {BATCH_SIZE}, max_len {MAX_LEN}; embeddings → LightGBM (library defaults, n_jobs=1), "
        f"{args.folds}-fold stratified CV, the same folds for every row; seed {args.seed}; total {total:.1f} min."
    )
    sections = [f"## {name}: {descriptions[name]}\n\n{markdown_table(rows, args.folds)}" for name, rows in results.items()]
    print("\n\n".join([settings, *sections]))
    chart = args.output.with_suffix(".png")
    plot(results, args.folds, chart)
    protocol = __doc__.split("Rows next to the methods (always run):", 1)[1].strip()
    report = (
        f"# Method leaderboard: self-supervised methods at one encoder size and one time budget\n\n"
        f"`{command_line(args)}`, {dt.date.today().isoformat()}\n\n"
        f"Machine: {notes}; load average {load_average()} at the end (a wall-clock budget buys less training "
        f"on a busy machine: compare the epochs column between runs).\n\n{settings}\n\n" + "\n\n".join(sections) +
        f"\n\n![leaderboard]({chart.name})\n\n"
        f"Notes: rows are sorted by AUROC. **Bold** notes flag trouble (failed run, non-finite loss or "
        f"embeddings, a loss that did not decrease over 3+ epochs, embeddings collapsed to one vector). The monitored "
        f"validation metric and the first → last epoch training loss are shown for each pretraining run.\n\n"
        f"Rows next to the methods (always run):\n{protocol}\n"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.output) as tmp:
        tmp.write_text(report)
    print(f"\nwritten to {args.output} and {chart}", file=sys.stderr)


if __name__ == "__main__":
    main()
