"""The Lightning wiring every run shares, the recommender's included: loaders, loggers, the Trainer
(early stopping, best + last checkpoints, progress), `fit_module` (resume, signals, best weights) and
`finish_run` (the saved model, metrics.json, curves.png).

The Trainer owns devices, precision, checkpointing, early stopping and logging; this module only
wires them up.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from eventseq._io import atomic_path, write_json
from eventseq.config import group_choices, resolved_yaml
from eventseq.data.dataset import SequenceDataset
from eventseq.progress import bars_drawn
from eventseq.data.sampler import LengthBucketSampler
from eventseq.devices import check_trainer_devices
from eventseq.errors import ConfigError
from eventseq.saved import load_checkpoint_state, save_model
from eventseq.training.callbacks import AtomicCheckpointIO, EpochLines, FiniteLossGuard, RandomState, RunInterrupted
from eventseq.training.config import PretrainConfig, TrainConfig, TrainerSection


logger = logging.getLogger(__name__)
# Lightning's start-up notices (devices, tips) and two warnings about its own internals would drown a
# run's output, in the API as in the CLI; warnings and errors still show
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


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


# logger name -> the package it needs beyond Lightning (checked before a run: `check_loggers`)
LOGGER_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def check_trainer(config: TrainerSection) -> None:
    """The trainer section's checks that depend on the machine: devices, strategy, precision, loggers."""
    check_trainer_devices(config.accelerator, config.devices, config.strategy, config.precision)
    check_loggers(config.loggers)


def check_loggers(names: list[str]) -> None:
    """Refuse, before any data is read, mlflow or wandb without their package (tensorboard is skipped
    when missing: it is in the default list, which must work on a bare install).

    Raises:
        ConfigError: naming the logger and the pip command that adds it.
    """
    for name in names:
        if name in ("mlflow", "wandb") and importlib.util.find_spec(LOGGER_PACKAGES[name]) is None:
            raise ConfigError(f"trainer.loggers names {name}, which is not installed: pip install {name} "
                              f"(or leave it out of trainer.loggers)")


def make_loggers(names: list[str], run_dir: Path, resuming: bool) -> list[Any]:
    """Lightning loggers by name (see TrainerSection.loggers), all writing under run_dir/logs."""
    loggers: list[Any] = []
    logs = run_dir / "logs"
    for name in dict.fromkeys(names):
        if name == "csv":
            # Lightning's CSV logger empties an existing log directory; a resumed run logs next to the
            # earlier part (logs/csv_resume_N) so that the curves keep every epoch.
            version = f"csv_resume_{len(list(logs.glob('csv_resume_*'))) + 1}" if resuming else "csv"
            loggers.append(CSVLogger(run_dir, name="logs", version=version))
        elif importlib.util.find_spec(LOGGER_PACKAGES[name]) is None:
            continue  # tensorboard, not installed (check_loggers refused the others before the run)
        elif name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(run_dir, name="logs", version="tensorboard", default_hp_metric=False))
        elif name == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            uri = os.environ.get("MLFLOW_TRACKING_URI") or (logs / "mlruns").resolve().as_uri()
            loggers.append(MLFlowLogger(experiment_name="eventseq", run_name=run_dir.name, tracking_uri=uri))
        elif name == "wandb":
            from lightning.pytorch.loggers import WandbLogger

            logs.mkdir(parents=True, exist_ok=True)
            loggers.append(WandbLogger(project="eventseq", name=run_dir.name, save_dir=str(logs)))
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
        logger=make_loggers(config.loggers, run_dir, resuming),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=bars,
        enable_model_summary=False,
        log_every_n_steps=10,
        deterministic="warn",
        default_root_dir=run_dir,
    )


def fit_module(
    module: L.LightningModule,
    train_loader: torch.utils.data.DataLoader,
    valid_loader: torch.utils.data.DataLoader,
    config: TrainConfig | PretrainConfig,
    run_dir: Path,
    monitor: str,
    mode: str,
    callbacks: Sequence[Callback] = (),
) -> L.Trainer:
    """Fit with the shared Trainer set-up (resume, checkpoints, logs) and the caller's own Lightning
    `callbacks`; load the best weights."""
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt_path = str(last) if config.resume and last.exists() else None
    if config.resume and ckpt_path is None:
        logger.warning("resume=true but %s does not exist: training from scratch", last)
    write_config(config, run_dir / "config.yaml")  # before training, so a crashed run documents itself
    trainer = build_trainer(config.trainer, run_dir, monitor, mode, resuming=ckpt_path is not None)
    trainer.callbacks.append(RandomState(getattr(train_loader, "collate_fn", None)))
    trainer.callbacks.extend(callbacks)
    for loader in (train_loader, valid_loader):
        # a generator of its own: creating an iterator draws a worker seed, and Lightning creates the first
        # epoch's before RandomState restores the global generators on resume, so it must not draw from them
        if isinstance(loader, torch.utils.data.DataLoader) and loader.generator is None:
            loader.generator = torch.Generator().manual_seed(config.seed)
    try:
        with warnings.catch_warnings():
            if ckpt_path is not None:  # the directory holds the very checkpoint this run resumes
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
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
    checkpoint = trainer.checkpoint_callback
    _log_hyperparameters(trainer, config, monitor, None if checkpoint is None else checkpoint.best_model_score)
    best = checkpoint.best_model_path if checkpoint else ""
    if best and trainer.is_global_zero:
        module.load_state_dict(load_checkpoint_state(best)["state_dict"])
    return trainer


def _log_hyperparameters(trainer: L.Trainer, config: Any, monitor: str, best_score: Any) -> None:
    """The run's config to every logger (TensorBoard's HPARAMS tab, MLflow's params, hparams.yaml beside the
    CSV), with the best monitored value for TensorBoard, which shows the two side by side."""
    from lightning.pytorch.loggers import TensorBoardLogger

    params = asdict(config)
    for run_logger in trainer.loggers:
        if isinstance(run_logger, TensorBoardLogger) and best_score is not None:
            run_logger.log_hyperparams(params, {f"best_{monitor}": float(best_score)})
        else:
            run_logger.log_hyperparams(params)


def evaluation_trainer(config: TrainerSection) -> L.Trainer:
    """A Trainer without loggers, so that evaluating the best model leaves the training log alone."""
    return L.Trainer(accelerator=config.accelerator, devices=1, precision=config.precision, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


def finish_run(module: L.LightningModule, run_dir: Path, metrics: dict[str, Any], config: Any,
               logs_dir: Path | Mapping[str, Path] | None = None) -> Path:
    """Save the model (with its metrics and config), metrics.json and curves.png of a finished run.

    curves.png (unless trainer.curves is off) is drawn from `logs_dir` (default run_dir/logs), or from
    several runs' logs by name (the folds of a cross-validated run, auto's candidates), one colour each."""
    from eventseq.plots import plot_training_curves

    choices = {choice.group: choice.option for choice in group_choices(config)}
    info = {"metrics": metrics, "train_config": asdict(config), "config_groups": choices}
    model_dir = save_model(module, run_dir / "model", extra=info)
    module.saved_info = info  # as load_model sets it: inference reads the training max_len from here
    write_json(run_dir / "metrics.json", metrics)
    if not config.trainer.curves:
        return model_dir
    monitor = getattr(module, "monitor", None)  # the epoch whose weights were kept is marked on the curves
    title = f"{run_dir.name} ({getattr(module, 'kind', type(module).__name__)})"

    def csv_logs(directory: Path) -> list[Path]:
        return sorted(directory.glob("csv*/metrics.csv"))

    logs = ({name: csv_logs(directory) for name, directory in logs_dir.items()} if isinstance(logs_dir, Mapping)
            else csv_logs(logs_dir or run_dir / "logs"))
    plot_training_curves(logs, run_dir / "curves.png", monitor=monitor if isinstance(monitor, tuple) else None,
                         title=title)
    return model_dir


def write_config(config: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(resolved_yaml(config))  # every key as it ran, and the config group options chosen
