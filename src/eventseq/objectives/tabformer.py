"""TabFormer (Padhi et al., ICASSP 2021): masked-field modelling with a field transformer.

The encoder's EventEncoder must use `combine=field_transformer`: each event is a set of field tokens
mixed by a small transformer, then flattened into the event vector. Pretraining masks individual
*fields* (a share `mask_rate` of the field tokens of real events gets the [MASK] token), runs the
bidirectional sequence transformer, and predicts each masked categorical field (softmax) and masked
numeric field (standardised log value) from the hidden state of its event. Unlike MLM, the rest of
a masked event stays visible, so the model learns how the fields of one event relate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from eventseq.config import option
from eventseq.data.batch import Batch
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError
from eventseq.nn.encoder import Encoder
from eventseq.objectives.heads import FieldHeads, numeric_targets, require_bidirectional


@dataclass
class TabFormerConfig:
    """The masked-field objective.

    Attributes:
        mask_rate: share of the field tokens of real events that are masked.
        numeric_weight: weight of the numeric fields' MSE.
    """

    mask_rate: float = option(0.15, gt=0, le=1)
    numeric_weight: float = option(1.0, ge=0)


class TabFormerObjective(nn.Module):
    """Predict masked fields from the sequence (the event's other fields included)."""

    monitor = ("val_loss", "min")

    def __init__(self, schema: Schema, encoder: Encoder, config: TabFormerConfig) -> None:
        super().__init__()
        if encoder.config.event_encoder.combine != "field_transformer":
            raise ConfigError(
                "tabformer masks fields inside the field transformer: set model.event_encoder.combine="
                "field_transformer and model.event_encoder.default_embedding_dim (e.g. 16)"
            )
        require_bidirectional("tabformer", encoder)
        if not 0 < config.mask_rate < 1:
            raise ConfigError(f"tabformer.mask_rate={config.mask_rate}: must be in (0, 1)")
        self.config = config
        self.heads = FieldHeads(schema, encoder.output_dim)
        self.categorical = [feature.name for feature in schema.categorical]
        self.numeric = [feature.name for feature in schema.numeric]


    def losses(self, encoder: Encoder, batch: Batch) -> dict[str, torch.Tensor]:
        mask = batch.mask  # [B, T]
        fields = encoder.event_encoder.field_count
        field_mask = (torch.rand(*mask.shape, fields, device=mask.device) < self.config.mask_rate) & mask.unsqueeze(-1)
        predicted_fields = len(self.categorical) + len(self.numeric)  # the time delta is masked, not predicted
        if not bool(field_mask[..., :predicted_fields].any()):
            first = torch.nonzero(mask)[0]
            field_mask[first[0], first[1], 0] = True
        hidden = encoder.sequence_encoder(encoder.event_encoder(batch, field_mask=field_mask), batch.lengths)
        targeted = field_mask[..., :predicted_fields].any(dim=-1)  # [B, T] events with a masked field
        rows, positions = torch.nonzero(targeted, as_tuple=True)
        outputs = self.heads(hidden[rows, positions])
        chosen = field_mask[rows, positions]  # [N, F]
        result: dict[str, torch.Tensor] = {}
        parts = []
        for index, name in enumerate(self.categorical):
            picked = chosen[:, index]
            if bool(picked.any()):
                target = batch.features[name][rows, positions][picked]
                logits = outputs[name][picked]
                parts.append(F.cross_entropy(logits, target))
                result[f"{name}_loss"] = parts[-1]
                result[f"{name}_accuracy"] = (logits.argmax(dim=1) == target).float().mean()
        if self.numeric:
            values = torch.stack([batch.features[name][rows, positions].float() for name in self.numeric], 1)
            picked = chosen[:, len(self.categorical):predicted_fields]  # [N, numeric]
            if bool(picked.any()) and len(values) > 1:
                error = F.mse_loss(outputs["numeric"][picked], numeric_targets(values)[picked])
                result["numeric_mse"] = error
                parts.append(self.config.numeric_weight * error)
        result["loss"] = torch.stack(parts).mean() if parts else hidden.sum() * 0.0
        return result | {"count": torch.tensor(len(rows))}
