"""The optimizer and learning-rate schedule every trained module uses (one place for both).

`OptimizerConfig.configure(params, trainer, monitor)` returns what a LightningModule's
`configure_optimizers` returns: AdamW and, unless `scheduler=none`, its schedule, stepped by the
Trainer (per step for `cosine`, per validation for `plateau`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from eventseq.config import check_options, option
from eventseq.errors import ConfigError

SCHEDULERS = ("none", "cosine", "plateau")


@dataclass
class OptimizerConfig:
    """AdamW settings and the learning-rate schedule.

    Attributes:
        lr: learning rate of the head (and of the encoder unless encoder_lr is set).
        encoder_lr: a separate learning rate for the encoder (None = lr).
        weight_decay: AdamW weight decay.
        freeze_encoder: train only the head; the encoder (e.g. pretrained) stays fixed.
        scheduler: none (constant lr), cosine (linear warm-up over warmup_fraction of the planned
            steps, then cosine decay to min_lr_fraction · lr at trainer.max_epochs) or plateau
            (halve the lr when the monitored validation metric has not improved for one epoch).
        warmup_fraction: cosine: share of the planned steps spent warming up from 0.
        min_lr_fraction: cosine: the final lr as a share of lr.
    """

    lr: float = option(3e-3, gt=0)
    encoder_lr: float | None = option(None, ge=0)
    weight_decay: float = option(0.0, ge=0)
    freeze_encoder: bool = False
    scheduler: str = option("none", choices=SCHEDULERS)
    warmup_fraction: float = option(0.05, ge=0, lt=1)
    min_lr_fraction: float = option(0.05, ge=0, le=1)

    def validate(self) -> None:
        check_options(self, "optimizer.")  # the ranges and choices declared above

    def refuse_encoder_options(self, run: str, instead: str) -> None:
        """Refuse freeze_encoder / encoder_lr where `run` has no separate pretrained encoder to treat
        differently (pretraining, the recommender), rather than ignore them.

        Raises:
            ConfigError: naming the option, the run and what to use `instead`.
        """
        for key, value in (("freeze_encoder", self.freeze_encoder or None), ("encoder_lr", self.encoder_lr)):
            if value is not None:
                raise ConfigError(f"optimizer.{key}={value} does not apply to {run}: it treats the encoder of a "
                                  f"pretrained model apart from a new head; {instead}")

    def build(self, params: Any) -> torch.optim.Optimizer:
        """AdamW over `params` (tensors or param groups) with these settings.

        On CPU it uses PyTorch's fused kernel: 0.37 ms per step vs 1.9 ms for the default
        per-tensor loop on the recommender's parameters (5x). Elsewhere PyTorch's default, which
        Lightning's mixed-precision gradient clipping supports (it refuses fused optimizers).
        """
        self.validate()
        params = list(params)
        tensors = [t for group in params for t in (group["params"] if isinstance(group, dict) else [group])]
        fused = bool(tensors) and all(t.device.type == "cpu" for t in tensors)
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay, fused=fused or None)

    def configure(self, params: Any, trainer: Any = None, monitor: tuple[str, str] | None = None) -> Any:
        """`configure_optimizers`' return value: the optimizer, with its schedule unless scheduler=none.

        Args:
            params: tensors or param groups.
            trainer: the module's Trainer (its planned step count sizes the cosine schedule).
            monitor: (metric, "min"/"max") the plateau schedule watches.
        """
        optimizer = self.build(params)
        if self.scheduler == "none":
            return optimizer
        if self.scheduler == "plateau":
            if monitor is None:
                raise ConfigError("optimizer.scheduler=plateau needs a monitored validation metric")
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=monitor[1], factor=0.5, patience=1)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": plateau, "monitor": monitor[0], "interval": "epoch"}}
        total = _planned_steps(trainer)
        warmup = max(1, round(self.warmup_fraction * total)) if math.isfinite(total) and self.warmup_fraction else 0
        floor = self.min_lr_fraction

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if not math.isfinite(total):
                return 1.0  # no planned end (a time budget only): constant after warm-up
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def attached_trainer(module: Any) -> Any:
    """The module's Trainer, or None when it is used outside one (a hand-written loop, a test)."""
    try:
        return module.trainer
    except RuntimeError:
        return None


def _planned_steps(trainer: Any) -> float:
    """Optimizer steps the Trainer plans (max_epochs x batches per epoch); inf when unknown."""
    try:
        steps = float(trainer.estimated_stepping_batches)
    except Exception:  # no trainer attached, or a loader without a length
        return math.inf
    return steps if steps > 0 else math.inf
