"""Parts shared by the self-supervised objectives: projection heads and per-field event heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from eventseq.data.batch import Batch
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError
from eventseq.nn.encoder import Encoder


def projection_head(input_dim: int, dims: Sequence[int], batch_norm: bool = True) -> nn.Sequential:
    """MLP of the SSL papers (SimCLR, VICReg, Barlow Twins): Linear → BatchNorm → ReLU per hidden
    layer, a plain Linear last. `dims` are the output sizes of the layers (the last one = output).

    The batch norms always use the batch's statistics, in validation too: the head only serves the
    loss, and running statistics that lag a fast-moving encoder made validation show a collapse
    (variance term 1.94 vs 1.16 in training, same weights) that was not there."""
    layers: list[nn.Module] = []
    previous = input_dim
    for index, dim in enumerate(dims):
        layers.append(nn.Linear(previous, dim))
        if index < len(dims) - 1:
            if batch_norm:
                layers.append(nn.BatchNorm1d(dim, track_running_stats=False))
            layers.append(nn.ReLU())
        previous = dim
    return nn.Sequential(*layers)


def numeric_targets(values: torch.Tensor) -> torch.Tensor:
    """Regression targets for numeric fields: signed log1p, then standardised over the given events
    (statistics detached), so heavy-tailed amounts and small counts weigh alike. [N, F] → [N, F]"""
    values = torch.sign(values) * torch.log1p(values.abs())
    mean, std = values.mean(dim=0, keepdim=True), values.std(dim=0, keepdim=True)
    std = torch.where(torch.isfinite(std) & (std > 1e-6), std, torch.ones_like(std))
    return ((values - mean) / std).detach()


class FieldHeads(nn.Module):
    """Predicts every field of an event from a hidden vector: logits per categorical field, one
    value per numeric field. Used by MLM, GPT / next-event prediction and TabFormer."""

    def __init__(self, schema: Schema, input_dim: int) -> None:
        super().__init__()
        self.categorical = nn.ModuleDict(
            {feature.name: nn.Linear(input_dim, feature.num_embeddings) for feature in schema.categorical}
        )
        self.numeric_names = [feature.name for feature in schema.numeric]
        self.numeric = nn.Linear(input_dim, len(self.numeric_names)) if self.numeric_names else None

    def forward(self, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """hidden [N, H] → {categorical field: [N, V] logits, "numeric": [N, F] values}."""
        outputs = {name: head(hidden) for name, head in self.categorical.items()}
        if self.numeric is not None:
            outputs["numeric"] = self.numeric(hidden)
        return outputs

    def losses(self, outputs: dict[str, torch.Tensor], batch: Batch, rows: torch.Tensor,
               positions: torch.Tensor, numeric_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Cross-entropy per categorical field (+ accuracy) and MSE of the numeric fields against the
        events at (rows, positions) of `batch`; "loss" = their mean (numeric MSE times the weight)."""
        result: dict[str, torch.Tensor] = {}
        parts = []
        for name in self.categorical:
            target = batch.features[name][rows, positions]  # [N]
            logits = outputs[name]
            parts.append(F.cross_entropy(logits, target))
            result[f"{name}_loss"] = parts[-1]
            result[f"{name}_accuracy"] = (logits.argmax(dim=1) == target).float().mean()
        if self.numeric is not None:
            values = torch.stack([batch.features[name][rows, positions].float() for name in self.numeric_names], 1)
            error = F.mse_loss(outputs["numeric"], numeric_targets(values)) if len(values) > 1 else \
                outputs["numeric"].sum() * 0.0
            result["numeric_mse"] = error
            parts.append(numeric_weight * error)
        result["loss"] = torch.stack(parts).mean()
        return result


def select_events(mask: torch.Tensor, rate: float) -> torch.Tensor:
    """Each real event independently with probability `rate`; at least one per batch. [B, T] bool"""
    selected = (torch.rand(mask.shape, device=mask.device) < rate) & mask
    if not bool(selected.any()) and bool(mask.any()):
        first = torch.nonzero(mask)[0]
        selected[first[0], first[1]] = True
    return selected


def random_real_events(mask: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, positions) of `count` real events of the batch drawn uniformly with replacement."""
    real = torch.nonzero(mask)  # [E, 2]
    picked = real[torch.randint(len(real), (count,), device=mask.device)]
    return picked[:, 0], picked[:, 1]




def require_causal(method: str, encoder: Encoder) -> None:
    kind = encoder.config.sequence_encoder.type
    if not encoder.sequence_causal:
        raise ConfigError(
            f"{method} predicts the future from the past, so it needs a causal sequence encoder: gru, lstm, or "
            f"model.sequence_encoder.causal=true for a cnn/transformer (got a bidirectional {kind})"
        )
    if not encoder.causal:
        raise ConfigError(
            f"{method} predicts the future from the past, but model.event_encoder.recency=true gives every "
            f"event the time until the history's end (the future): set model.event_encoder.recency=false"
        )


def require_bidirectional(method: str, encoder: Encoder) -> None:
    if encoder.sequence_causal:
        kind = encoder.config.sequence_encoder.type
        raise ConfigError(
            f"{method} predicts hidden events from both sides, so it needs a bidirectional sequence encoder: "
            f"model.sequence_encoder.type=transformer (or cnn) with causal=false (got {kind}"
            f"{', causal' if kind not in ('gru', 'lstm') else ''})"
        )
