"""NSP and SOP: next-sequence and sequence-order prediction on pairs of sub-sequences (BERT, ALBERT).

Each entity's sequence is cut at a random point (`data.augment.PairCollate`). SOP asks whether the
two parts are in their original order or swapped; NSP whether the second part continues the first
or comes from another entity. Both parts go through the same encoder; a small MLP over
[e1, e2, e1 * e2, |e1 - e2|] gives the logit. The encoder's pooled output is the entity embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from eventseq.config import option
from eventseq.data.augment import PairCollate
from eventseq.data.batch import Batch
from eventseq.data.dataset import SequenceDataset
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError
from eventseq.nn.encoder import Encoder


@dataclass
class PairTaskConfig:
    """The NSP / SOP objective (method=nsp or method=sop).

    Attributes:
        head_dim: hidden size of the pair classifier.
    """

    head_dim: int = option(64, ge=1)


class PairTaskObjective(nn.Module):
    """Binary classification of (first part, second part) pairs."""

    monitor = ("val_accuracy", "max")

    def __init__(self, schema: Schema, encoder: Encoder, config: PairTaskConfig, task: str = "sop") -> None:
        super().__init__()
        if task not in ("nsp", "sop"):
            raise ConfigError(f"pair task {task!r}: expected nsp or sop")
        if config.head_dim < 1:
            raise ConfigError(f"{task}.head_dim={config.head_dim}: must be >= 1")
        self.config = config
        self.task = task
        dim = encoder.embedding_dim
        self.classifier = nn.Sequential(nn.Linear(4 * dim, config.head_dim), nn.ReLU(), nn.Linear(config.head_dim, 1))

    def collate(self, dataset: SequenceDataset, train: bool, seed: int) -> PairCollate:
        return PairCollate(dataset, self.task, fixed_seed=None if train else seed)

    def losses(self, encoder: Encoder, batch: Batch) -> dict[str, torch.Tensor]:
        embeddings = encoder.embed(batch)  # [2N, H]: left members, then right members
        half = len(embeddings) // 2
        left, right = embeddings[:half], embeddings[half:]
        features = torch.cat([left, right, left * right, (left - right).abs()], dim=1)
        logits = self.classifier(features).squeeze(1)  # [N]
        valid = batch.extra["pair_valid"]
        labels = batch.extra["pair_label"]
        if not bool(valid.any()):  # e.g. every entity of the batch has a single event
            return {"loss": logits.sum() * 0.0, "count": valid.sum()}
        loss = F.binary_cross_entropy_with_logits(logits[valid], labels[valid])
        accuracy = ((logits[valid] > 0).float() == labels[valid]).float().mean()
        return {"loss": loss, "accuracy": accuracy, "count": valid.sum()}
