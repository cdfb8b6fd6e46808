"""Training runs: data → splits → loaders → LightningModule → Trainer → best model saved.

The Trainer owns devices, precision, checkpointing, early stopping and logging; this module only
wires them up. A run directory holds checkpoints/, logs/ (CSV, TensorBoard if installed),
model/ (the best model, safetensors), metrics.json, splits.parquet, config.yaml and curves.png.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, make_dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import polars as pl
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from eventseq._io import atomic_path, check_output, write_json, write_parquet
from eventseq.config import (
    PRETRAIN_GROUPS, TRAIN_GROUPS, ConfigGroup, check_options, group_choices, option, resolved_yaml,
)
from eventseq.data.dataset import SequenceDataset
from eventseq.devices import check_trainer_devices
from eventseq.progress import bars_drawn
from eventseq.data.store import PreparedData, load_prepared
from eventseq.data.sampler import LengthBucketSampler
from eventseq.data.shards import (
    CollateFactory, ShardedDataset, ShardIndex, StreamLoader, read_shard_schema, stream_loader,
)
from eventseq.data.splits import split_by_entity
from eventseq.errors import ConfigError, EventseqError
from eventseq.nn.encoder import EncoderConfig
from eventseq.nn.sequence_encoder import AUTO_TYPE as AUTO
from eventseq.objectives.methods import method_named, method_sections
from eventseq.objectives.selfsupervised import SelfSupervisedModule
from eventseq.objectives.supervised import MONITOR, HeadConfig, SupervisedModule, resolve_head
from eventseq.optim import OptimizerConfig
from eventseq.saved import load_checkpoint_state, save_model

logger = logging.getLogger(__name__)
# Lightning's start-up notices (devices, tips) and two warnings about its own internals would drown a
# run's output, in the API as in the CLI; warnings and errors still show
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


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




@dataclass
class AutoSection:
    """`encoder=auto`: the encoders tried and how they share the time budget.

    Attributes:
        candidates: encoder options (eventseq/configs/encoder/<name>.yaml, or a user's own) trained
            one after another on the same split, each with trainer.max_minutes / len(candidates);
            the one with the best validation metric (the early-stopping monitor) is kept. The
            event encoder and every other setting are the run's own.
    """

    candidates: list[str] = field(default_factory=lambda: ["gru", "cnn", "transformer"])


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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp name then renamed; read back with weights_only=True."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path: Any, map_location: Any = None, **kwargs: Any) -> dict[str, Any]:
        return load_checkpoint_state(path)


class TrainingDiverged(EventseqError):
    """The loss (or the monitored validation metric) became NaN or infinite."""


class EpochLines(Callback):
    """One line per epoch on stderr (where no terminal shows progress bars): the epoch, its metrics,
    its seconds and the time left at most (early stopping may end the run sooner)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.started = time.perf_counter()
        self.first_epoch = trainer.current_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        seconds = time.perf_counter() - self.epoch_started
        done = trainer.current_epoch + 1 - self.first_epoch
        left = max((trainer.max_epochs or 0) - trainer.current_epoch - 1, 0)
        mean = (time.perf_counter() - self.started) / max(done, 1)
        metrics = "  ".join(f"{name} {float(value):.4f}" for name, value in sorted(trainer.callback_metrics.items())
                            if not name.endswith("_step") and torch.as_tensor(value).numel() == 1)
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {metrics}  {seconds:.1f} s"
              f"  (at most {left * mean / 60:.1f} min left)", file=sys.stderr, flush=True)


class RunInterrupted(EventseqError):
    """A run stopped by SIGTERM or SIGINT; `exit_code` is 143 or 130, as a shell reports such a stop."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    @classmethod
    def after(cls, trainer: L.Trainer, run_dir: Path, signal_name: str, exit_code: int) -> RunInterrupted:
        last = run_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            epoch = load_checkpoint_state(last).get("epoch", 0)
            kept = (f"epochs up to {epoch} are saved in {last}: run the same command with resume=true to continue "
                    f"(the result is the same as an uninterrupted run's)")
        else:
            kept = "no epoch had finished, so nothing was saved: run the command again"
        return cls(f"stopped by {signal_name} during epoch {trainer.current_epoch}; {kept}", exit_code)


class FiniteLossGuard(Callback):
    """Stop a run at the first non-finite training loss or monitored metric, naming where and the likely causes.

    Raising leaves the checkpoints of the last finished epoch as they were (checkpoints/last.ckpt,
    best.ckpt), so nothing trained so far is lost and no NaN model is saved as the result.
    """

    def __init__(self, monitor: str, run_dir: Path) -> None:
        self.monitor = monitor
        self.run_dir = run_dir

    def _diverged(self, trainer: L.Trainer, what: str, value: float) -> TrainingDiverged:
        last = self.run_dir / "checkpoints" / "last.ckpt"
        kept = (f"the last good epoch is kept in {last} (resume=true continues from it after the fix)"
                if last.exists() else "no epoch had finished, so no checkpoint was kept")
        return TrainingDiverged(
            f"{what} became {value} at epoch {trainer.current_epoch}, step {trainer.global_step}. Likely causes: a "
            f"learning rate too high (lower optimizer.lr), a loss setting that divides by zero (a temperature or "
            f"a weight of 0), batches too small for batch statistics (raise data.batch_size), or extreme input "
            f"values (standardize or log-transform them in prepare); {kept}"
        )

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            raise self._diverged(trainer, "the training loss", float(loss.detach().float().mean()))

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        if not bool(torch.isfinite(torch.as_tensor(value)).all()):
            what = f"the validation metric {self.monitor}"
            if "loss" not in self.monitor:
                what += " (is there more than one class among the validation entities?)"
            raise self._diverged(trainer, what, float(value))


class RandomState(Callback):
    """Every random generator a run draws from, saved with each checkpoint and restored on resume.

    torch's, NumPy's and Python's global generators (dropout, masking, DataLoader worker seeds) and
    the generator of the training collate (random views and pairs: `data.augment`) are written into
    the checkpoint, and put back when training starts again, after the sanity check, so that a
    resumed run draws exactly what the uninterrupted run drew: the same seed gives the same model
    whether or not the run was killed (tests/test_training.py, after a real SIGKILL). This holds with
    data.num_workers=0 (the default); worker processes draw their own seeds each epoch.
    """

    def __init__(self, collate: Any = None) -> None:
        self.collate = collate if hasattr(collate, "generator_state") else None
        self._restore: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        numpy_state, python_state = np.random.get_state(), random.getstate()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
            "python": [python_state[0], list(python_state[1]), python_state[2]],
            "collate": None if self.collate is None else self.collate.generator_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restore = state_dict

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        state, self._restore = self._restore, None
        if state is None:
            return
        torch.set_rng_state(state["torch"])
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        if self.collate is not None and state.get("collate") is not None:
            self.collate.restore_generator(state["collate"])


def make_loader(
    dataset: SequenceDataset, batch_size: int, shuffle: bool, bucket: bool = True, seed: int = 0, num_workers: int = 0
) -> torch.utils.data.DataLoader:
    """DataLoader yielding Batches: a (length-bucketing) batch sampler + the dataset's vectorized collate."""
    if bucket or not shuffle:
        sampler = LengthBucketSampler(dataset.lengths, batch_size, shuffle=shuffle, seed=seed)
    else:
        sampler = LengthBucketSampler(dataset.lengths, batch_size, shuffle=True, pool_batches=1, seed=seed)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=dataset.collate, num_workers=num_workers
    )


def _loggers(run_dir: Path, resuming: bool) -> list[Any]:
    # Lightning's CSV logger empties an existing log directory; a resumed run logs next to the
    # earlier part (logs/csv_resume_N) so that the curves keep every epoch.
    version = "csv"
    if resuming:
        version = f"csv_resume_{len(list((run_dir / 'logs').glob('csv_resume_*'))) + 1}"
    loggers: list[Any] = [CSVLogger(run_dir, name="logs", version=version)]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run_dir, name="logs", version="tensorboard"))
    except ImportError:
        pass
    return loggers


def build_trainer(
    config: TrainerSection, run_dir: Path, monitor: str, mode: str, resuming: bool = False
) -> L.Trainer:
    """A Trainer with early stopping, best + last checkpoints, CSV/TensorBoard logs and a progress bar."""
    callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode=mode,
                        enable_version_counter=False),
        # Lightning's save_last only refreshes when the best improves; a separate every-epoch
        # checkpoint guarantees a killed run loses at most one epoch.
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                        every_n_epochs=1, enable_version_counter=False),
        EarlyStopping(monitor=monitor, mode=mode, patience=config.patience),
        FiniteLossGuard(monitor, run_dir),
    ]
    bars = config.progress_bar and bars_drawn()
    if config.progress_bar:
        # a terminal gets bars with rate and ETA; a log file (CI, a scheduler) one line per epoch, not
        # thousands of redrawn bars
        callbacks.append(TQDMProgressBar() if bars else EpochLines())
    if config.max_minutes is not None and config.max_minutes <= 0:
        raise ConfigError(f"trainer.max_minutes={config.max_minutes}: must be > 0 (or null for no limit)")
    return L.Trainer(
        max_epochs=config.max_epochs,
        max_time=None if config.max_minutes is None else {"seconds": round(config.max_minutes * 60)},
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
        num_nodes=config.num_nodes,
        # batches are dealt to ranks by LengthBucketSampler / ShardedDataset themselves
        use_distributed_sampler=False,
        precision=config.precision,
        gradient_clip_val=config.gradient_clip_val or None,
        callbacks=callbacks,
        logger=_loggers(run_dir, resuming),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=bars,
        enable_model_summary=False,
        log_every_n_steps=10,
        deterministic="warn",
        default_root_dir=run_dir,
    )


def _check_run(config: TrainConfig | PretrainConfig) -> None:
    """What is checked before any data is read: every option, and that the run directory can be written into."""
    check_options(config)
    if config.data.valid_fraction + config.data.test_fraction >= 1:
        raise ConfigError(f"data.valid_fraction={config.data.valid_fraction} + data.test_fraction="
                          f"{config.data.test_fraction} leave no training entities: their sum must be < 1")
    trainer = config.trainer
    check_trainer_devices(trainer.accelerator, trainer.devices, trainer.strategy, trainer.precision)
    check_output(config.output, "directory")


def _load_prepared(data: DataSection, seed: int) -> PreparedData:
    if not data.path:
        raise ConfigError("data.path is required: the directory written by `eventseq prepare`")
    L.seed_everything(seed, workers=True, verbose=False)
    return load_prepared(data.path)


def _shard_index(data: DataSection, seed: int, test_fraction: float) -> ShardIndex:
    """data.streaming: the shard index of data.path (footers and ids only), split by entity-id hash."""
    if not data.path:
        raise ConfigError("data.path is required: the directory written by `eventseq prepare`")
    L.seed_everything(seed, workers=True, verbose=False)
    return ShardIndex(data.path, read_shard_schema(data.path), data.valid_fraction, test_fraction, data.split_seed)


def _stream(
    index: ShardIndex,
    data: DataSection,
    part: str,
    collate: CollateFactory | None = None,
    target: list[str] | None = None,
    train: bool = False,
    seed: int = 0,
    epoch_of: Callable[[], int] | None = None,
    drop_last: bool = False,
    single_process: bool = False,
) -> StreamLoader:
    """A loader of `part` batches read shard by shard; `single_process` reads every shard here (rank 0's
    evaluation after a multi-process fit), otherwise the ranks of the run share the shards."""
    dataset = ShardedDataset(
        index, part, data.batch_size, collate, target, data.max_len, shuffle=train, bucket=data.bucket_by_length,
        drop_last=drop_last, seed=seed, num_workers=data.num_workers,
        rank=0 if single_process else None, world_size=1 if single_process else None,
    )
    return stream_loader(dataset, epoch_of)


def _write_hash_splits(index: ShardIndex, run_dir: Path) -> dict[str, np.ndarray]:
    """data.streaming: the split is a rule, not a list: write it (and the counts) to splits.json."""
    counts = {part: index.count(part) for part in ("train", "valid", "test")}
    write_json(run_dir / "splits.json", {
        "rule": "eventseq.data.shards.hash_split(ids, valid_fraction, test_fraction, split_seed)",
        "valid_fraction": index.valid_fraction, "test_fraction": index.test_fraction,
        "split_seed": index.split_seed, "entities": counts,
    })
    return {}


def _other_rank_result(module: L.LightningModule, trainer: L.Trainer, run_dir: Path, splits: dict[str, np.ndarray],
                       dataset: Any) -> TrainResult:
    """What a rank other than 0 returns after a multi-process fit (rank 0 evaluates and saves)."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return TrainResult(module.eval(), metrics, run_dir, run_dir / "model", splits, dataset)


def _write_splits(dataset: SequenceDataset, splits: dict[str, np.ndarray], run_dir: Path) -> None:
    write_parquet(
        pl.DataFrame(
            {
                dataset.schema.id_column: np.concatenate([dataset.entity_ids(splits[p]) for p in splits]),
                "part": np.concatenate([np.full(len(splits[p]), p) for p in splits]),
            }
        ).to_arrow(),
        run_dir / "splits.parquet",
    )


def fit_module(
    module: L.LightningModule,
    train_loader: torch.utils.data.DataLoader,
    valid_loader: torch.utils.data.DataLoader,
    config: TrainConfig | PretrainConfig,
    run_dir: Path,
    monitor: str,
    mode: str,
) -> L.Trainer:
    """Fit with the shared Trainer set-up (resume, checkpoints, logs); load the best weights."""
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt_path = str(last) if config.resume and last.exists() else None
    if config.resume and ckpt_path is None:
        logger.warning("resume=true but %s does not exist: training from scratch", last)
    _write_config(config, run_dir / "config.yaml")  # before training, so a crashed run documents itself
    trainer = build_trainer(config.trainer, run_dir, monitor, mode, resuming=ckpt_path is not None)
    trainer.callbacks.append(RandomState(getattr(train_loader, "collate_fn", None)))
    for loader in (train_loader, valid_loader):
        # a generator of its own: creating an iterator draws a worker seed, and Lightning creates the first
        # epoch's before RandomState restores the global generators on resume, so it must not draw from them
        if isinstance(loader, torch.utils.data.DataLoader) and loader.generator is None:
            loader.generator = torch.Generator().manual_seed(config.seed)
    try:
        trainer.fit(module, train_loader, valid_loader, ckpt_path=ckpt_path)
    except SIGTERMException:  # Lightning stops at the next batch after a SIGTERM (a scheduler's preemption)
        raise RunInterrupted.after(trainer, run_dir, "SIGTERM", 143) from None
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl+C into a graceful stop and sys.exit(1)
            raise RunInterrupted.after(trainer, run_dir, "SIGINT (Ctrl+C)", 130) from None
        raise
    if trainer.world_size > 1:
        # evaluation and saving go on in rank 0 alone: leave the process group, so that nothing
        # there (metrics, CoLES gathering, batch dealing) waits for the other ranks
        trainer.strategy.barrier()
        torch.distributed.destroy_process_group()
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best and trainer.is_global_zero:
        module.load_state_dict(load_checkpoint_state(best)["state_dict"])
    return trainer


def evaluation_trainer(config: TrainerSection) -> L.Trainer:
    """A Trainer without loggers, so that evaluating the best model leaves the training log alone."""
    return L.Trainer(accelerator=config.accelerator, devices=1, precision=config.precision, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


def finish_run(module: L.LightningModule, run_dir: Path, metrics: dict[str, Any], config: Any,
               logs_dir: Path | None = None) -> Path:
    """Save the model (with its metrics and config), metrics.json and curves.png of a finished run."""
    from eventseq.plots import plot_training_curves

    choices = {choice.group: choice.option for choice in group_choices(config)}
    info = {"metrics": metrics, "train_config": asdict(config), "config_groups": choices}
    model_dir = save_model(module, run_dir / "model", extra=info)
    module.saved_info = info  # as load_model sets it: inference reads the training max_len from here
    write_json(run_dir / "metrics.json", metrics)
    plot_training_curves(sorted((logs_dir or run_dir / "logs").glob("csv*/metrics.csv")), run_dir / "curves.png")
    return model_dir


def train(config: TrainConfig) -> TrainResult:
    """Train a supervised model as configured; save the best one under `output/model`.

    Returns:
        TrainResult with the best module, test (or validation) metrics and paths.

    Raises:
        ConfigError, DataError, FileFormatError: bad config or data, with the key/column/file named.
    """
    _check_run(config)
    if config.model.sequence_encoder.type == AUTO:
        return _train_auto(config)
    run_dir = Path(config.output)
    streaming = config.data.streaming
    if streaming:
        index = _shard_index(config.data, config.seed, config.data.test_fraction)
        schema = index.schema
        head = resolve_head(schema, config.head)
        run_dir.mkdir(parents=True, exist_ok=True)
        dataset, splits = None, _write_hash_splits(index, run_dir)
        # shuffled for the Trainer's epoch (also after resuming); `module` is bound below, before any pass
        train_loader = _stream(index, config.data, "train", target=head.targets, train=True, seed=config.seed,
                               epoch_of=lambda: module.current_epoch)
        valid_loader = _stream(index, config.data, "valid", target=head.targets)
    else:
        prepared = _load_prepared(config.data, config.seed)
        schema = prepared.schema
        head = resolve_head(schema, config.head)
        dataset = SequenceDataset.from_table(prepared.table, schema, target=head.targets, max_len=config.data.max_len,
                                             texts=prepared.texts)
        run_dir.mkdir(parents=True, exist_ok=True)
        labels = dataset.target_values()
        stratify = labels if head.task in ("binary", "multiclass") else None
        splits = split_by_entity(
            len(dataset), config.data.valid_fraction, config.data.test_fraction, stratify, config.data.split_seed
        )
        _write_splits(dataset, splits, run_dir)
        loader_args = dict(bucket=config.data.bucket_by_length, num_workers=config.data.num_workers)
        train_loader = make_loader(dataset.subset(splits["train"]), config.data.batch_size, True, seed=config.seed,
                                   **loader_args)
        valid_loader = make_loader(dataset.subset(splits["valid"]), config.data.batch_size, False, **loader_args)

    encoder_config = config.model
    pretrained = None
    if config.init_from:
        from eventseq.saved import load_model, require_family

        pretrained = load_model(config.init_from)
        require_family(pretrained, ("supervised", "self-supervised"), "train init_from=", config.init_from)
        if pretrained.schema.fingerprint() != schema.fingerprint():
            raise ConfigError(
                f"init_from={config.init_from} was trained on data prepared with a different schema "
                f"(vocabularies/transforms): prepare the data with that model's schema"
            )
        encoder_config = pretrained.encoder_config  # the architecture comes with the weights
    module = SupervisedModule(schema, encoder_config, head, config.optimizer)
    if pretrained is not None:
        module.encoder.load_state_dict(pretrained.encoder.state_dict())
    monitor, mode = MONITOR[head.task]
    trainer = fit_module(module, train_loader, valid_loader, config, run_dir, monitor, mode)
    if not trainer.is_global_zero:
        return _other_rank_result(module, trainer, run_dir, splits, dataset)

    evaluator = evaluation_trainer(config.trainer)
    if streaming:  # rank 0 evaluates every shard
        valid_loader = _stream(index, config.data, "valid", target=head.targets, single_process=True)
    metrics = {k: float(v) for k, v in evaluator.validate(module, valid_loader, verbose=False)[0].items()}
    if streaming and index.count("test"):
        test_loader = _stream(index, config.data, "test", target=head.targets, single_process=True)
        metrics.update({k: float(v) for k, v in evaluator.test(module, test_loader, verbose=False)[0].items()})
    elif not streaming and len(splits["test"]):
        test_loader = make_loader(dataset.subset(splits["test"]), config.data.batch_size, False, **loader_args)
        metrics.update({k: float(v) for k, v in evaluator.test(module, test_loader, verbose=False)[0].items()})
    metrics["epochs"] = int(trainer.current_epoch)
    model_dir = finish_run(module, run_dir, metrics, config)
    return TrainResult(module.eval(), metrics, run_dir, model_dir, splits, dataset)


def _candidate_encoder(name: str) -> EncoderConfig:
    """The model section of the encoder option `name` (configs/encoder/<name>.yaml)."""
    from eventseq.config import load_config

    return load_config(TrainConfig, overrides=[f"encoder={name}"]).model


def _train_auto(config: TrainConfig) -> TrainResult:
    """`encoder=auto`: train each of auto.candidates on the same split, keep the best on validation."""
    if config.init_from:
        raise ConfigError("encoder=auto with init_from: the architecture comes with the pretrained weights; "
                          "drop encoder=auto")

    def score(result: TrainResult) -> tuple[str, str, float]:
        monitor, mode = MONITOR[result.module.head_config.task]
        return monitor, mode, float(result.metrics[monitor])

    return _auto(config, train, score, "on the validation entities")


def _pretrain_auto(config: PretrainConfig) -> TrainResult:
    """`pretrain encoder=auto`: pretrain each of auto.candidates, keep the one a probe (or the loss) prefers."""
    from eventseq import downstream
    from eventseq.inference import embed

    auto = config.auto
    if auto.labels and not auto.target:
        raise ConfigError("auto.labels is given without auto.target: name the label column to choose by")
    if not auto.target:
        def pretext(result: TrainResult) -> tuple[str, str, float]:
            monitor, mode = result.module.monitor
            return monitor, mode, float(result.metrics[monitor])

        return _auto(config, pretrain, pretext, f"label-free: {config.method}'s own validation metric on the held-out "
                                             f"entities")

    prepared = _load_prepared(config.data, config.seed)  # before any candidate runs: a bad target fails fast
    id_column = prepared.schema.id_column
    if auto.labels:
        from eventseq._io import read_labels

        labels = read_labels(auto.labels)
        where = f"auto.labels={auto.labels}"
    else:
        labels, where = prepared.table, f"the prepared data {config.data.path}"
    missing = [column for column in (id_column, auto.target) if column not in labels.columns]
    if missing:
        raise ConfigError(f"auto.target: {where} has no column '{missing[0]}' (columns: {labels.columns[:20]})")
    labels = labels.select(id_column, auto.target)
    task = "auto"
    if not auto.labels and auto.target in {target.name for target in prepared.schema.targets}:
        task = downstream.prepared_task(prepared.schema, auto.target)

    def probe(result: TrainResult) -> tuple[str, str, float]:
        embeddings = embed(result.module, config.data.path, progress=False)
        table = downstream.evaluate(embeddings, labels, id_column, auto.target, models=["logreg"],
                                    folds=auto.folds, seed=config.seed, task=task)
        metric = str(table["metric"][0])
        return f"probe_{metric}", "min" if metric == "rmse" else "max", float(table["mean"][0])

    return _auto(config, pretrain, probe,
                 f"a {auto.folds}-fold logistic-regression probe of '{auto.target}' on the embeddings")


def _auto(config: TrainConfig | PretrainConfig, run: Callable[[Any], TrainResult],
          score: Callable[[TrainResult], tuple[str, str, float]], criterion: str) -> TrainResult:
    """Run `config` once per auto.candidates encoder, keep the best by `score` (name, mode, value).

    Every candidate runs in output/auto/<name>/ with an equal share of trainer.max_minutes; the
    chosen one's model, metrics and curves become the run's own, and metrics.json says what was
    tried (each candidate's score, epochs and seconds), by which criterion, and which was kept.
    """
    candidates = list(config.auto.candidates)
    if not candidates or AUTO in candidates:
        raise ConfigError(f"auto.candidates={candidates}: list encoder options to try, e.g. [gru, cnn, transformer]")
    if config.resume:
        raise ConfigError("encoder=auto cannot resume (each candidate is a run of its own): resume=false")
    run_dir = Path(config.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    share = None if config.trainer.max_minutes is None else config.trainer.max_minutes / len(candidates)
    results: dict[str, TrainResult] = {}
    tried: dict[str, dict[str, float]] = {}
    name_of_score = mode = ""
    for name in candidates:
        candidate = copy.deepcopy(config)
        candidate.model = EncoderConfig(event_encoder=copy.deepcopy(config.model.event_encoder),
                                        sequence_encoder=_candidate_encoder(name).sequence_encoder)
        candidate.output = str(run_dir / "auto" / name)
        candidate.trainer.max_minutes = share
        started = time.perf_counter()
        result = run(candidate)
        name_of_score, mode, value = score(result)
        tried[name] = {name_of_score: value, "epochs": float(result.metrics["epochs"]),
                       "seconds": round(time.perf_counter() - started, 1)}
        results[name] = result
        shutil.rmtree(Path(candidate.output) / "checkpoints", ignore_errors=True)  # the model/ is kept
        logger.info("auto: %s reached %s=%.4f", name, name_of_score, value)
    pick = max if mode == "max" else min
    chosen = pick(candidates, key=lambda name: tried[name][name_of_score])
    best = results[chosen]
    reason = (f"best {name_of_score} ({'highest' if mode == 'max' else 'lowest'}; {criterion}): "
              + ", ".join(f"{name} {tried[name][name_of_score]:.4f}" for name in candidates))
    logger.info("auto: chose %s (%s)", chosen, reason)
    metrics: dict[str, Any] = dict(best.metrics)
    metrics["auto_choice"] = chosen
    metrics["auto_reason"] = reason
    metrics["auto_candidates"] = tried
    chosen_config = copy.deepcopy(config)
    chosen_config.model = best.module.encoder_config
    for split_file in ("splits.parquet", "splits.json"):  # in memory / data.streaming
        if (best.run_dir / split_file).exists():
            shutil.copyfile(best.run_dir / split_file, run_dir / split_file)
    _write_config(config, run_dir / "config.yaml")
    model_dir = finish_run(best.module, run_dir, metrics, chosen_config, logs_dir=best.run_dir / "logs")
    return TrainResult(best.module, metrics, run_dir, model_dir, best.splits, best.dataset)


def pretrain(config: PretrainConfig) -> TrainResult:
    """Self-supervised pretraining with `config.method`; saves the model under `output/model`.

    The model embeds entities with `eventseq embed`; its encoder initialises supervised models
    through `TrainConfig.init_from`.
    """
    spec = method_named(config.method)  # an unknown method fails before the data is read
    _check_run(config)
    config.optimizer.refuse_encoder_options("pretraining (which trains the encoder itself)",
                                            "use it with `eventseq train init_from=<this model>`")
    if spec.batch_statistics and config.data.batch_size < 2:
        raise ConfigError(f"method={config.method} standardizes each batch (its loss needs a variance over "
                          f"entities): data.batch_size={config.data.batch_size} must be >= 2")
    if config.model.sequence_encoder.type == AUTO:
        return _pretrain_auto(config)
    run_dir = Path(config.output)
    if config.data.streaming:
        return _pretrain_streaming(config, run_dir)
    prepared = _load_prepared(config.data, config.seed)
    schema = prepared.schema
    dataset = SequenceDataset.from_table(prepared.table, schema, max_len=config.data.max_len, texts=prepared.texts)
    run_dir.mkdir(parents=True, exist_ok=True)
    splits = split_by_entity(len(dataset), config.data.valid_fraction, 0.0, None, config.data.split_seed)
    _write_splits(dataset, splits, run_dir)
    module = SelfSupervisedModule(schema, config.method, config.model, getattr(config, config.method), config.optimizer)
    train_set, valid_set = dataset.subset(splits["train"]), dataset.subset(splits["valid"])
    train_loader = torch.utils.data.DataLoader(
        train_set,
        # whole batches only: batch statistics (VICReg, Barlow Twins, batch norm) need several entities
        batch_sampler=LengthBucketSampler(train_set.lengths, config.data.batch_size, shuffle=True, seed=config.seed,
                                          drop_last=len(train_set) > config.data.batch_size),
        collate_fn=module.collate(train_set, train=True, seed=config.seed),
        num_workers=config.data.num_workers,
    )
    valid_loader = torch.utils.data.DataLoader(
        valid_set,
        batch_sampler=LengthBucketSampler(valid_set.lengths, config.data.batch_size, shuffle=False),
        collate_fn=module.collate(valid_set, train=False, seed=config.seed),
        num_workers=config.data.num_workers,
    )
    monitor, mode = module.monitor
    trainer = fit_module(module, train_loader, valid_loader, config, run_dir, monitor, mode)
    if not trainer.is_global_zero:
        return _other_rank_result(module, trainer, run_dir, splits, dataset)
    metrics = {k: float(v) for k, v in evaluation_trainer(config.trainer).validate(module, valid_loader, verbose=False)[0].items()}
    metrics["epochs"] = int(trainer.current_epoch)
    model_dir = finish_run(module, run_dir, metrics, config)
    return TrainResult(module.eval(), metrics, run_dir, model_dir, splits, dataset)


def _pretrain_streaming(config: PretrainConfig, run_dir: Path) -> TrainResult:
    """`pretrain` with data.streaming: the method's own batches (views, pairs, sequences), shard by shard."""
    index = _shard_index(config.data, config.seed, 0.0)
    run_dir.mkdir(parents=True, exist_ok=True)
    splits = _write_hash_splits(index, run_dir)
    module = SelfSupervisedModule(index.schema, config.method, config.model, getattr(config, config.method),
                                  config.optimizer)
    train_collate = partial(module.collate, train=True, seed=config.seed)
    valid_collate = partial(module.collate, train=False, seed=config.seed)
    # whole batches only (batch statistics), as in memory
    train_loader = _stream(index, config.data, "train", train_collate, train=True, seed=config.seed,
                           epoch_of=lambda: module.current_epoch, drop_last=True)
    valid_loader = _stream(index, config.data, "valid", valid_collate)
    monitor, mode = module.monitor
    trainer = fit_module(module, train_loader, valid_loader, config, run_dir, monitor, mode)
    if not trainer.is_global_zero:
        return _other_rank_result(module, trainer, run_dir, splits, None)
    valid_loader = _stream(index, config.data, "valid", valid_collate, single_process=True)  # every shard
    metrics = {k: float(v) for k, v in evaluation_trainer(config.trainer).validate(module, valid_loader, verbose=False)[0].items()}
    metrics["epochs"] = int(trainer.current_epoch)
    model_dir = finish_run(module, run_dir, metrics, config)
    return TrainResult(module.eval(), metrics, run_dir, model_dir, splits, None)


def _write_config(config: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(resolved_yaml(config))  # every key as it ran, and the config group options chosen
