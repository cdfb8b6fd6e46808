"""The Lightning callbacks and checkpoint I/O of every run: atomic checkpoints, one line per epoch
without a terminal, a stop at the first non-finite loss, signals turned into a resumable stop, and
the random generators saved in each checkpoint (bit-identical resume).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from eventseq._io import atomic_path
from eventseq.errors import EventseqError
from eventseq.saved import load_checkpoint_state


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
