"""VICReg: Variance-Invariance-Covariance Regularization (Bardes, Ponce, LeCun, ICLR 2022).

Two views (sub-sequences) per entity → encoder → expander MLP. The loss keeps the two expanded
views close (invariance), every dimension's spread over the batch at least 1 (variance) and the
dimensions decorrelated (covariance), so no negatives are needed and collapse is prevented by
the variance term. Weights 25 / 25 / 1 as in the paper. Embeddings are taken before the expander.
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
from eventseq.objectives.losses import paired_views, recall_at_k, vicreg_terms


@dataclass
class VicregConfig:
    """The VICReg objective.

    Attributes:
        invariance_weight: λ, weight of the mean squared distance between the two views.
        variance_weight: μ, weight of the standard-deviation hinge.
        covariance_weight: ν, weight of the off-diagonal covariance penalty.
        expander_dims: output sizes of the expander MLP's layers (the paper: 3 x 8192 on images).
        views: how the two views are sampled (split_count must be 2).
    """

    invariance_weight: float = option(25.0, ge=0)
    variance_weight: float = option(25.0, ge=0)
    covariance_weight: float = option(1.0, ge=0)
    expander_dims: list[int] = option(default_factory=lambda: [256, 256, 256], ge=1)
    views: ViewConfig = field(default_factory=lambda: ViewConfig(split_count=2))


def check_two_views(name: str, views: ViewConfig) -> None:
    views.validate()
    if views.split_count != 2:
        raise ConfigError(f"{name}.views.split_count={views.split_count}: {name} compares exactly 2 views per entity")


class VicregObjective(nn.Module):
    """Two views per entity; invariance + variance + covariance on the expanded embeddings."""

    monitor = ("val_loss", "min")

    def __init__(self, schema: Schema, encoder: Encoder, config: VicregConfig) -> None:
        super().__init__()
        check_two_views("vicreg", config.views)
        if not config.expander_dims:
            raise ConfigError("vicreg.expander_dims must list at least one layer size")
        self.config = config
        self.expander = projection_head(encoder.embedding_dim, config.expander_dims)

    def collate(self, dataset: SequenceDataset, train: bool, seed: int) -> ViewCollate:
        return ViewCollate(dataset, self.config.views, fixed_seed=None if train else seed)

    def losses(self, encoder: Encoder, batch: Batch) -> dict[str, torch.Tensor]:
        config = self.config
        embeddings = encoder.embed(batch)  # [2N, H], two consecutive views per entity
        first, second = paired_views(self.expander(embeddings), batch.index)
        terms = vicreg_terms(first, second)
        loss = (config.invariance_weight * terms["invariance"] + config.variance_weight * terms["variance"]
                + config.covariance_weight * terms["covariance"])
        return {"loss": loss, **terms, "recall_at_1": recall_at_k(embeddings.detach(), batch.index, 1)}
