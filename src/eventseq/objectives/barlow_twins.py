"""Barlow Twins (Zbontar et al., ICML 2021): redundancy reduction between two views.

Two views per entity → encoder → projector MLP; each projected dimension is standardised over
the batch and the cross-correlation matrix of the two views is pushed to the identity: matching
dimensions agree (diagonal 1), different dimensions carry different information (off-diagonal 0,
weighted by λ = 5e-3 as in the paper). Embeddings are taken before the projector.
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
from eventseq.objectives.heads import projection_head
from eventseq.objectives.losses import barlow_twins_loss, paired_views, recall_at_k
from eventseq.objectives.vicreg import check_two_views


@dataclass
class BarlowTwinsConfig:
    """The Barlow Twins objective.

    Attributes:
        off_diagonal_weight: λ, weight of the off-diagonal (redundancy) term.
        projector_dims: output sizes of the projector MLP's layers.
        views: how the two views are sampled (split_count must be 2).
    """

    off_diagonal_weight: float = option(5e-3, ge=0)
    projector_dims: list[int] = option(default_factory=lambda: [256, 256, 256], ge=1)
    views: ViewConfig = field(default_factory=lambda: ViewConfig(split_count=2))


class BarlowTwinsObjective(nn.Module):
    """Cross-correlation of two views' projections → identity."""

    monitor = ("val_loss", "min")

    def __init__(self, schema: Schema, encoder: Encoder, config: BarlowTwinsConfig) -> None:
        super().__init__()
        check_two_views("barlow_twins", config.views)
        if not config.projector_dims:
            raise ConfigError("barlow_twins.projector_dims must list at least one layer size")
        self.config = config
        self.projector = projection_head(encoder.embedding_dim, config.projector_dims)

    def collate(self, dataset: SequenceDataset, train: bool, seed: int) -> ViewCollate:
        return ViewCollate(dataset, self.config.views, fixed_seed=None if train else seed)

    def losses(self, encoder: Encoder, batch: Batch) -> dict[str, torch.Tensor]:
        embeddings = encoder.embed(batch)  # [2N, H]
        first, second = paired_views(self.projector(embeddings), batch.index)
        loss = barlow_twins_loss(first, second, self.config.off_diagonal_weight)
        return {"loss": loss, "recall_at_1": recall_at_k(embeddings.detach(), batch.index, 1)}
