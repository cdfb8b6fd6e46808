"""RTD: replaced-event detection (ELECTRA's replaced-token detection, with random replacement).

A share `replace_rate` of the real events gets all its fields (categoricals and numerics, not its
time) copied from a random event of the batch; the encoder reads the altered sequences and a linear
head tells, at every real event, whether it was replaced. A replacement identical to the original
in every field counts as original, as in ELECTRA. Cheaper than MLM (no softmax over vocabularies)
and every event gives a training signal, not only the chosen 15%.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from eventseq.config import option
from eventseq.data.batch import Batch
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError
from eventseq.nn.encoder import Encoder
from eventseq.objectives.heads import random_real_events, select_events


@dataclass
class RtdConfig:
    """The replaced-event detection objective.

    Attributes:
        replace_rate: share of real events replaced by a random event of the batch.
    """

    replace_rate: float = option(0.15, gt=0, lt=1)


def replace_events(batch: Batch, selected: torch.Tensor) -> tuple[Batch, torch.Tensor]:
    """Copy every feature of a random real event of the batch into the `selected` events.

    Returns:
        (the altered batch, [B, T] bool: the event differs from the original in some field).
    """
    rows, positions = random_real_events(batch.mask, int(selected.sum()))
    features, changed = {}, torch.zeros_like(selected)
    for name, values in batch.features.items():
        altered = values.clone()
        altered[selected] = values[rows, positions]
        changed |= altered != values
        features[name] = altered
    return replace(batch, features=features), changed


class RtdObjective(nn.Module):
    """Binary 'replaced?' classifier at every real event."""

    monitor = ("val_loss", "min")

    def __init__(self, schema: Schema, encoder: Encoder, config: RtdConfig) -> None:
        super().__init__()
        if not 0 < config.replace_rate < 1:
            raise ConfigError(f"rtd.replace_rate={config.replace_rate}: must be in (0, 1)")
        self.config = config
        self.detector = nn.Linear(encoder.output_dim, 1)


    def losses(self, encoder: Encoder, batch: Batch) -> dict[str, torch.Tensor]:
        altered, changed = replace_events(batch, select_events(batch.mask, self.config.replace_rate))
        hidden = encoder(altered)  # [B, T, H]
        mask = batch.mask
        logits = self.detector(hidden).squeeze(-1)[mask]  # [E]
        labels = changed[mask].float()
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).float() == labels).float().mean()
        return {"loss": loss, "accuracy": accuracy, "replaced_share": labels.mean(), "count": mask.sum()}
