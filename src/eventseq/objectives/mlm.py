"""MLM: masked event modelling (BERT's masked-token objective applied to events).

A share `mask_rate` of the real events is chosen; of those, 80% have their event vector replaced
by a learned [MASK] vector, 10% by the vector of a random event of the batch and 10% stay as they
are (BERT's recipe, so the encoder cannot tell which unmasked events are targets). A bidirectional
encoder reads the corrupted sequence and heads predict every field of each chosen event: a
softmax per categorical field, regression of the standardised log value per numeric field.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from eventseq.config import check_options, option
from eventseq.data.batch import Batch
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError
from eventseq.nn.encoder import Encoder
from eventseq.objectives.heads import FieldHeads, random_real_events, require_bidirectional, select_events


@dataclass
class MlmConfig:
    """The masked-event objective.

    Attributes:
        mask_rate: share of real events chosen as prediction targets.
        random_share: share of the chosen events replaced by a random event of the batch.
        keep_share: share of the chosen events left unchanged (the rest get the [MASK] vector).
        numeric_weight: weight of the numeric fields' MSE.
    """

    mask_rate: float = option(0.15, gt=0, lt=1)
    random_share: float = option(0.1, ge=0, le=1)
    keep_share: float = option(0.1, ge=0, le=1)
    numeric_weight: float = option(1.0, ge=0)

    def validate(self) -> None:
        check_options(self, "mlm.")
        if self.random_share + self.keep_share > 1:
            raise ConfigError(f"mlm.random_share={self.random_share}, keep_share={self.keep_share}: "
                              f"need shares >= 0 summing to <= 1")


def corrupt(events: torch.Tensor, mask: torch.Tensor, selected: torch.Tensor, mask_vector: torch.Tensor,
            random_share: float, keep_share: float) -> torch.Tensor:
    """BERT corruption of the `selected` event vectors: [MASK] / random event / unchanged.

    Args:
        events: [B, T, D] event vectors; mask: [B, T] real events; selected: [B, T] targets.
    """
    draw = torch.rand(selected.shape, device=events.device)
    use_random = selected & (draw < random_share)
    use_mask = selected & (draw >= random_share + keep_share)
    corrupted = torch.where(use_mask.unsqueeze(-1), mask_vector.to(events.dtype), events)
    if bool(use_random.any()):
        rows, positions = random_real_events(mask, int(use_random.sum()))
        corrupted = corrupted.clone()
        corrupted[use_random] = events[rows, positions]
    return corrupted


class MlmObjective(nn.Module):
    """Predict the fields of masked events from both sides."""

    monitor = ("val_loss", "min")

    def __init__(self, schema: Schema, encoder: Encoder, config: MlmConfig) -> None:
        super().__init__()
        config.validate()
        require_bidirectional("mlm", encoder)
        self.config = config
        self.mask_vector = nn.Parameter(torch.randn(encoder.event_encoder.output_dim) * 0.02)
        self.heads = FieldHeads(schema, encoder.output_dim)


    def losses(self, encoder: Encoder, batch: Batch) -> dict[str, torch.Tensor]:
        config = self.config
        mask = batch.mask
        events = encoder.event_encoder(batch)  # [B, T, D]
        selected = select_events(mask, config.mask_rate)
        corrupted = corrupt(events, mask, selected, self.mask_vector, config.random_share, config.keep_share)
        hidden = encoder.sequence_encoder(corrupted, batch.lengths)  # [B, T, H]
        rows, positions = torch.nonzero(selected, as_tuple=True)
        losses = self.heads.losses(self.heads(hidden[rows, positions]), batch, rows, positions, config.numeric_weight)
        return losses | {"count": torch.tensor(len(rows))}
