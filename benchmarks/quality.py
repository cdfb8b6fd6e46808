"""The quality suite: every default of the library judged on data it was not designed on.

Usage:
    python benchmarks/quality.py [--sets markov,timing,...,cdnow,vowels] [--seeds 0,1,2] [--entities 300,1000,2000]
                                 [--minutes 0.5] [--rows aggregates,gru,...] [--quick]
                                 [--output benchmarks/results/quality.md] [--cells FILE]

A run survives being killed: every finished cell (one set at one size, one seed, one row) is appended
to the cells file (`--cells`, default: the output's name with `.cells.jsonl`) as soon as it is done,
with the settings it ran under; a run skips the cells already there for the same settings, and the
Markdown and the PNG are rendered from that file. So a long suite is run in pieces (per set, per
seed, across sessions) and rendered whole; a cell that failed is tried again.

Each set of `eventseq.datasets.quality` (plus two real ones, each when the PyPI package carrying its
files is installed: CDNOW from `lifetimes`, JapaneseVowels from `sktime`; REAL_SETS) is
generated with each seed, prepared with `eventseq.data.prepare`, and split once per seed into
train / valid / test entities (65% / 15% / 20%, stratified for classes) by
`eventseq.data.splits.split_by_entity`, the very split `eventseq.training.train` makes with
`data.split_seed=seed`. Every row is scored on the same test entities:

- optimum: the generator's Bayes-optimal prediction (exact; the taste set's by Monte Carlo);
- aggregates: `aggregate_features` → LightGBM fitted on train + valid;
- gru / lstm / cnn / transformer: `train` with `encoder=<name>` and every other setting left at the
  library's defaults (the model a user gets), early stopping on the valid entities;
- default: `train` with no encoder chosen (what `eventseq train` gives: the network stacked with
  LightGBM over the aggregates, `eventseq.combined`; below `cv.below` train + valid entities, the
  average of one network per fold, stacked out of fold);
- network: the default's network alone (`combine.mode=none`, the default before the combined model);
  `default split` / `network split`: the same on one split (`cv.below=0`, as before cross-validation);
- auto: `train` with `encoder=auto`, given `--minutes` per candidate encoder (so in all
  `--minutes` x the number of candidates): the same budget per encoder as the other rows;
  `auto split` compares the candidates on the one validation part (`cv.below=0`), `auto cv` by
  cross-validation over train + valid (`cv.below` above any size), `auto unpruned` trains every
  candidate to the end (`auto.prune=false`); the note names the choice; the report counts how often
  each auto row keeps the candidate whose network scores best on the test entities (with the encoder
  rows) and the one `auto unpruned` keeps, and its time against the default's;
- <method>: `pretrain method=<method>` on every entity (no labels, the transductive protocol of
  embedding benchmarks), `embed`, LightGBM on train + valid; `<method> ⊕ aggregates`: the embeddings
  joined to the aggregates; `<method> fine-tuned`: `train init_from=` its model; `<method> auto`:
  `pretrain encoder=auto` choosing by a logistic-regression probe of the first target on the train +
  valid entities (the note: the choice, and the candidate best on the test entities).

Scores (higher is better): AUROC (binary), accuracy (multiclass), macro AUROC (multilabel), R²
(regression), as `eventseq.datasets.quality.quality_score` computes them. The report gives mean ±
std over the seeds, the share of the optimum, the epochs and the wall-clock seconds of each row,
the seconds a row that trains one network on one split (an encoder row or `network split` above
`cv.below`, or any with `--override cv.below=0`) trained before its test score first reached the
aggregates' (`FloorClock`: scored after every epoch, its own scoring not counted; cross-validated
and auto rows: "-"), and draws one panel per set (PNG next to the Markdown). Every model gets `--minutes` of training at
most (`trainer.max_minutes`; a cross-validated run `--minutes` x `cv.folds`, one share per fold network),
`trainer.max_epochs` as the library's default unless `--quick`.

Several `--entities` sizes give one block per set and size (`markov@300`, ...): small data is where
a sequence model is likeliest to lose to the aggregates.

`--quick` is a smoke run of the script itself (tiny data, one epoch): what the tests run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import importlib.util
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from lightning.pytorch.callbacks import Callback

from eventseq._io import atomic_path
from eventseq.config import load_config
from eventseq.data import PrepareConfig, prepare
from eventseq.data.splits import split_by_entity
from eventseq.datasets.quality import QUALITY_METRICS, QUALITY_SETS, QualitySet, make_quality_set, quality_score
from eventseq.downstream import aggregate_features, concat_features
from eventseq.inference import embed, predict
from eventseq.training import PretrainConfig, TrainConfig, pretrain, train

RESULTS = Path(__file__).resolve().parent / "results" / "quality.md"
VALID_FRACTION, TEST_FRACTION = 0.15, 0.2
ENCODER_ROWS = ("gru", "lstm", "cnn", "transformer")
METHOD_ROW_SUFFIXES = ("", " ⊕ aggregates", " fine-tuned", " auto")  # the rows of a pretraining method
# what a cell's settings record besides the options: 2 = the default row is the combined model; 3 = below
# cv.below it is cross-validated (fold networks averaged, stacked out of fold); 4 = the transformer reads order
# (conv_kernel, rotary) and cross-validated auto prunes
SUITE_REVISION = 4
UNPRUNED = "auto unpruned"
AUTO_ROWS = {"auto": [], "auto split": ["cv.below=0"], "auto cv": ["cv.below=1000000000"],
             UNPRUNED: ["auto.prune=false"]}
SPLIT_ROWS = {"default split": "default", "network split": "network"}  # the row on one split (cv.below=0)
DEFAULT_ROWS = ("aggregates", "default", "network", *ENCODER_ROWS, "auto", "coles", "coles ⊕ aggregates", "coles fine-tuned")
LIGHTGBM = {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 31, "verbose": -1, "n_jobs": 1,
            "force_col_wise": True, "deterministic": True}


@dataclass
class Case:
    """One set at one seed, prepared, with its split."""

    name: str
    seed: int
    task: str
    targets: list[str]
    prepared_dir: Path
    table: pl.DataFrame
    schema: Any
    ids: np.ndarray  # entity ids in table order
    truth: np.ndarray  # targets in table order
    splits: dict[str, np.ndarray]  # positions in table order
    optimum: float | None
    signal: str

    def part_ids(self, *parts: str) -> np.ndarray:
        return np.concatenate([self.ids[self.splits[part]] for part in parts])


@dataclass
class Score:
    value: float
    seconds: float
    epochs: float | None = None
    note: str = ""
    to_floor: float = float("nan")  # training seconds until the test score reached the aggregates' (inf: never;
    # nan: not measured, see FloorClock)


@dataclass
class Result:
    scores: dict[tuple[str, str], list[Score]] = field(default_factory=dict)  # (set, row) -> per seed
    optimum: dict[str, list[float]] = field(default_factory=dict)
    signals: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)

    def add(self, set_name: str, row: str, score: Score) -> None:
        self.scores.setdefault((set_name, row), []).append(score)


class CellLog:
    """The finished cells of the suite, one JSON line each, appended as each cell finishes.

    A cell is (set label, seed, row) under `settings` (everything else that changes a score: the
    budget, the overrides, --quick). Lines written under other settings are kept but not used; a
    last line cut short by a kill is ignored; for a cell written twice, the later line counts.
    """

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path, self.settings = path, settings
        self.cells: dict[tuple[str, int, str], dict[str, Any]] = {}
        self.cut_off = False  # the file ends inside a line: the one a killed run was writing
        if path.exists():
            text = path.read_text()
            self.cut_off = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    cell = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line a killed run was writing
                if cell.get("settings") == settings:
                    self.cells[(cell["set"], cell["seed"], cell["row"])] = cell

    def done(self, label: str, seed: int, row: str) -> bool:
        """Whether the cell is in the file and did not fail (a failed cell is run again)."""
        cell = self.cells.get((label, seed, row))
        return cell is not None and not cell["note"].startswith("failed")

    def add(self, case: Case, row: str, score: Score) -> None:
        cell = {"set": case.name, "seed": case.seed, "row": row, "value": score.value, "seconds": score.seconds,
                "epochs": score.epochs, "note": score.note, "to_floor": score.to_floor, "optimum": case.optimum,
                "signal": case.signal,
                "task": case.task, "settings": self.settings}
        self.cells[(case.name, case.seed, row)] = cell
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # one line per cell: a kill loses at most the cell being written, whose cut-off line is ended first
        with self.path.open("a") as file:
            file.write(("\n" if self.cut_off else "") + json.dumps(cell) + "\n")
            file.flush()
            os.fsync(file.fileno())
        self.cut_off = False

    def result(self, labels: list[str], seeds: list[int], rows: list[str]) -> Result:
        """The Result of the requested cells found in the file, in the order asked for."""
        result = Result()
        for label in labels:
            for seed in seeds:
                found = [self.cells[(label, seed, row)] for row in rows if (label, seed, row) in self.cells]
                if not found:
                    continue
                result.signals[label], result.tasks[label] = found[0]["signal"], found[0]["task"]
                optimum = found[0]["optimum"]
                result.optimum.setdefault(label, []).append(np.nan if optimum is None else optimum)
                for cell in found:
                    result.add(label, cell["row"], Score(cell["value"], cell["seconds"], cell["epochs"], cell["note"],
                                                         cell.get("to_floor", float("nan"))))
        return result


# ----------------------------------------------------------------------------- data
REAL_SETS = {"cdnow": "lifetimes", "vowels": "sktime"}  # the real sets and the PyPI package whose files they are
INSTALL_REAL = {"lifetimes": "pip install --no-deps lifetimes==0.11.3", "sktime": "pip install --no-deps sktime==1.2.0"}


def real_set(name: str, entities: int, seed: int) -> QualitySet:
    """A real set (REAL_SETS): a random `entities` of its entities; no known optimum.

    cdnow: CDNOW purchase histories, churn as the target. vowels: the UEA archive's JapaneseVowels (640
    utterances, both archive parts), the speaker as the target.
    """
    from eventseq.datasets import CDNOW_COLUMNS, load_cdnow
    from eventseq.datasets.uea import load_uea, uea_columns

    if name == "cdnow":
        events, labels = load_cdnow()
        id_column, columns, task, targets = "customer_id", dict(CDNOW_COLUMNS), "binary", ["churn"]
        signal = "real: CDNOW churn (1-5 purchases)"
    else:
        events, labels = load_uea("JapaneseVowels")
        labels = labels.drop("part")
        id_column, columns, task, targets = "entity_id", uea_columns(12), "multiclass", ["label"]
        signal = "real: JapaneseVowels speaker (9 classes, 7-29 frames of 12 coefficients)"
    labels = labels.sample(n=min(entities, labels.height), seed=seed).sort(id_column)
    events = events.join(labels.select(id_column), on=id_column, how="semi")
    return QualitySet(name, signal, events, labels, columns, task, np.full(labels.height, np.nan), targets)


def make_case(name: str, entities: int, seed: int, workdir: Path) -> Case:
    data = real_set(name, entities, seed) if name in REAL_SETS else make_quality_set(name, entities, seed)
    output = workdir / f"{name}_{seed}" / "prepared"
    prepared = prepare(data.events, PrepareConfig(**data.columns), labels=data.labels, output=output)
    table, schema = prepared.table, prepared.schema
    ids = table[schema.id_column].to_numpy()
    truth = table.select(data.targets).to_numpy()
    truth = truth if data.task == "multilabel" else truth[:, 0]  # a class's index: prepare encodes the classes
    stratify = truth if data.task in ("binary", "multiclass") else None
    splits = split_by_entity(len(ids), VALID_FRACTION, TEST_FRACTION, stratify, seed)
    test_ids = ids[splits["test"]]
    optimum = None if name in REAL_SETS else data.optimum(test_ids)
    return Case(name, seed, data.task, data.targets, output, table, schema, ids, truth, splits, optimum, data.signal)


# ----------------------------------------------------------------------------- downstream model
def lightgbm_score(case: Case, features: pl.DataFrame) -> float:
    """LightGBM on train + valid entities of `features`, scored on the test entities."""
    import lightgbm

    id_column = case.schema.id_column
    frame = pl.DataFrame({id_column: case.ids}).join(features, on=id_column, how="left")  # table order
    X = frame.drop(id_column).to_numpy().astype(np.float64)
    fit = np.concatenate([case.splits["train"], case.splits["valid"]])
    test = case.splits["test"]
    y = case.truth
    if case.task == "regression":
        model = lightgbm.LGBMRegressor(random_state=case.seed, **LIGHTGBM).fit(X[fit], y[fit])
        return quality_score("regression", y[test], model.predict(X[test]))
    if case.task == "multilabel":
        columns = [lightgbm.LGBMClassifier(random_state=case.seed, **LIGHTGBM).fit(X[fit], y[fit, j])
                   .predict_proba(X[test])[:, 1] for j in range(y.shape[1])]
        return quality_score("multilabel", y[test], np.stack(columns, axis=1))
    model = lightgbm.LGBMClassifier(random_state=case.seed, **LIGHTGBM).fit(X[fit], y[fit])
    probability = model.predict_proba(X[test])
    return quality_score(case.task, y[test], probability[:, 1] if case.task == "binary" else probability)


def network_score(case: Case, module: Any) -> float:
    """The score of a trained supervised module's predictions on the test entities."""
    frame = predict(module, case.prepared_dir, progress=False)
    id_column = case.schema.id_column
    frame = pl.DataFrame({id_column: case.ids[case.splits["test"]]}).join(frame, on=id_column, how="left")
    test = case.splits["test"]
    target = case.targets[0]
    if case.task == "binary":
        predicted = frame[f"{target}_proba"].to_numpy()
    elif case.task == "multiclass":
        predicted = frame.select(pl.col(f"^{target}_proba_.*$")).to_numpy()
    elif case.task == "multilabel":
        predicted = frame.select([f"{name}_proba" for name in case.targets]).to_numpy()
    else:
        predicted = frame[f"{target}_pred"].to_numpy()
    if not np.isfinite(predicted).all():
        return float("nan")
    return quality_score(case.task, case.truth[test], predicted)


class FloorClock(Callback):
    """How long a network trains before its test score first reaches the floor (the aggregates + LightGBM
    score of the same case): after every validation it scores the test entities, and the training seconds
    of the first epoch at or above the floor are kept (`seconds`; inf while not reached). Its own scoring is
    left out of the clock (`spent`), and the random generators are put back after it, so that the network
    trains exactly as it would without the clock."""

    def __init__(self, case: Case, floor: float) -> None:
        self.case, self.floor = case, floor
        self.started, self.spent, self.seconds = 0.0, 0.0, float("inf")

    def on_train_start(self, trainer: Any, module: Any) -> None:
        self.started, self.spent, self.seconds = time.perf_counter(), 0.0, float("inf")

    def on_validation_end(self, trainer: Any, module: Any) -> None:
        if trainer.sanity_checking or np.isfinite(self.seconds):
            return
        began = time.perf_counter()
        generators = torch.get_rng_state(), np.random.get_state(), random.getstate()
        training = module.training
        value = network_score(self.case, module)
        module.train(training)
        torch.set_rng_state(generators[0])
        np.random.set_state(generators[1])
        random.setstate(generators[2])
        if np.isfinite(value) and value >= self.floor:
            self.seconds = began - self.started - self.spent
        self.spent += time.perf_counter() - began


# ----------------------------------------------------------------------------- rows
def _common_overrides(case: Case, args: argparse.Namespace, run_dir: Path) -> list[str]:
    overrides = [f"data.path={case.prepared_dir}", f"output={run_dir}", f"seed={case.seed}",
                 f"data.split_seed={case.seed}", "trainer.progress_bar=false", f"trainer.max_minutes={args.minutes}"]
    if args.quick:
        overrides += ["trainer.max_epochs=1"]
    return overrides


def supervised_row(case: Case, row: str, args: argparse.Namespace, workdir: Path, init_from: Path | None = None,
                   floor: Callable[[], float] | None = None) -> Score:
    """One `train` row; a row that trains one network on one split, given the `floor`, is timed to it
    (FloorClock)."""
    run_dir = workdir / f"{case.name}_{case.seed}" / row.replace(" ", "_")
    overrides = _common_overrides(case, args, run_dir)
    overrides += [f"data.valid_fraction={VALID_FRACTION}", f"data.test_fraction={TEST_FRACTION}"]
    if row in ENCODER_ROWS:
        overrides.append(f"encoder={row}")
    if row in AUTO_ROWS:
        overrides += ["encoder=auto", *AUTO_ROWS[row]]
    if SPLIT_ROWS.get(row, row) == "network":
        overrides.append("combine.mode=none")
    if row in SPLIT_ROWS:
        overrides.append("cv.below=0")
    # the same budget per network as every other row: --minutes x candidates x folds in all
    chosen = load_config(TrainConfig, overrides=[*overrides, *args.override])
    networks = len(chosen.auto.candidates) if row in AUTO_ROWS else 1
    if len(case.splits["train"]) + len(case.splits["valid"]) < chosen.cv.below:
        networks *= chosen.cv.folds
    clock = FloorClock(case, floor()) if networks == 1 and floor is not None else None
    overrides.append(f"trainer.max_minutes={args.minutes * networks}")
    overrides += args.override
    if init_from is not None:
        overrides.append(f"init_from={init_from}")
    config = load_config(TrainConfig, overrides=overrides)
    started = time.perf_counter()
    result = train(config, [clock] if clock else ())
    seconds = time.perf_counter() - started - (clock.spent if clock else 0.0)
    written = pl.read_parquet(run_dir / "splits.parquet")
    test_ids = np.sort(written.filter(pl.col("part") == "test")[case.schema.id_column].to_numpy())
    if not np.array_equal(test_ids, np.sort(case.part_ids("test"))):
        raise RuntimeError(f"{case.name}: train's test entities differ from the suite's split")
    value = network_score(case, result.module)
    note = str(result.metrics.get("auto_choice", ""))
    weights = result.metrics.get("combined_weights")
    if weights:  # the stack's weights: which part carries the default on this set
        note = f"{note} weights: network {weights['network']:.2f}, aggregates {weights['aggregates']:.2f}".strip()
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return Score(value, seconds, float(result.metrics.get("epochs", np.nan)), note,
                 clock.seconds if clock else float("nan"))


def pretrain_rows(case: Case, method: str, args: argparse.Namespace, workdir: Path, rows: list[str],
                  aggregates: pl.DataFrame) -> dict[str, Score]:
    run_dir = workdir / f"{case.name}_{case.seed}" / method
    overrides = _common_overrides(case, args, run_dir) + [f"method={method}"] + args.pretrain_override
    config = load_config(PretrainConfig, overrides=overrides)
    started = time.perf_counter()
    result = pretrain(config)
    seconds = time.perf_counter() - started
    embeddings = embed(result.module, case.prepared_dir, progress=False)
    epochs = float(result.metrics.get("epochs", np.nan))
    scores: dict[str, Score] = {}
    if method in rows:
        scores[method] = Score(lightgbm_score(case, embeddings), seconds, epochs)
    if f"{method} ⊕ aggregates" in rows:
        joined = concat_features(embeddings, aggregates, case.schema.id_column)
        scores[f"{method} ⊕ aggregates"] = Score(lightgbm_score(case, joined), seconds, epochs)
    if f"{method} fine-tuned" in rows:
        tuned = supervised_row(case, f"{method} fine-tuned", args, workdir, init_from=result.model_dir)
        tuned.seconds += seconds
        scores[f"{method} fine-tuned"] = tuned
    if f"{method} auto" in rows:
        scores[f"{method} auto"] = pretrain_auto_row(case, method, args, workdir)
    return scores


def pretrain_auto_row(case: Case, method: str, args: argparse.Namespace, workdir: Path) -> Score:
    """`pretrain encoder=auto auto.target=<first target>`, the probe seeing train + valid labels only.

    The score is the chosen encoder's embeddings → LightGBM on the test entities; the note names the
    choice and the candidate whose embeddings score best on the test entities (what a perfect choice
    would have kept), so the report shows how often the probe picks the suite's best.
    """
    run_dir = workdir / f"{case.name}_{case.seed}" / f"{method}_auto"
    run_dir.mkdir(parents=True, exist_ok=True)
    target = case.targets[0]
    labelled = pl.DataFrame({case.schema.id_column: case.part_ids("train", "valid")})
    labels = labelled.join(case.table.select(case.schema.id_column, target), on=case.schema.id_column)
    labels.write_parquet(run_dir / "labels.parquet")
    candidates = load_config(PretrainConfig, overrides=["encoder=auto", *args.pretrain_override]).auto.candidates
    overrides = _common_overrides(case, args, run_dir) + [
        f"method={method}", "encoder=auto", f"auto.target={target}", f"auto.labels={run_dir / 'labels.parquet'}",
        f"trainer.max_minutes={args.minutes * len(candidates)}", *args.pretrain_override]
    started = time.perf_counter()
    result = pretrain(load_config(PretrainConfig, overrides=overrides))
    seconds = time.perf_counter() - started
    on_test = {name: lightgbm_score(case, embed(run_dir / "auto" / name / "model", case.prepared_dir, progress=False))
               for name in candidates}
    chosen = str(result.metrics["auto_choice"])
    best = max(on_test, key=on_test.get)
    return Score(on_test[chosen], seconds, float(result.metrics.get("epochs", np.nan)), f"{chosen} (best: {best})")


def run_case(case: Case, args: argparse.Namespace, workdir: Path, log: CellLog, rows: list[str]) -> None:
    """Score `rows` of one case, each added to `log` as soon as it is done."""

    def record(row: str, score: Score) -> None:
        log.add(case, row, score)
        print(f"  {case.name:<10} seed {case.seed} {row:<24} {score.value:.4f}  {score.seconds:6.1f} s"
              f"  {'' if score.epochs is None else f'{score.epochs:g} ep'} {score.note}", flush=True)

    started = time.perf_counter()
    aggregates = aggregate_features(case.table, case.schema)
    floor = functools.cache(lambda: lightgbm_score(case, aggregates))  # what one network is timed to (FloorClock)
    if "aggregates" in rows:
        record("aggregates", Score(floor(), time.perf_counter() - started))
    for row in rows:
        if row == "aggregates" or row.split(" ")[0] in args.methods:
            continue
        try:
            score = supervised_row(case, row, args, workdir, floor=floor)
        except Exception as error:  # a failing row is a line of the report, not the end of the run
            traceback.print_exc()
            score = Score(float("nan"), 0.0, note=f"failed: {type(error).__name__}: {error}"[:200])
        record(row, score)
        gc.collect()
    for method in args.methods:
        wanted = [row for row in rows if row.split(" ")[0] == method]
        if not wanted:
            continue
        try:
            for row, score in pretrain_rows(case, method, args, workdir, wanted, aggregates).items():
                record(row, score)
        except Exception as error:
            traceback.print_exc()
            for row in wanted:
                record(row, Score(float("nan"), 0.0, note=f"failed: {type(error).__name__}"))
        gc.collect()


# ----------------------------------------------------------------------------- report
def _mean_std(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).any():
        return float("nan"), float("nan")
    return float(np.nanmean(array)), float(np.nanstd(array))


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]


def _to_floor(scores: list[Score]) -> str:
    """The mean training seconds to the aggregates' score over the seeds that reached it, "(k/n)" when only
    k of n did, "never" when none did, "-" where not measured (cross-validated or auto rows, the aggregates)."""
    timed = [score.to_floor for score in scores if not np.isnan(score.to_floor)]
    reached = [seconds for seconds in timed if np.isfinite(seconds)]
    if not timed:
        return "-"
    if not reached:
        return "never"
    return f"{np.mean(reached):.1f}" + ("" if len(reached) == len(timed) else f" ({len(reached)}/{len(timed)})")


def summary(result: Result, rows: list[str]) -> tuple[list[str], dict[str, dict[str, tuple[float, float]]]]:
    """The Markdown table (sets as blocks) and {set: {row: (mean, std)}}."""
    cells: list[list[str]] = []
    means: dict[str, dict[str, tuple[float, float]]] = {}
    for set_name in result.signals:
        task = result.tasks[set_name]
        optimum, optimum_std = _mean_std(result.optimum[set_name])
        means[set_name] = {"optimum": (optimum, optimum_std)}
        head = [set_name, result.signals[set_name], f"{task} ({QUALITY_METRICS[task]})"]
        if np.isfinite(optimum):
            cells.append(head + ["**optimum**", f"{optimum:.4f} ± {optimum_std:.4f}", "1.00", "-", "-", "-",
                                 "Bayes rule, exact"])
            head = ["", "", ""]
        for row in rows:
            scores = result.scores.get((set_name, row), [])
            if not scores:
                continue
            mean, std = _mean_std([s.value for s in scores])
            means[set_name][row] = (mean, std)
            share = f"{mean / optimum:.2f}" if np.isfinite(optimum) and np.isfinite(mean) else "-"
            epochs = [s.epochs for s in scores if s.epochs is not None and np.isfinite(s.epochs)]
            notes = "; ".join(sorted({s.note for s in scores if s.note}))
            cells.append(head + [row, f"{mean:.4f} ± {std:.4f}", share, f"{np.mean(epochs):.1f}" if epochs else "-",
                                 f"{np.mean([s.seconds for s in scores]):.0f}", _to_floor(scores), notes])
            head = ["", "", ""]
    header = ["set", "signal", "task (metric)", "row", "score (mean ± std)", "share of optimum", "epochs", "seconds",
              "seconds to the aggregates' score", "notes"]
    return _markdown(header, cells), means


def ranks(means: dict[str, dict[str, tuple[float, float]]], rows: list[str]) -> list[str]:
    """Mean rank of each row across the sets (1 = best), and how often it is >= aggregates."""
    table: dict[str, list[float]] = {row: [] for row in rows}
    wins: dict[str, list[bool]] = {row: [] for row in rows}
    for set_name, by_row in means.items():
        present = [row for row in rows if row in by_row and np.isfinite(by_row[row][0])]
        order = sorted(present, key=lambda row: -by_row[row][0])
        for rank, row in enumerate(order, start=1):
            table[row].append(rank)
            if "aggregates" in by_row:
                wins[row].append(by_row[row][0] >= by_row["aggregates"][0])
    ranked = sorted((row for row in rows if table[row]), key=lambda row: np.mean(table[row]))
    return _markdown(["row", "mean rank (1 = best)", "sets >= aggregates"],
                     [[row, f"{np.mean(table[row]):.2f}", f"{sum(wins[row])}/{len(wins[row])}"] for row in ranked])


def auto_choices(result: Result, rows: list[str]) -> list[str]:
    """Per set, for each auto row: how often it kept the candidate whose network scores best on the test
    entities (among the encoder rows of the same set and seed, when two are there), how often it kept what
    `auto unpruned` (every candidate to the end) kept, and its time against the default row's."""
    autos = [row for row in rows if row in AUTO_ROWS]
    encoders = [row for row in ENCODER_ROWS if row in rows]
    judged = autos if len(encoders) >= 2 else []  # against the test-best
    agreeing = [row for row in autos if row != UNPRUNED] if UNPRUNED in autos else []  # against auto unpruned
    timed = autos if "default" in rows else []
    if not judged and not agreeing and not timed:
        return []
    header = ["set", *(f"{row}: picks the test-best" for row in judged),
              *(f"{row}: same choice as {UNPRUNED}" for row in agreeing), *(f"{row} time / default" for row in timed)]
    lines, totals = [], {(kind, row): [0, 0] for kind, group in (("best", judged), ("same", agreeing))
                         for row in group}

    def choice(label: str, row: str, index: int) -> str:
        return result.scores[(label, row)][index].note.split(" ")[0]

    for label in result.signals:
        seeds = len(result.scores.get((label, autos[0]), []))
        needed = [*autos, *(encoders if judged else []), *(["default"] if timed else [])]
        if any(len(result.scores.get((label, row), [])) != seeds for row in needed):
            continue  # a set whose rows are not all there for every seed
        cells = []
        for kind, group in (("best", judged), ("same", agreeing)):
            for row in group:
                hits = 0
                for index in range(seeds):
                    if kind == "best":
                        target = max(encoders, key=lambda name: result.scores[(label, name)][index].value)
                    else:
                        target = choice(label, UNPRUNED, index)
                    hits += choice(label, row, index) == target
                totals[(kind, row)][0] += hits
                totals[(kind, row)][1] += seeds
                cells.append(f"{hits}/{seeds}")
        if timed:
            default = np.mean([score.seconds for score in result.scores[(label, "default")]])
            cells += [f"{np.mean([s.seconds for s in result.scores[(label, row)]]) / default:.1f}x" for row in timed]
        lines.append([label, *cells])
    lines.append(["all", *(f"{hits}/{count}" for hits, count in totals.values()), *([""] * len(timed))])
    return _markdown(header, lines)


def plot(means: dict[str, dict[str, tuple[float, float]]], rows: list[str], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(means)
    columns = min(4, len(names))
    lines = (len(names) + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 0.32 * len(rows) * lines + 1.5 * lines),
                                squeeze=False)
    for axis in axes.flat[len(names):]:
        axis.axis("off")
    for axis, name in zip(axes.flat, names):
        shown = [row for row in rows if row in means[name] and np.isfinite(means[name][row][0])][::-1]
        values = np.array([means[name][row][0] for row in shown])
        errors = np.array([means[name][row][1] for row in shown])
        colours = ["tab:orange" if row == "aggregates" else "tab:green" if row in ("auto", "default")
                   else "tab:blue" for row in shown]
        axis.barh(np.arange(len(shown)), values, xerr=errors, color=colours, alpha=0.85, capsize=2)
        axis.set_yticks(np.arange(len(shown)), shown, fontsize=8)
        optimum = means[name]["optimum"][0]
        if np.isfinite(optimum):
            axis.axvline(optimum, color="black", linestyle="--", linewidth=1, label="optimum")
        if "aggregates" in means[name]:
            axis.axvline(means[name]["aggregates"][0], color="tab:orange", linestyle=":", linewidth=1)
        low = float(np.nanmin(values - errors)) if len(values) else 0.0
        axis.set_xlim(max(0.0, min(low, optimum if np.isfinite(optimum) else low) - 0.05),
                      1.0 if not np.isfinite(optimum) else max(optimum, float(np.nanmax(values))) + 0.03)
        axis.set_title(f"{name}", fontsize=10)
        axis.set_xlabel("score (AUROC / accuracy / R²)", fontsize=8)
        axis.grid(axis="x", alpha=0.3)
    figure.suptitle("quality suite: test score per row (black dashed: optimum; orange dotted: aggregates)",
                    fontsize=10)
    figure.tight_layout()
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def command_line(args: argparse.Namespace) -> str:
    parts = ["python benchmarks/quality.py", f"--sets {','.join(args.sets)}", f"--seeds {','.join(map(str, args.seeds))}",
             f"--entities {','.join(map(str, args.entities))}", f"--minutes {args.minutes:g}",
             f"--rows '{','.join(args.rows)}'"]
    parts += [f"--override {item}" for item in args.override]
    parts += [f"--pretrain-override {item}" for item in args.pretrain_override]
    if args.quick:
        parts.append("--quick")
    return " ".join(parts)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    available = [*QUALITY_SETS, *REAL_SETS]
    parser.add_argument("--sets", default=",".join(available), help=f"comma-separated, of {available}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (data, split and models)")
    parser.add_argument("--entities", default="2000",
                        help="comma-separated sizes (entities per set); several give a block per set and size")
    parser.add_argument("--minutes", type=float, default=0.75, help="training budget of every model")
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS), help="comma-separated rows (see the docstring)")
    parser.add_argument("--override", action="append", default=[],
                        help="a key=value of `train` applied to every supervised row (repeatable)")
    parser.add_argument("--pretrain-override", action="append", default=[],
                        help="a key=value of `pretrain` applied to every pretraining row (repeatable)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 120 entities, one epoch, one seed")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--cells", type=Path, default=None,
                        help="the finished cells, one JSON line each (default: the output with .cells.jsonl)")
    args = parser.parse_args(argv)
    args.cells = args.cells or args.output.with_suffix(".cells.jsonl")
    try:
        args.entities = [int(size) for size in str(args.entities).split(",") if size.strip()]
    except ValueError:
        parser.error(f"--entities: expected comma-separated whole numbers, got {args.entities!r}")
    if not args.entities or min(args.entities) < 50:
        parser.error("--entities: each size must be at least 50")
    args.sets = [name.strip() for name in args.sets.split(",") if name.strip()]
    unknown = [name for name in args.sets if name not in available]
    if unknown:
        parser.error(f"--sets: unknown {unknown}; available: {available}")
    args.seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    args.rows = [row.strip() for row in args.rows.split(",") if row.strip()]
    from eventseq.objectives.methods import METHODS

    args.methods = sorted({row.split(" ")[0] for row in args.rows if row.split(" ")[0] in METHODS})
    known = {"aggregates", "default", "network", *SPLIT_ROWS, *AUTO_ROWS, *ENCODER_ROWS,
             *(f"{method}{suffix}" for method in METHODS for suffix in METHOD_ROW_SUFFIXES)}
    bad = [row for row in args.rows if row not in known]
    if bad:
        parser.error(f"--rows: unknown {bad}")
    if args.quick:
        args.entities = [min(size, 120) for size in args.entities]
        args.seeds, args.minutes = args.seeds[:1], min(args.minutes, 0.2)
    return args


def main(argv: list[str] | None = None) -> Result:
    args = parse(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    for name, package in REAL_SETS.items():
        if name in args.sets and importlib.util.find_spec(package) is None:
            print(f"note: {package} is not installed, skipping {name} ({INSTALL_REAL[package]})")
            args.sets = [other for other in args.sets if other != name]
    settings = {"minutes": args.minutes, "override": args.override, "pretrain_override": args.pretrain_override,
                "quick": args.quick, "revision": SUITE_REVISION}
    log = CellLog(args.cells, settings)
    labels = [(name, size, name if len(args.entities) == 1 else f"{name}@{size}")
              for size in args.entities for name in args.sets]
    workdir = Path(tempfile.mkdtemp(prefix="quality_"))
    started = time.perf_counter()
    try:
        for name, size, label in labels:
            for seed in args.seeds:
                missing = [row for row in args.rows if not log.done(label, seed, row)]
                if not missing:
                    print(f"== {label} seed {seed}: every row is in {args.cells}", flush=True)
                    continue
                case = make_case(name, size, seed, workdir)
                case.name = label
                print(f"== {label} seed {seed}: {len(case.ids)} entities, optimum "
                      f"{'-' if case.optimum is None else f'{case.optimum:.4f}'}; rows to run: {', '.join(missing)}",
                      flush=True)
                run_case(case, args, workdir, log, missing)
                shutil.rmtree(workdir / f"{name}_{seed}", ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = log.result([label for _, _, label in labels], args.seeds, args.rows)
    total = (time.perf_counter() - started) / 60
    lines, means = summary(result, args.rows)
    report = "\n".join([
        "# Quality suite", "",
        f"`{command_line(args)}`, rendered {dt.date.today().isoformat()} from `{args.cells.name}` "
        f"({len(log.cells)} cells; this run {total:.1f} min on {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; each row's seconds are its own).", "",
        "Test entities: 20% of each set (the same for every row, per seed); scores: AUROC (binary), accuracy "
        "(multiclass), macro AUROC (multilabel), R² (regression). See the docstring of benchmarks/quality.py.", "",
        *lines, "", "## Ranks across the sets", "", *ranks(means, args.rows), "",
        *(["## auto's choices", "", *choices, ""] if (choices := auto_choices(result, args.rows)) else []),
        f"![quality suite]({args.output.with_suffix('.png').name})", "",
    ])
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.output) as tmp:
        tmp.write_text(report)
    plot(means, args.rows, args.output.with_suffix(".png"))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
