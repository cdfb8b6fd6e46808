"""CoLES: Contrastive Learning for Event Sequences (Babaev et al., SIGMOD 2022).

Each step samples `split_count` views (sub-sequences) per entity, encodes all views of the batch
in one pass, and trains the encoder so that views of the same entity are close: the margin loss
with hard-negative mining of the paper, or an InfoNCE/softmax variant with a temperature.
Validation metric: recall@k of same-entity views (k = split_count − 1).
In a multi-process (DDP) run the views of every rank are gathered before the loss, so negatives
come from the whole global batch and the loss equals the one-process loss on that batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from eventseq.config import option
from eventseq.data.augment import ViewCollate, ViewConfig
from eventseq.data.batch import Batch
from eventseq.data.dataset import SequenceDataset
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError
from eventseq.nn.encoder import Encoder
from eventseq.objectives.losses import gather_across_ranks, info_nce_loss, margin_contrastive_loss, recall_at_k


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
    margin: float = option(0.5, ge=0)
    negatives_per_anchor: int = option(5, ge=1)
    temperature: float = option(0.1, gt=0)
    projection_dim: int | None = option(None, ge=1)
    views: ViewConfig = field(default_factory=ViewConfig)


class ColesObjective(nn.Module):
    """Views of one entity embed close together, views of different entities apart."""

    def __init__(self, schema: Schema, encoder: Encoder, config: ColesConfig) -> None:
        super().__init__()
        if config.loss not in ("margin", "infonce"):
            raise ConfigError(f"coles.loss={config.loss!r}: expected margin or infonce")
        config.views.validate()
        self.config = config
        dim = config.projection_dim
        self.projection = nn.Linear(encoder.embedding_dim, dim) if dim else nn.Identity()

    def collate(self, dataset: SequenceDataset, train: bool, seed: int) -> ViewCollate:
        return ViewCollate(dataset, self.config.views, fixed_seed=None if train else seed)

    @property
    def monitor(self) -> tuple[str, str]:
        return f"val_recall_at_{self.config.views.split_count - 1}", "max"

    def losses(self, encoder: Encoder, batch: Batch) -> dict[str, torch.Tensor]:
        config = self.config
        views = self.projection(encoder.embed(batch))  # [V, D], all views in one pass
        # DDP: the views of every rank, so negatives come from the global batch (identity in one process)
        views, owners = gather_across_ranks(views, batch.index)
        if config.loss == "margin":
            loss = margin_contrastive_loss(views, owners, config.margin, config.negatives_per_anchor)
        else:
            loss = info_nce_loss(views, owners, config.temperature)
        k = config.views.split_count - 1
        return {"loss": loss, f"recall_at_{k}": recall_at_k(views.detach(), owners, k)}
