"""CPC: Contrastive Predictive Coding (van den Oord et al., 2018) over event sequences.

A causal encoder summarises the events up to t into h_t; for each step k = 1..K a linear map W_k
predicts the *event vector* z_{t+k} (the EventEncoder's output) from h_t. InfoNCE: the true
z_{t+k} must score higher (dot product) than `negatives` event vectors drawn from the whole batch.
The event encoder is trained through both sides, as in the paper's audio/text setting.
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
from eventseq.objectives.heads import random_real_events, require_causal


@dataclass
class CpcConfig:
    """The CPC objective.

    Attributes:
        steps: predict the events 1..steps ahead of every position.
        negatives: event vectors drawn from the batch to contrast each prediction with.
    """

    steps: int = option(4, ge=1)
    negatives: int = option(64, ge=1)


def future_pairs(lengths: torch.Tensor, width: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, positions t) of every context whose event t + step exists: t + step < length."""
    positions = torch.arange(width, device=lengths.device)
    valid = positions[None, :] + step < lengths[:, None]  # [B, T]
    rows, context = torch.nonzero(valid, as_tuple=True)
    return rows, context


class CpcObjective(nn.Module):
    """InfoNCE between predictions W_k h_t and the true future event vectors z_{t+k}."""

    causal = True  # needs a causal encoder: event_encoder.recency defaults to off for it

    monitor = ("val_loss", "min")

    def __init__(self, schema: Schema, encoder: Encoder, config: CpcConfig) -> None:
        super().__init__()
        require_causal("cpc", encoder)
        if config.steps < 1 or config.negatives < 1:
            raise ConfigError(f"cpc.steps={config.steps}, cpc.negatives={config.negatives}: both must be >= 1")
        self.config = config
        event_dim = encoder.event_encoder.output_dim
        self.predictors = nn.ModuleList(nn.Linear(encoder.output_dim, event_dim) for _ in range(config.steps))


    def losses(self, encoder: Encoder, batch: Batch) -> dict[str, torch.Tensor]:
        events = encoder.event_encoder(batch)  # [B, T, D]
        hidden = encoder.sequence_encoder(events, batch.lengths)  # [B, T, H]
        negative_rows, negative_positions = random_real_events(batch.mask, self.config.negatives)
        negatives = events[negative_rows, negative_positions]  # [M, D]
        total, count, correct = events.new_zeros(()), 0, events.new_zeros(())
        for step, predictor in enumerate(self.predictors, start=1):
            rows, context = future_pairs(batch.lengths, events.shape[1], step)
            if len(rows) == 0:
                continue
            prediction = predictor(hidden[rows, context])  # [N, D]
            positive = (prediction * events[rows, context + step]).sum(dim=1, keepdim=True)  # [N, 1]
            negative = prediction @ negatives.T  # [N, M]
            # a negative that is the target event itself is not a negative
            same = (negative_rows[None, :] == rows[:, None]) & (negative_positions[None, :] == (context + step)[:, None])
            logits = torch.cat([positive, negative.masked_fill(same, float("-inf"))], dim=1)
            target = torch.zeros(len(rows), dtype=torch.long, device=logits.device)
            total = total + F.cross_entropy(logits, target, reduction="sum")
            correct = correct + (logits.argmax(dim=1) == 0).float().sum()
            count += len(rows)
        if count == 0:  # every sequence has a single event: nothing to predict
            return {"loss": hidden.sum() * 0.0, "count": torch.tensor(0)}
        return {"loss": total / count, "accuracy": correct / count, "count": torch.tensor(count)}
