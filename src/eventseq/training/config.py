"""What a training run is told: the config sections (data, trainer, auto) and the run configs
`TrainConfig` (supervised) and `PretrainConfig` (self-supervised), with `TrainResult`, what a run gives back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import ClassVar

import lightning as L
import numpy as np

from eventseq.config import PRETRAIN_GROUPS, TRAIN_GROUPS, ConfigGroup, option
from eventseq.data.dataset import SequenceDataset
from eventseq.nn.encoder import EncoderConfig
from eventseq.objectives.methods import method_sections
from eventseq.objectives.supervised import HeadConfig
from eventseq.optim import OptimizerConfig


LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")  # trainer.loggers: Lightning's loggers by name


@dataclass
class DataSection:
    """Which data and how to batch it.

    Attributes:
        path: directory written by `eventseq prepare` (or its data.parquet).
        max_len: keep the most recent max_len events per entity.
        batch_size: entities per batch.
        valid_fraction: share of entities for validation (early stopping).
        test_fraction: share of entities held out for the final test metrics.
        split_seed: seed of the entity split (stratified by class for classification).
        bucket_by_length: batch similar lengths together to cut padding.
        num_workers: DataLoader worker processes (0 = in the main process).
        streaming: read data.path lazily, one shard (part file) per worker at a time, for data larger
            than memory and for multi-device runs; the split is then by a hash of the entity id
            (see README, Scale-out). False: load the whole table (the in-memory path).
        splits: a Parquet or CSV file giving each entity its part: the id column and `part` (train,
            valid or test), e.g. a run's splits.parquet or a split by time of your own; used instead of
            valid_fraction / test_fraction / split_seed. Every entity needs a part. (pretrain: the test
            entities are left out.) Not with streaming.
    """

    path: str = ""
    max_len: int = option(512, ge=1)
    batch_size: int = option(64, ge=1)
    valid_fraction: float = option(0.15, gt=0, lt=1)
    test_fraction: float = option(0.15, ge=0, lt=1)
    split_seed: int = option(0, ge=0, le=2**32 - 1)
    bucket_by_length: bool = True
    num_workers: int = option(0, ge=0)
    streaming: bool = False
    splits: str | None = None


@dataclass
class TrainerSection:
    """Lightning Trainer settings.

    Attributes:
        max_epochs: upper bound on epochs.
        patience: epochs without improvement of the monitored metric before stopping. 8 (was 3):
            on small data an RNN sits near chance for several epochs before it finds an order signal,
            and a short patience stopped it there (benchmarks/results/quality_before.md: GRU on
            `markov` still rising at the old 20-epoch cap, LSTM stopped after 4 epochs at chance).
        accelerator: cpu, gpu, auto ...
        devices: number of devices (processes) per node.
        strategy: Lightning strategy: auto, ddp (one process per device; several nodes with num_nodes
            and torchrun), ddp_find_unused_parameters_true ...
        num_nodes: number of machines (multi-node DDP).
        precision: Lightning precision string (32-true, bf16-mixed ...).
        gradient_clip_val: clip gradient norm (0 = off).
        progress_bar: show a progress bar with rate and ETA.
        max_minutes: stop training after this much wall-clock time (None = no limit); the
            best checkpoint so far is kept, so methods can be compared at an equal time budget.
        curves: draw output/curves.png when the run ends (about 0.3 s of matplotlib). The runs a run
            makes for itself (cross-validation's fold networks, encoder=auto's candidates) draw none:
            the run's own curves.png shows them all, one colour each.
        loggers: where metrics and the run's config (hyperparameters) go, under output/logs: csv
            (curves.png is drawn from it), tensorboard (when installed; its HPARAMS tab holds the
            config), mlflow (MLFLOW_TRACKING_URI, default output/logs/mlruns) and wandb (project
            "eventseq"; WANDB_MODE=offline keeps it local); mlflow and wandb need their package.
    """

    max_epochs: int = option(50, ge=1)
    patience: int = option(8, ge=0)
    accelerator: str = "cpu"
    devices: int = option(1, ge=1)
    strategy: str = "auto"
    num_nodes: int = option(1, ge=1)
    precision: str = "32-true"
    gradient_clip_val: float = option(1.0, ge=0)
    progress_bar: bool = True
    max_minutes: float | None = option(None, gt=0)
    curves: bool = True
    loggers: list[str] = option(default_factory=lambda: ["csv", "tensorboard"], choices=LOGGERS)




@dataclass
class AutoSection:
    """`encoder=auto`: the encoders tried and how they share the time budget.

    Attributes:
        candidates: encoder options (eventseq/configs/encoder/<name>.yaml, or a user's own) trained
            on the same split, each with at most trainer.max_minutes / len(candidates); the one with
            the best validation metric (the early-stopping monitor) is kept. The event encoder and
            every other setting are the run's own.
        prune: successive halving: every candidate trains `rung_epochs` epochs, the better half
            (rounded up) goes on to twice as many, and so on until one is left, which trains to the
            end (trainer.max_epochs or early stopping). A dropped candidate is reported as pruned,
            with its score when it was dropped. Cross-validated (below cv.below), a round trains each
            remaining candidate's fold networks and ranks the candidates by their mean over the folds.
            false: every candidate trains to the end.
        rung_epochs: epochs of the first round of pruning.
    """

    candidates: list[str] = field(default_factory=lambda: ["gru", "cnn", "transformer"])
    prune: bool = True
    rung_epochs: int = option(3, ge=1)


@dataclass
class CrossValidationSection:
    """Folds of the train + valid entities: how `train` stays honest when the validation part is small.

    Attributes:
        below: with fewer train + valid entities than this, train replaces the one validation part
            by `folds`-fold cross-validation over train + valid: the network is trained once per fold,
            each early-stopped on the entities its fold leaves out, and the model delivered averages
            the fold networks (their logits or values); the stack over the aggregates (combine) is
            fitted on the out-of-fold outputs of every train + valid entity; `encoder=auto` compares
            its candidates by their mean out-of-fold score and delivers the chosen one's fold
            networks. With a hundred validation entities one split's score is close to a coin toss
            and one network's test score varies by a few points from seed to seed. Costs `folds`
            trainings (per candidate with auto), seconds each on a few hundred entities. Not with
            data.streaming or several devices. 0: never.
        folds: the folds of that cross-validation, and of the aggregates part's out-of-fold outputs
            (combine), at any size.
    """

    below: int = option(2000, ge=0)
    folds: int = option(5, ge=2)


COMBINE_MODES = ("auto", "aggregates", "none")


@dataclass
class CombineSection:
    """The model `train` delivers: the network alone, or stacked with LightGBM over per-entity aggregates.

    Attributes:
        mode: aggregates: the network's outputs and LightGBM's over `downstream.AggregateFeatures`
            are stacked by two non-negative weights and a bias, fitted on the validation entities
            (below cv.below: on every train + valid entity's out-of-fold outputs; eventseq.combined): on small data the aggregates carry it, on large data the network,
            and predict returns the stack; metrics.json reports each part. none: the network alone.
            auto: aggregates, except with data.streaming (no in-memory table to aggregate), or when
            the validation part is too small to fit the stack (fewer than 10 entities, one class),
            where it is the network alone and metrics.json says why.
        max_categories: count and fraction columns for at most this many most frequent values of
            each categorical feature.
    """

    mode: str = option("auto", choices=COMBINE_MODES)
    max_categories: int = option(50, ge=0)


@dataclass
class PretrainAutoSection(AutoSection):
    """`pretrain encoder=auto`: the encoders tried, and how the kept one is chosen.

    Attributes:
        target: a label to choose by: each candidate's embeddings are scored by a cross-validated
            logistic-regression probe (ridge for a numeric target; `downstream.evaluate` with
            models=[logreg]) on the entities that have this label. None = label-free: the
            method's own validation metric (its early-stopping monitor: CoLES's recall@k, a
            loss for most others) on the held-out entities, the same for every candidate.
        labels: Parquet/CSV with the id column and `target`; None = `target` is a target column
            of the prepared data.
        folds: cross-validation folds of the probe.
    """

    target: str | None = None
    labels: str | None = None
    folds: int = option(3, ge=2)


@dataclass
class TrainConfig:
    """A supervised training run.

    Attributes:
        output: run directory (checkpoints, logs, model, metrics, curves).
        seed: global seed; the same seed and data give the same result.
        resume: continue from output/checkpoints/last.ckpt if it exists.
        init_from: a saved model (e.g. a CoLES run's model/) whose encoder initialises this one
            (fine-tuning); combine with optimizer.freeze_encoder or optimizer.encoder_lr.
    """

    data: DataSection = field(default_factory=DataSection)
    model: EncoderConfig = field(default_factory=EncoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    auto: AutoSection = field(default_factory=AutoSection)
    combine: CombineSection = field(default_factory=CombineSection)
    cv: CrossValidationSection = field(default_factory=CrossValidationSection)
    output: str = "runs/train"
    seed: int = option(0, ge=0, le=2**32 - 1)
    resume: bool = False
    init_from: str | None = None

    config_groups: ClassVar[tuple[ConfigGroup, ...]] = TRAIN_GROUPS  # `encoder=gru` etc. (eventseq/configs/)


@dataclass
class PretrainSettings:
    """What every self-supervised pretraining run takes, whatever its method (see PretrainConfig).

    Attributes:
        method: the objective, a name in eventseq.objectives.methods.METHODS (coles, vicreg,
            barlow_twins, cpc, mlm, rtd, gpt, nsp, sop, tabformer, word2vec); its settings are the
            section of the same name.
        output: run directory (checkpoints, logs, model, curves).
        seed: global seed.
        resume: continue from output/checkpoints/last.ckpt if it exists.
    """

    data: DataSection = field(default_factory=lambda: DataSection(test_fraction=0.0, valid_fraction=0.1))
    model: EncoderConfig = field(default_factory=EncoderConfig)
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-3))
    trainer: TrainerSection = field(default_factory=TrainerSection)
    auto: PretrainAutoSection = field(default_factory=PretrainAutoSection)
    method: str = "coles"
    output: str = "runs/pretrain"
    seed: int = option(0, ge=0, le=2**32 - 1)
    resume: bool = False

    config_groups: ClassVar[tuple[ConfigGroup, ...]] = PRETRAIN_GROUPS  # `method=vicreg` etc. (eventseq/configs/)


# A self-supervised pretraining run (entity embeddings without labels): PretrainSettings plus one
# section per method of the registry, named like it (`vicreg.invariance_weight=10`), so that a new
# method in objectives/methods.py needs no field here.
PretrainConfig = make_dataclass("PretrainConfig", method_sections(), bases=(PretrainSettings,))
PretrainConfig.__module__ = __name__
PretrainConfig.__doc__ = """A self-supervised pretraining run (entity embeddings without labels).

    The options of PretrainSettings, plus one section per method of eventseq.objectives.methods.METHODS
    named like it: `coles`, `vicreg`, ... (`eventseq pretrain method=vicreg vicreg.invariance_weight=10`).
    """


@dataclass
class TrainResult:
    """What a run produced."""

    module: L.LightningModule
    metrics: dict[str, float]
    run_dir: Path
    model_dir: Path
    splits: dict[str, np.ndarray]  # empty with data.streaming (the split is a hash rule: splits.json)
    dataset: SequenceDataset | None  # None with data.streaming
