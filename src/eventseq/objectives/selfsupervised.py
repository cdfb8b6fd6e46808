"""Self-supervised pretraining: one LightningModule for every method, the method as a part.

`SelfSupervisedModule(schema, method, ...)` owns the backbone (`encoder`, an Encoder like every
model in eventseq) and the method's `objective`, an nn.Module from `objectives/<method>.py` with:

- `losses(encoder, batch) -> dict`: "loss" plus anything worth logging (tensors), and "count",
  the number of items (events, pairs, views) the values average over: epoch means are weighted
  by it, and a batch with nothing to score (count 0) does not enter them;
- optionally `collate(dataset, train, seed)`: how a batch is built (views or pairs); without it,
  whole sequences (`dataset.collate`);
- `monitor`: the validation metric that selects the best epoch, and "min" or "max";
- optionally `embed(encoder, batch)`: entity embeddings when pooling the encoder is not it.

So training, logging, checkpoints, `eventseq embed`, `evaluate` and fine-tuning (`init_from`) are
the same code for CoLES, VICReg, MLM... and a method file holds only what is specific to it.
`objectives/methods.py` is the list of methods, by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from typing import Any

import lightning as L
import torch

from eventseq.data.batch import Batch
from eventseq.data.dataset import SequenceDataset
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError
from eventseq.nn.encoder import Encoder, EncoderConfig
from eventseq.objectives.methods import method_named
from eventseq.optim import OptimizerConfig, attached_trainer


class SelfSupervisedModule(L.LightningModule):
    """An Encoder trained by a self-supervised objective; embeds entities like every eventseq model."""

    def __init__(
        self,
        schema: Schema,
        method: str = "coles",
        encoder_config: EncoderConfig | None = None,
        objective_config: Any = None,
        optimizer_config: OptimizerConfig | None = None,
    ) -> None:
        super().__init__()
        spec = method_named(method)
        objective_class, config_class = spec.classes()
        build_objective = partial(objective_class, **spec.arguments) if spec.arguments else objective_class
        self.schema = schema
        self.kind = method  # saved models are tagged with the method
        # gpt and cpc predict the future from the past: recency (the time to the history's end) is off there
        self.encoder_config = (encoder_config or EncoderConfig()).resolved(causal=getattr(objective_class, "causal", False))
        self.objective_config = objective_config if objective_config is not None else config_class()
        if not isinstance(self.objective_config, config_class):
            raise ConfigError(f"method {method} takes a {config_class.__name__}, got {type(self.objective_config).__name__}")
        self.optimizer_config = optimizer_config or OptimizerConfig(lr=1e-3)
        self.encoder = Encoder(schema, self.encoder_config)
        self.objective = build_objective(schema, self.encoder, self.objective_config)

    # -------------------------------------------------------------- use
    def embed(self, batch: Batch) -> torch.Tensor:
        """Entity embeddings [B, H]: what `eventseq embed` writes and downstream models read."""
        custom = getattr(self.objective, "embed", None)
        return custom(self.encoder, batch) if custom is not None else self.encoder.embed(batch)

    @property
    def embedding_dim(self) -> int:
        """Width of `embed`'s output."""
        return getattr(self.objective, "embedding_dim", self.encoder.embedding_dim)

    def predict_outputs(self, batch: Batch) -> torch.Tensor:
        return self.embed(batch)

    def collate(self, dataset: SequenceDataset, train: bool, seed: int = 0) -> Callable[[Any], Batch]:
        """The collate_fn of this method's batches (train: random; validation: fixed by `seed`)."""
        custom = getattr(self.objective, "collate", None)
        return custom(dataset, train, seed) if custom is not None else dataset.collate

    @property
    def monitor(self) -> tuple[str, str]:
        return self.objective.monitor

    # -------------------------------------------------------------- Lightning
    def _log_losses(self, losses: dict[str, torch.Tensor], prefix: str, batch: Batch) -> None:
        count = int(losses.pop("count", batch.batch_size))
        if count == 0:  # nothing scored in this batch: it must not pull the epoch means towards 0
            return
        shown = ("loss", self.monitor[0].removeprefix("val_"))
        for name, value in losses.items():
            # sync_dist: under DDP the epoch value is the mean over ranks (a no-op in one process)
            self.log(f"{prefix}_{name}", value, on_step=False, on_epoch=True, prog_bar=name in shown, batch_size=count,
                     sync_dist=True)

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        losses = self.objective.losses(self.encoder, batch)
        loss = losses["loss"]
        self._log_losses(losses, "train", batch)
        return loss

    def validation_step(self, batch: Batch, batch_index: int) -> None:
        self._log_losses(self.objective.losses(self.encoder, batch), "val", batch)

    def configure_optimizers(self) -> Any:
        return self.optimizer_config.configure(self.parameters(), attached_trainer(self), self.monitor)

    # -------------------------------------------------------------- saving
    def to_config(self) -> dict[str, Any]:
        return {"method": self.kind, "encoder": asdict(self.encoder_config),
                "objective": asdict(self.objective_config), "optimizer": asdict(self.optimizer_config)}

    @classmethod
    def from_config(cls, schema: Schema, config: dict[str, Any]) -> SelfSupervisedModule:
        from eventseq.config import saved_config

        method = config["method"]
        _, config_class = method_named(method).classes()
        return cls(schema, method, EncoderConfig.from_saved(config["encoder"]),
                   saved_config(config_class, config["objective"]), OptimizerConfig(**config.get("optimizer", {})))


__all__ = ["SelfSupervisedModule"]
