"""CoLES: Contrastive Learning for Event Sequences (Babaev et al., SIGMOD 2022).

Each step samples `split_count` views (sub-sequences) per entity, encodes all views of the batch
in one pass, and trains the encoder so that views of the same entity are close: the margin loss
with hard-negative mining of the paper, or an InfoNCE/softmax variant with a temperature.
Validation metric: recall@k of same-entity views (k = split_count − 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import lightning as L
import torch
from torch import nn

from eventseq.data.augment import ViewConfig
from eventseq.data.batch import Batch
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError
from eventseq.nn.encoder import Encoder, EncoderConfig
from eventseq.objectives.losses import info_nce_loss, margin_contrastive_loss, recall_at_k
from eventseq.objectives.supervised import OptimizerConfig


@dataclass
class ColesConfig:
    """The CoLES objective.

    Attributes:
        loss: margin (contrastive loss with hard negatives, as in the paper) or infonce.
        margin: margin of the negative term (margin loss).
        negatives_per_anchor: hardest negatives mined per view (margin loss).
        temperature: softmax temperature (infonce).
        projection_dim: a linear projection used only for the loss; None = loss on the embedding.
    """

    loss: str = "margin"
    margin: float = 0.5
    negatives_per_anchor: int = 5
    temperature: float = 0.1
    projection_dim: int | None = None
    views: ViewConfig = field(default_factory=ViewConfig)


class ColesModule(L.LightningModule):
    """Encoder trained so that sub-sequences of one entity embed close together."""

    kind = "coles"

    def __init__(
        self,
        schema: Schema,
        encoder_config: EncoderConfig | None = None,
        coles_config: ColesConfig | None = None,
        optimizer_config: OptimizerConfig | None = None,
    ) -> None:
        super().__init__()
        self.schema = schema
        self.encoder_config = encoder_config or EncoderConfig()
        self.coles_config = coles_config or ColesConfig()
        self.optimizer_config = optimizer_config or OptimizerConfig(lr=1e-3)
        if self.coles_config.loss not in ("margin", "infonce"):
            raise ConfigError(f"coles.loss={self.coles_config.loss!r}: expected margin or infonce")
        self.coles_config.views.validate()
        self.encoder = Encoder(schema, self.encoder_config)
        dim = self.coles_config.projection_dim
        self.projection = nn.Linear(self.encoder.output_dim, dim) if dim else nn.Identity()

    def embed(self, batch: Batch) -> torch.Tensor:
        """Entity embeddings [B, H] (before the loss projection), what `eventseq embed` writes."""
        return self.encoder.embed(batch)

    def predict_outputs(self, batch: Batch) -> torch.Tensor:
        return self.embed(batch)

    def loss(self, views: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        config = self.coles_config
        if config.loss == "margin":
            return margin_contrastive_loss(views, owners, config.margin, config.negatives_per_anchor)
        return info_nce_loss(views, owners, config.temperature)

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        loss = self.loss(self.projection(self.embed(batch)), batch.index)  # all views in one pass
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch.batch_size)
        return loss

    def validation_step(self, batch: Batch, batch_index: int) -> None:
        views = self.projection(self.embed(batch))
        k = self.coles_config.views.split_count - 1
        self.log("val_loss", self.loss(views, batch.index), on_epoch=True, prog_bar=True, batch_size=batch.batch_size)
        self.log(f"val_recall_at_{k}", recall_at_k(views, batch.index, k), on_epoch=True, prog_bar=True,
                 batch_size=batch.batch_size)

    @property
    def monitor(self) -> tuple[str, str]:
        return f"val_recall_at_{self.coles_config.views.split_count - 1}", "max"

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_config.build(self.parameters())

    def to_config(self) -> dict[str, Any]:
        return {
            "encoder": asdict(self.encoder_config),
            "coles": asdict(self.coles_config),
            "optimizer": asdict(self.optimizer_config),
        }

    @classmethod
    def from_config(cls, schema: Schema, config: dict[str, Any]) -> ColesModule:
        from omegaconf import OmegaConf

        encoder = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(EncoderConfig), config["encoder"]))
        coles = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ColesConfig), config["coles"]))
        return cls(schema, encoder, coles, OptimizerConfig(**config.get("optimizer", {})))
