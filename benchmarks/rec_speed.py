"""Recommender speed: eventseq.rec vs the naive notebook approach, same log, same model, one process.

Usage:
    python benchmarks/rec_speed.py [--users 20000] [--items 2000] [--steps 100 | --epochs 1]
                                   [--threads 2] [--negatives 1024] [--sampler popularity] [--big-catalog]
                                   [--ndcg [--ndcg-epochs 2] [--ndcg-pretrain-epochs N] [--ndcg-patience P]]

Data: one synthetic interaction log (`eventseq.datasets.interactions.make_interactions`, default rates:
~330 log rows per user) held in memory. Model: d=64, 2 layers, 2 heads, max_len 512 on every side:
our RecNetwork in a NextPositiveModule, and for the naive notebook end to end the same network
written as a notebook would (`NotebookRecModel`); on CPU, `--threads` torch (and Polars) threads.
Prints (and writes to benchmarks/results/rec_speed.md, the exact command line on top) a table
measure | eventseq | naive | ratio.

1. Preprocessing (log rows/s). eventseq: `prepare_rec(log)`, whole-column Polars expressions.
   Naive: a pandas frame, vocabularies fitted with `value_counts` (vectorized, as a notebook would),
   then `groupby(user).apply(python_function)`: per user, in Python, sort the user's events, keep the
   last 512 positives (click/cart/purchase) as tensors, build the request groups (viewed or carted
   items, label = carted; >= 10 items and both labels) and split them by time (validation = last 30
   days, a 2-day gap before it); one dict of tensors/lists per user. The numbers of train and valid
   groups of both are printed; a mismatch is a warning.
2. Pretraining, full softmax (real events/s; forward + backward + AdamW step, data loading included,
   2 untimed warm-up steps). eventseq: `_window_loader` over `history_windows` (last 512 positives
   before the training cut-off, batches of `--batch-size` windows of similar length, gathered with
   NumPy). Naive: the per-user dicts of tensors from (1), cut at the same time, a DataLoader with
   batch_size 8, shuffled, and a collate that pads each field with `pad_sequence` per sample into an
   `eventseq.data.batch.Batch` for the same module's `losses`. A second naive row pads every user to
   max_len, so the per-user tensors concatenate as they are (what a notebook does for
   `default_collate`); the first is the generous reading. Those two rows time the naive data path
   with our module, so they isolate the data path: every speed-up of the shared module helps both
   sides. A third row is the naive approach end to end: the max_len-padded batches of 8 into
   `NotebookRecModel`, the same network size written the way notebooks write it (torch's
   nn.TransformerEncoder with causal and key-padding masks, plain [N, V] logits at the real
   positions, the default AdamW). All loops are written here (no Lightning Trainer, so no gradient clipping,
   logging or checkpoints on any side).
   FLOPs per event: catalog logits 2·N·V·d (N scored positions, V catalog rows), the projector over
   the catalog 2·V·2d² per batch and the transformer 2·12·d²·layers per real token, each x3 for the
   backward; reported against the best of a few 1024x1024 fp32 `torch.matmul`s on this machine.
3. Pretraining, sampled softmax (`NextPositiveConfig(softmax="sampled", num_negatives=--negatives,
   sampler=--sampler, popularity_power=--popularity-power)`): eventseq events/s vs the naive
   full-softmax events/s of (2). With --ndcg, also fine-tuning NDCG@10 (validation groups) after full
   vs sampled pretraining through `pretrain_rec` / `finetune_rec` (the Lightning Trainer this time):
   pretraining for at most `--ndcg-pretrain-epochs` epochs, stopping early after `--ndcg-patience`
   epochs without a better validation loss (the best checkpoint kept), then `--ndcg-epochs` epochs of
   fine-tuning; the epochs, seconds and best validation next-positive NLL of each side are printed.
4. Large catalog (--big-catalog; run before everything else so the process's memory is its own):
   NextPositiveModules whose item vocabulary has 1,000 (reference) and then `--catalog` items,
   sampled softmax, `--big-steps` steps on a random [32, 64] batch each. Reports steps/s, the item
   table's size, and the RSS the steps add (current from /proc, peak from `resource.getrusage`).
   Embedding gradients are dense and AdamW keeps two moments, so the large run should add about
   3x its table on top of what the reference run's steps add (activations of the batch); per
   step, the only other catalog-sized work is the sampler's V probabilities.

What differs between the two sides, by design: eventseq keeps all positives in its history table and
cuts windows when it reads them, the notebook keeps the last 512; on the synthetic log (~90 positives
per user) the pretraining windows are the same events, and both event totals are printed.
"""

from __future__ import annotations

import os
import sys


def _thread_flag(argv: list[str]) -> str | None:
    """The value of --threads in argv, read before Polars is imported (its pool is sized then)."""
    for position, argument in enumerate(argv):
        if argument == "--threads" and position + 1 < len(argv):
            return argv[position + 1]
        if argument.startswith("--threads="):
            return argument.split("=", 1)[1]
    return None


if __name__ == "__main__":
    _threads = _thread_flag(sys.argv[1:]) or "2"
    for _variable in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, _threads)

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402
from torch.nn.utils.rnn import pad_sequence  # noqa: E402

from eventseq._io import atomic_path  # noqa: E402
from eventseq.data.batch import Batch  # noqa: E402
from eventseq.data.dataset import SequenceDataset  # noqa: E402
from eventseq.data.schema import FIRST_VALUE_ID, UNKNOWN_ID, CategoricalFeature, Schema  # noqa: E402
from eventseq.rec.batches import history_windows  # noqa: E402
from eventseq.rec.data import DAY, RecPrepareConfig, prepare_rec  # noqa: E402
from eventseq.rec.model import RecModelConfig  # noqa: E402
from eventseq.rec.pretrain import NextPositiveConfig, NextPositiveModule  # noqa: E402
from eventseq.rec.runs import _window_loader, item_counts  # noqa: E402
from eventseq.datasets.interactions import CONTEXTS, make_interactions  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "rec_speed.md"
MODEL = RecModelConfig(dim=64, num_layers=2, num_heads=2, max_len=512)
WARMUP_STEPS = 2
REFERENCE_CATALOG = 1_000  # the --big-catalog check's small catalog
RULES = RecPrepareConfig()  # both sides use its columns and rules (10 items, 30 + 2 days, ...)


# ----------------------------------------------------------------------------- 1. preprocessing, naive


@dataclass
class NaiveVocabularies:
    """Raw value → id maps fitted before the training cut-off, most frequent first (ids from 2)."""

    items: dict[Any, int]
    sources: dict[Any, int]
    actions: dict[str, int]

    def schema(self) -> Schema:
        """The same layout as `prepare_rec`'s history schema, so the same module class reads it."""
        def names(mapping: dict[Any, int]) -> list[str]:
            return [str(value) for value in mapping]

        return Schema(id_column=RULES.user_column, time_column=RULES.time_column, time_kind="datetime", features=[
            CategoricalFeature(RULES.item_column, names(self.items)),
            CategoricalFeature(RULES.source_column, names(self.sources)),
            CategoricalFeature(RULES.action_column, names(self.actions)),
        ])


def naive_split(seconds: pd.Series) -> tuple[int, int]:
    """(train_end, valid_start) in seconds, by the same rule as `prepare_rec`."""
    end = int(seconds.max())
    valid_start = end - int(RULES.valid_days * DAY)
    return valid_start - int(RULES.gap_days * DAY), valid_start


def naive_vocabularies(log: pd.DataFrame, train_end: int) -> NaiveVocabularies:
    before = log[log["seconds"] < train_end]

    def fitted(column: str) -> dict[Any, int]:
        counts = before[column].dropna().value_counts()
        return {value: index + FIRST_VALUE_ID for index, value in enumerate(counts.index)}

    actions = {action: index + FIRST_VALUE_ID for index, action in enumerate(RULES.positive_actions)}
    return NaiveVocabularies(fitted(RULES.item_column), fitted(RULES.source_column), actions)


def _missing(value: Any) -> bool:
    return value is None or value != value  # NaN (pandas nulls in float / str columns)


def naive_user(events: pd.DataFrame, vocabularies: NaiveVocabularies, train_end: int, valid_start: int,
               max_len: int) -> dict[str, Any]:
    """One user's history (last `max_len` positives, tensors) and request groups, in plain Python."""
    events = events.sort_values("seconds", kind="stable")
    items = events[RULES.item_column].tolist()
    actions = events[RULES.action_column].tolist()
    sources = events[RULES.source_column].tolist()
    seconds = events["seconds"].tolist()
    requests = events[RULES.request_column].tolist()

    positive = [i for i, action in enumerate(actions) if action in vocabularies.actions][-max_len:]
    history = {
        "item": torch.tensor([vocabularies.items.get(items[i], UNKNOWN_ID) for i in positive], dtype=torch.int64),
        "source": torch.tensor([UNKNOWN_ID if _missing(sources[i]) else vocabularies.sources.get(sources[i], UNKNOWN_ID)
                                for i in positive], dtype=torch.int64),
        "action": torch.tensor([vocabularies.actions[actions[i]] for i in positive], dtype=torch.int64),
        "time": torch.tensor([seconds[i] for i in positive], dtype=torch.int64),
    }

    by_request: dict[int, dict[str, Any]] = {}
    for item, action, source, second, request in zip(items, actions, sources, seconds, requests):
        if _missing(request):
            continue
        group = by_request.setdefault(int(request), {"time": second, "source": None, "labels": {}})
        group["time"] = min(group["time"], second)
        if group["source"] is None and not _missing(source):
            group["source"] = source
        # Items in first-seen order, label = ever carted. prepare_rec breaks ties in first-seen time by item
        # id, this keeps log order: the order inside a group may differ, the groups and counts do not.
        if action in (RULES.view_action, RULES.label_action):
            group["labels"][item] = group["labels"].get(item, 0) | int(action == RULES.label_action)

    parts: dict[str, list[dict[str, Any]]] = {"train": [], "valid": []}
    for request, group in by_request.items():
        labels = list(group["labels"].values())
        if len(labels) < RULES.min_group_size or not 0 < sum(labels) < len(labels):
            continue
        if group["source"] in RULES.exclude_sources:
            continue
        part = "train" if group["time"] < train_end else "valid" if group["time"] >= valid_start else None
        if part is None:  # in the gap before validation
            continue
        parts[part].append({
            "request": request,
            "time": group["time"],
            "source": vocabularies.sources.get(group["source"], UNKNOWN_ID),
            "items": torch.tensor([vocabularies.items.get(item, UNKNOWN_ID) for item in group["labels"]]),
            "labels": torch.tensor(labels, dtype=torch.float32),
        })
    return {"history": history, "train_groups": parts["train"], "valid_groups": parts["valid"]}


def naive_prepare(log: pd.DataFrame, max_len: int) -> tuple[pd.Series, NaiveVocabularies, int]:
    """The notebook: seconds column, vocabularies, then groupby(user).apply(naive_user)."""
    log = log.assign(seconds=(log[RULES.time_column] - pd.Timestamp(0)) // pd.Timedelta(seconds=1))
    train_end, valid_start = naive_split(log["seconds"])
    vocabularies = naive_vocabularies(log, train_end)
    users = log.groupby(RULES.user_column, sort=False).apply(
        lambda events: naive_user(events, vocabularies, train_end, valid_start, max_len))
    return users, vocabularies, train_end


# ----------------------------------------------------------------------------- 2. pretraining loaders


def naive_loader(users: pd.Series, schema: Schema, train_end: int, batch_size: int, seed: int,
                 pad_to: int | None = None) -> torch.utils.data.DataLoader:
    """Per-user dicts of tensors cut at the training cut-off, collated in Python.

    pad_to=None: `pad_sequence` per batch (to the batch's longest user, the generous reading).
    pad_to=max_len: every user padded to max_len so the tensors concatenate as they are (what a
    notebook does for `default_collate`).
    """
    samples = []
    for user in users:
        history = user["history"]
        before = history["time"] < train_end
        if int(before.sum()) >= 2:  # as history_windows: nothing to predict from one event
            samples.append({name: values[before] for name, values in history.items()})
    item, source, action = (feature.name for feature in schema.categorical)

    def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
        if pad_to is None:
            return pad_sequence(tensors, batch_first=True)
        return torch.cat([torch.nn.functional.pad(t[-pad_to:], (0, pad_to - len(t[-pad_to:])))[None] for t in tensors])

    def collate(batch: list[dict[str, torch.Tensor]]) -> Batch:
        return Batch(
            features={
                item: stack([sample["item"] for sample in batch]),
                source: stack([sample["source"] for sample in batch]),
                action: stack([sample["action"] for sample in batch]),
            },
            event_time=stack([sample["time"] for sample in batch]),
            lengths=torch.tensor([min(len(sample["item"]), pad_to or len(sample["item"])) for sample in batch],
                                 dtype=torch.int64),
            index=torch.arange(len(batch)),
        )

    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(samples, batch_size=batch_size, shuffle=True, collate_fn=collate,
                                       generator=generator)


@dataclass
class TrainTiming:
    seconds: float
    steps: int
    events: int  # real (unpadded) events in the timed batches
    scored: int  # positions whose next item was scored (the N of the logits)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds


def _batches(loader: torch.utils.data.DataLoader) -> Iterable[Batch]:
    while True:  # cycle: --steps may exceed an epoch at small sizes
        yield from loader


class NotebookRecModel(torch.nn.Module):
    """The naive notebook's network: RecNetwork's size and heads, written the way notebooks write it.

    Same sizes as `RecNetwork` (d, layers, heads, 4d MLP in each block, learned positions, a start
    state, the residual fusion / projector and the feedback MLPs, a learnable temperature), so it has the same
    parameters up to the numeric normalisation of the time gap. What makes it the notebook's:
    torch's `nn.TransformerEncoder` with a [T, T] causal mask and a key-padding mask over the padded
    batch; plain [N, V] logits and `cross_entropy` (N = the real positions only: the generous
    choice, many notebooks score every padded position); `torch.optim.AdamW` with its defaults (the
    per-tensor loop on CPU).
    """

    def __init__(self, schema: Schema, config: RecModelConfig) -> None:
        super().__init__()
        dim = config.dim
        self.fields = [feature.name for feature in schema.categorical]  # item, source, action
        self.item_table, self.source_table, self.action_table = (
            torch.nn.Embedding(feature.num_embeddings, dim, padding_idx=0) for feature in schema.categorical)
        self.gap = torch.nn.Linear(1, dim)
        self.input = torch.nn.Linear(dim, dim)
        self.positions = torch.nn.Embedding(config.max_len + 1, dim)
        layer = torch.nn.TransformerEncoderLayer(dim, config.num_heads, 4 * dim, config.dropout, activation="gelu",
                                                 batch_first=True, norm_first=True)
        layer.self_attn.dropout = 0.0  # as RecNetwork: dropout on the sublayer outputs, none on attention weights
        self.transformer = torch.nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.final_norm = torch.nn.LayerNorm(dim)
        self.start = torch.nn.Parameter(torch.zeros(dim))
        self.fusion, self.projector, self.feedback = (
            torch.nn.Sequential(torch.nn.Linear(inputs, dim), torch.nn.GELU(), torch.nn.Linear(dim, outputs))
            for inputs, outputs in ((2 * dim, dim), (dim, dim), (3 * dim, len(schema.categorical[2].vocabulary))))
        self.log_temperature = torch.nn.Parameter(torch.tensor(float(np.log(10.0))))

    def loss(self, batch: Batch) -> torch.Tensor:
        item, source, action = (batch.features[name] for name in self.fields)  # [B, T]
        width = item.shape[1]
        padding = torch.arange(width)[None, :] >= batch.lengths[:, None]  # [B, T] True at padding
        gaps = torch.zeros(item.shape)
        gaps[:, 1:] = torch.log1p((batch.event_time[:, 1:] - batch.event_time[:, :-1]).clamp(min=0).float())
        tokens = self.item_table(item) + self.source_table(source) + self.action_table(action) + \
            self.gap(gaps[..., None])
        hidden = self.input(tokens) + self.positions(torch.arange(width))[None]
        causal = torch.ones(width, width, dtype=torch.bool).triu(1)  # True = may not attend
        hidden = self.final_norm(self.transformer(hidden, mask=causal, src_key_padding_mask=padding))
        previous = torch.cat([self.start.expand(len(item), 1, -1), hidden[:, :-1]], dim=1)  # h_{t-1}
        real = ~padding
        previous, context, item, action = previous[real], self.source_table(source)[real], item[real], action[real]
        query = torch.nn.functional.normalize(previous + self.fusion(torch.cat([previous, context], dim=-1)), dim=-1)
        catalog = torch.nn.functional.normalize(self.item_table.weight + self.projector(self.item_table.weight),
                                                dim=-1)  # [V, d]
        logits = self.log_temperature.exp().clamp(0.01, 100.0) * query @ catalog.T  # [N, V]
        npp = torch.nn.functional.cross_entropy(logits, torch.where(item < FIRST_VALUE_ID, -100, item))
        feedback = self.feedback(torch.cat([previous, context, self.item_table(item)], dim=-1))
        return npp + torch.nn.functional.cross_entropy(feedback, action - FIRST_VALUE_ID)  # classes 0..F-1


def time_training(module: NextPositiveModule | NotebookRecModel, loader: Iterable[Batch], steps: int,
                  epochs: int | None) -> TrainTiming:
    """Forward + backward + AdamW step; WARMUP_STEPS untimed, then `steps` steps or `epochs` epochs.

    A NextPositiveModule trains with its own loss and optimizer (fused AdamW); a NotebookRecModel
    with its `loss` and torch's default AdamW.
    """
    module.train()
    if isinstance(module, NotebookRecModel):
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
        loss_of, item_field = module.loss, module.fields[0]
    else:
        optimizer = module.configure_optimizers()
        loss_of, item_field = (lambda batch: module.losses(batch)["loss"]), module.network.item_field

    def step(batch: Batch) -> tuple[int, int]:
        optimizer.zero_grad(set_to_none=True)
        loss_of(batch).backward()
        optimizer.step()
        scored = batch.mask & (batch.features[item_field] >= FIRST_VALUE_ID)
        return int(batch.lengths.sum()), int(scored.sum())

    warmup = _batches(loader)
    for _ in range(WARMUP_STEPS):
        step(next(warmup))
    timed: Iterable[Batch] = (batch for _ in range(epochs) for batch in loader) if epochs else \
        (batch for _, batch in zip(range(steps), _batches(loader)))
    events = scored = count = 0
    started = time.perf_counter()
    for batch in timed:
        batch_events, batch_scored = step(batch)
        events, scored, count = events + batch_events, scored + batch_scored, count + 1
    return TrainTiming(time.perf_counter() - started, count, events, scored)


def training_flops(timing: TrainTiming, scored_items: int, catalog_rows: int, dim: int, layers: int) -> float:
    """Forward + backward FLOPs (x3) of the matmuls that dominate; see the module docstring.

    scored_items: items each scored position is compared with (V for full, S for sampled softmax);
    catalog_rows: items passed through the projector per batch (V for full, S + targets for sampled).
    """
    logits = 2 * timing.scored * scored_items * dim
    projector = 2 * catalog_rows * 2 * dim * dim
    transformer = 2 * 12 * dim * dim * layers * timing.events
    return 3.0 * (logits + projector + transformer)


def matmul_flops_per_second(size: int = 1024, repeats: int = 5) -> float:
    """Best fp32 torch.matmul rate of a few size x size products (the machine's practical peak)."""
    left, right = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(left, right)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(left, right)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def pretraining_module(schema: Schema, objective: NextPositiveConfig, counts: list[float] | None,
                       seed: int) -> NextPositiveModule:
    torch.manual_seed(seed)
    return NextPositiveModule(schema, MODEL, objective, item_counts=counts)


# ----------------------------------------------------------------------------- 3. optional NDCG@10


def fine_tuned_ndcg(log: pl.DataFrame, epochs: int, sampled: NextPositiveConfig, seed: int,
                    pretrain_epochs: int | None = None, patience: int | None = None) -> dict[str, dict[str, float]]:
    """Validation NDCG@10 of a ranker fine-tuned ("full" init) after full vs sampled pretraining.

    Pretraining stops early on validation loss after `patience` epochs without improvement (default:
    never) and keeps its best checkpoint; each side reports its NDCG@10, its best validation
    next-positive NLL (over the whole catalog, so both sides are on one scale), epochs and seconds.
    """
    from eventseq.rec.runs import RecFinetuneConfig, RecPretrainConfig, finetune_rec, pretrain_rec
    from eventseq.training import TrainerSection

    workdir = Path(tempfile.mkdtemp(prefix="rec_speed_"))
    pretrain_epochs = pretrain_epochs or epochs
    try:
        prepare_rec(log, output=workdir / "data")
        results = {}
        for name, objective in (("full", NextPositiveConfig(softmax="full")), ("sampled", sampled)):
            pretrain = RecPretrainConfig(
                data=str(workdir / "data"), model=MODEL, seed=seed, output=str(workdir / f"pre_{name}"),
                objective=objective,
                trainer=TrainerSection(max_epochs=pretrain_epochs, patience=patience or pretrain_epochs,
                                       progress_bar=False))
            pretrained = pretrain_rec(pretrain)
            finetune = RecFinetuneConfig(
                data=str(workdir / "data"), init_from=str(pretrained.model_dir), init="full", seed=seed,
                output=str(workdir / f"ft_{name}"),
                trainer=TrainerSection(max_epochs=epochs, patience=epochs, progress_bar=False))
            ranker = finetune_rec(finetune)
            results[name] = {"ndcg": float(ranker.metrics["val_ndcg_at_10"]),
                             "npp": float(pretrained.metrics["val_npp"]),
                             "epochs": float(pretrained.metrics["epochs"]), "seconds": pretrained.seconds}
            print(f"{name}: pretraining {pretrained.metrics['epochs']} epochs, {pretrained.seconds:.0f} s, "
                  f"val NPP {results[name]['npp']:.4f}; fine-tuned NDCG@10 {results[name]['ndcg']:.4f}")
        return results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ----------------------------------------------------------------------------- 4. large catalog


def _rss_mb() -> float:
    """Current resident memory of this process in MiB (Linux /proc; NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def catalog_memory(catalog: int, steps: int, negatives: int, seed: int) -> dict[str, float]:
    """Sampled-softmax steps with a `catalog`-item vocabulary: speed, table size and RSS in MiB."""
    rss_before = _rss_mb()
    schema = Schema(id_column=RULES.user_column, time_column=RULES.time_column, time_kind="datetime", features=[
        CategoricalFeature(RULES.item_column, [str(i) for i in range(catalog)]),
        CategoricalFeature(RULES.source_column, list(CONTEXTS)),
        CategoricalFeature(RULES.action_column, list(RULES.positive_actions)),
    ])
    module = pretraining_module(schema, NextPositiveConfig(softmax="sampled", num_negatives=negatives), None, seed)
    rss_built, peak_built = _rss_mb(), _peak_rss_mb()

    generator = torch.Generator().manual_seed(seed)
    rows, width = 32, 64
    item, source, action = (feature.name for feature in schema.categorical)
    batch = Batch(
        features={
            item: torch.randint(FIRST_VALUE_ID, catalog + FIRST_VALUE_ID, (rows, width), generator=generator),
            source: torch.randint(FIRST_VALUE_ID, len(CONTEXTS) + FIRST_VALUE_ID, (rows, width), generator=generator),
            action: torch.randint(FIRST_VALUE_ID, len(RULES.positive_actions) + FIRST_VALUE_ID, (rows, width),
                                  generator=generator),
        },
        event_time=torch.randint(0, 3600, (rows, width), generator=generator).cumsum(dim=1),  # [B, T] ascending
        lengths=torch.full((rows,), width, dtype=torch.int64),
        index=torch.arange(rows),
    )
    timing = time_training(module, [batch], steps, None)  # a one-batch "loader", cycled
    result = {"catalog": catalog, "steps_per_second": timing.steps / timing.seconds,
              "table_mb": module.network.item_table.weight.numel() * 4 / 2**20,
              "rss_before": rss_before, "rss_built": rss_built, "rss_after": _rss_mb(),
              "peak_built": peak_built, "peak_after": _peak_rss_mb()}
    del module, batch
    return result


def big_catalog(catalog: int, steps: int, negatives: int, seed: int) -> list[dict[str, float]]:
    """`catalog_memory` for a small reference catalog, then for `catalog`.

    The reference run pays the one-time costs (kernels, allocator pools) and shows what the steps
    add without a large table (activations of the batch); the large run should add only the table's
    gradient and AdamW moments on top of that.
    """
    return [catalog_memory(size, steps, negatives, seed) for size in (REFERENCE_CATALOG, catalog)]


# ----------------------------------------------------------------------------- report


def _number(value: float, digits: int = 0) -> str:
    return "—" if value is None or value != value else f"{value:,.{digits}f}"


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.1f}x" if denominator else "—"


def markdown_table(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| measure | eventseq | naive | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000, help="synthetic users (~330 log rows each)")
    parser.add_argument("--items", type=int, default=2_000, help="synthetic catalog size")
    parser.add_argument("--steps", type=int, default=100, help="timed training steps per side")
    parser.add_argument("--epochs", type=int, default=None, help="time this many epochs instead of --steps")
    parser.add_argument("--batch-size", type=int, default=32, help="eventseq windows per step")
    parser.add_argument("--naive-batch-size", type=int, default=8, help="naive users per step")
    parser.add_argument("--negatives", type=int, default=1024, help="sampled-softmax negatives per batch")
    parser.add_argument("--sampler", choices=("uniform", "popularity"), default="popularity",
                        help="negative sampler of the sampled softmax")
    parser.add_argument("--popularity-power", type=float, default=1.0, help="exponent of the popularity sampler")
    parser.add_argument("--threads", type=int, default=2, help="torch and Polars threads (set before import)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ndcg", action="store_true", help="also fine-tune after full and sampled pretraining")
    parser.add_argument("--ndcg-epochs", type=int, default=2, help="fine-tuning (and pretraining) epochs for --ndcg")
    parser.add_argument("--ndcg-pretrain-epochs", type=int, default=None,
                        help="most pretraining epochs for --ndcg (default: --ndcg-epochs)")
    parser.add_argument("--ndcg-patience", type=int, default=None,
                        help="stop pretraining after this many epochs without a better validation loss")
    parser.add_argument("--big-catalog", action="store_true", help="also run the large-catalog memory check")
    parser.add_argument("--catalog", type=int, default=1_000_000, help="items of the --big-catalog vocabulary")
    parser.add_argument("--big-steps", type=int, default=10, help="timed steps of the --big-catalog check")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file for the table")
    args = parser.parse_args()
    if args.steps < 1 or (args.epochs is not None and args.epochs < 1):
        parser.error("--steps and --epochs must be >= 1")

    torch.set_num_threads(args.threads)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning|pytorch_lightning|lightning_fabric")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    started = time.perf_counter()
    rows: list[tuple[str, str, str, str]] = []
    notes: list[str] = []

    big = big_catalog(args.catalog, args.big_steps, args.negatives, args.seed) if args.big_catalog else None

    synthetic = make_interactions(n_users=args.users, n_items=args.items, seed=args.seed)
    log = synthetic.log
    print(f"log: {log.height:,} rows, {args.users:,} users, {args.items:,} items")

    # 1. preprocessing
    clock = time.perf_counter()
    data = prepare_rec(log)
    eventseq_seconds = time.perf_counter() - clock
    pandas_log = log.to_pandas()  # the notebook starts from a pandas frame: not timed
    clock = time.perf_counter()
    naive_users, vocabularies, naive_train_end = naive_prepare(pandas_log, MODEL.max_len)
    naive_seconds = time.perf_counter() - clock
    eventseq_rate, naive_rate = log.height / eventseq_seconds, log.height / naive_seconds
    rows.append(("preprocessing, log rows/s", _number(eventseq_rate), _number(naive_rate),
                 _ratio(eventseq_rate, naive_rate)))
    for part in ("train", "valid"):
        ours = data.report["groups"][part]
        theirs = sum(len(user[f"{part}_groups"]) for user in naive_users)
        rows.append((f"{part} request groups", f"{ours:,}", f"{theirs:,}", "same" if ours == theirs else "MISMATCH"))
        if ours != theirs:
            notes.append(f"WARNING: {part} groups differ: eventseq {ours:,}, naive {theirs:,}")
    if naive_train_end != data.split.train_end:
        notes.append(f"WARNING: training cut-off differs: eventseq {data.split.train_end}, naive {naive_train_end}")

    # 2. pretraining, full softmax
    history = SequenceDataset.from_table(data.history.table, data.schema)
    windows = history_windows(history, np.arange(len(history)), data.split.train_end, MODEL.max_len)
    counts = item_counts(data, history).tolist()
    loader = _window_loader(history, windows, args.batch_size, True, args.seed)
    full = NextPositiveConfig(softmax="full")
    module = pretraining_module(data.schema, full, counts, args.seed)
    eventseq_full = time_training(module, loader, args.steps, args.epochs)

    naive_schema = vocabularies.schema()
    naive = naive_loader(naive_users, naive_schema, naive_train_end, args.naive_batch_size, args.seed)
    naive_module = pretraining_module(naive_schema, NextPositiveConfig(softmax="full"), None, args.seed)
    naive_full = time_training(naive_module, naive, args.steps, args.epochs)
    rows.append(("pretraining, full softmax, events/s", _number(eventseq_full.events_per_second),
                 _number(naive_full.events_per_second),
                 _ratio(eventseq_full.events_per_second, naive_full.events_per_second)))
    naive_padded = naive_loader(naive_users, naive_schema, naive_train_end, args.naive_batch_size, args.seed,
                                pad_to=MODEL.max_len)
    padded_full = time_training(pretraining_module(naive_schema, NextPositiveConfig(softmax="full"), None, args.seed),
                                naive_padded, args.steps, args.epochs)
    rows.append((f"pretraining, full softmax, events/s; naive padded to max_len {MODEL.max_len}",
                 _number(eventseq_full.events_per_second), _number(padded_full.events_per_second),
                 _ratio(eventseq_full.events_per_second, padded_full.events_per_second)))
    torch.manual_seed(args.seed)
    notebook_full = time_training(NotebookRecModel(naive_schema, MODEL), naive_padded, args.steps, args.epochs)
    rows.append((f"pretraining, full softmax, events/s; naive notebook end to end (max_len {MODEL.max_len} "
                 "padding, nn.TransformerEncoder, default AdamW)",
                 _number(eventseq_full.events_per_second), _number(notebook_full.events_per_second),
                 _ratio(eventseq_full.events_per_second, notebook_full.events_per_second)))
    eventseq_events, naive_events = int(windows[2].sum()), sum(len(sample["item"]) for sample in naive.dataset)
    rows.append(("pretraining events per epoch", f"{eventseq_events:,}", f"{naive_events:,}",
                 "same" if eventseq_events == naive_events else "differ"))

    catalog = module.network.num_items
    dim, layers = MODEL.dim, MODEL.num_layers
    flops = training_flops(eventseq_full, catalog, catalog * eventseq_full.steps, dim, layers)
    peak = matmul_flops_per_second()
    achieved = flops / eventseq_full.seconds
    rows.append((f"full softmax FLOPs per event (V={catalog:,}, d={dim})",
                 _number(flops / eventseq_full.events / 1e3) + "k", "", ""))
    rows.append(("full softmax GFLOP/s (share of matmul peak)",
                 f"{achieved / 1e9:.2f} ({achieved / peak:.0%})", "", ""))

    # 3. pretraining, sampled softmax
    sampled = NextPositiveConfig(softmax="sampled", num_negatives=args.negatives, sampler=args.sampler,
                                 popularity_power=args.popularity_power)
    sampled_module = pretraining_module(data.schema, sampled, counts, args.seed)
    eventseq_sampled = time_training(sampled_module, loader, args.steps, args.epochs)
    rows.append((f"sampled ({args.negatives} {args.sampler} negatives) vs naive full, events/s",
                 _number(eventseq_sampled.events_per_second), _number(naive_full.events_per_second),
                 _ratio(eventseq_sampled.events_per_second, naive_full.events_per_second)))
    rows.append((f"sampled vs naive full padded to max_len {MODEL.max_len}, events/s",
                 _number(eventseq_sampled.events_per_second), _number(padded_full.events_per_second),
                 _ratio(eventseq_sampled.events_per_second, padded_full.events_per_second)))
    rows.append(("sampled vs naive notebook end to end (full softmax), events/s",
                 _number(eventseq_sampled.events_per_second), _number(notebook_full.events_per_second),
                 _ratio(eventseq_sampled.events_per_second, notebook_full.events_per_second)))
    negatives = args.negatives  # uniform sampling takes every item once when the catalog has fewer
    if args.sampler == "uniform":
        negatives = min(negatives, catalog - FIRST_VALUE_ID)
    sampled_flops = training_flops(eventseq_sampled, negatives,
                                   negatives * eventseq_sampled.steps + eventseq_sampled.scored, dim, layers)
    rows.append(("sampled softmax FLOPs per event",
                 _number(sampled_flops / eventseq_sampled.events / 1e3) + "k", "", ""))
    if args.ndcg:
        if args.negatives >= catalog - FIRST_VALUE_ID and args.sampler == "uniform":
            notes.append("NDCG: --negatives covers the whole catalog, so uniform sampling takes every item once "
                         "and the sampled loss equals the full one (the two NDCGs then match)")
        scores = fine_tuned_ndcg(log, args.ndcg_epochs, sampled, args.seed, args.ndcg_pretrain_epochs,
                                 args.ndcg_patience)
        full, sampled_scores = scores["full"], scores["sampled"]
        budget = f"at most {args.ndcg_pretrain_epochs or args.ndcg_epochs}"
        if args.ndcg_patience:
            budget += f", patience {args.ndcg_patience}"
        rows.append((f"pretraining ({budget} epochs): epochs run, full / sampled",
                     f"{full['epochs']:.0f} / {sampled_scores['epochs']:.0f}", "", ""))
        rows.append(("pretraining wall-clock s (validation included), full / sampled",
                     f"{full['seconds']:.0f} / {sampled_scores['seconds']:.0f}", "",
                     _ratio(full["seconds"], sampled_scores["seconds"])))
        rows.append(("best validation next-positive NLL (whole catalog), full / sampled",
                     f"{full['npp']:.4f} / {sampled_scores['npp']:.4f}", "", ""))
        rows.append((f"NDCG@10 after full pretraining + {args.ndcg_epochs} fine-tuning epochs",
                     f"{full['ndcg']:.4f}", "", ""))
        rows.append((f"NDCG@10 after sampled pretraining, {args.negatives} {args.sampler} negatives "
                     "(last column: sampled - full)",
                     f"{sampled_scores['ndcg']:.4f}", "", f"{sampled_scores['ndcg'] - full['ndcg']:+.4f}"))

    # 4. large catalog
    if big is not None:
        reference, large = big

        def both(key: str, digits: int = 0) -> str:
            return f"{reference[key]:,.{digits}f} / {large[key]:,.{digits}f}"

        sizes = f"catalog {reference['catalog']:,} / {large['catalog']:,}"
        rows.append((f"{sizes}: sampled steps/s (32 x 64 batch)", both("steps_per_second", 2), "", ""))
        rows.append((f"{sizes}: item table MiB", both("table_mb", 1), "", ""))
        rows.append((f"{sizes}: RSS MiB when built", both("rss_built"), "", ""))
        for record in big:
            record["rss_growth"] = record["rss_after"] - record["rss_built"]
            record["peak_growth"] = record["peak_after"] - record["peak_built"]
            record["state_mb"] = 3 * record["table_mb"]
        rows.append((f"{sizes}: RSS MiB added by the steps (current)", both("rss_growth"), "", ""))
        rows.append((f"{sizes}: peak RSS MiB added by the steps", both("peak_growth"), "", ""))
        rows.append((f"{sizes}: table gradient + AdamW moments MiB (3x table)", both("state_mb"), "", ""))
        extra = (large["rss_growth"] - reference["rss_growth"]) - (large["state_mb"] - reference["state_mb"])
        notes.append(f"large catalog: beyond the table's gradient and AdamW moments, the {large['catalog']:,}-item "
                     f"steps kept {extra:+.0f} MiB more resident memory than the {reference['catalog']:,}-item ones")

    total = time.perf_counter() - started
    settings = (
        f"model d={dim}, {layers} layers, {MODEL.num_heads} heads, max_len {MODEL.max_len}; eventseq batch "
        f"{args.batch_size} windows (length-bucketed), naive batch {args.naive_batch_size} users (shuffled, "
        f"pad_sequence); " + (f"{args.epochs} epochs" if args.epochs else f"{args.steps} steps") +
        f" per side after {WARMUP_STEPS} warm-up steps; timed steps: eventseq full {eventseq_full.steps}, "
        f"naive {naive_full.steps}, sampled {eventseq_sampled.steps}; matmul peak {peak / 1e9:.1f} GFLOP/s; "
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, {pl.thread_pool_size()} Polars "
        f"threads, pandas {pd.__version__}; total {total:.0f} s"
    )
    table = markdown_table(rows)
    print(f"\n{settings}\n\n{table}")
    for note in notes:
        print(note)
    command = shlex.join(["python", "benchmarks/rec_speed.py", *sys.argv[1:]])
    report = (f"# eventseq.rec vs the naive notebook approach\n\n`{command}`, {dt.date.today().isoformat()}\n\n"
              f"{settings}\n\n{table}\n" + "".join(f"\n{note}\n" for note in notes))
    with atomic_path(args.output) as tmp:
        tmp.write_text(report)
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
