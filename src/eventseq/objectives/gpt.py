"""GPT-style causal pretraining = next-event prediction, the local supervised task.

A causal encoder reads events 0..t; from h_t the heads predict every field of event t+1 (a
softmax per categorical field, a value per numeric field) and the time until it (log1p seconds,
L1). Trained as a self-supervised objective (`eventseq pretrain method=gpt`) its encoder gives entity
embeddings; used as a model it predicts the next event (`next_event_predictions`), scored with the
same targets and metrics as the classical baselines in `eventseq.baselines`.
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
from eventseq.objectives.heads import FieldHeads, require_causal


@dataclass
class GptConfig:
    """The next-event objective.

    Attributes:
        numeric_weight: weight of the numeric fields' MSE (standardised log values).
        time_weight: weight of the time-to-next-event L1 loss (log1p seconds); 0 = do not predict time.
    """

    numeric_weight: float = option(1.0, ge=0)
    time_weight: float = option(1.0, ge=0)


def log_gaps(event_time: torch.Tensor) -> torch.Tensor:
    """log1p(seconds from event t to event t+1) at t: [B, T - 1]."""
    return torch.log1p((event_time[:, 1:] - event_time[:, :-1]).clamp(min=0).float())


class GptObjective(nn.Module):
    """From h_t, predict the fields of event t+1 and the gap to it."""

    causal = True  # needs a causal encoder: event_encoder.recency defaults to off for it

    def __init__(self, schema: Schema, encoder: Encoder, config: GptConfig) -> None:
        super().__init__()
        require_causal("gpt", encoder)
        if config.numeric_weight < 0 or config.time_weight < 0:
            raise ConfigError("gpt.numeric_weight and gpt.time_weight must be >= 0")
        self.config = config
        self.heads = FieldHeads(schema, encoder.output_dim)
        self.time_head = nn.Linear(encoder.output_dim, 1)
        # log1p gaps are ~11 for a day: the bias starts at the first training batch's mean gap rather
        # than 0, or the L1 time term dominates the loss for hundreds of steps
        self.register_buffer("time_bias_set", torch.tensor(False))

    @property
    def monitor(self) -> tuple[str, str]:
        return "val_loss", "min"


    def losses(self, encoder: Encoder, batch: Batch) -> dict[str, torch.Tensor]:
        hidden = encoder(batch)  # [B, T, H]
        # contexts t with a next event: t + 1 < length
        rows, context = torch.nonzero(batch.mask[:, 1:], as_tuple=True)
        if len(rows) == 0:  # every sequence has a single event: nothing to predict
            return {"loss": hidden.sum() * 0.0, "count": torch.tensor(0)}
        states = hidden[rows, context]  # [N, H]
        result = self.heads.losses(self.heads(states), batch, rows, context + 1, self.config.numeric_weight)
        if self.config.time_weight > 0:
            gaps = log_gaps(batch.event_time)[rows, context]
            if self.training and not bool(self.time_bias_set):
                with torch.no_grad():
                    self.time_head.bias.fill_(float(gaps.median()))
                    self.time_bias_set.fill_(True)
            predicted = self.time_head(states).squeeze(1)
            gap_error = F.l1_loss(predicted, gaps)
            result["time_mae_log"] = gap_error
            result["loss"] = result["loss"] + self.config.time_weight * gap_error
        return result | {"count": torch.tensor(len(rows))}

    @torch.no_grad()
    def predict_next(self, encoder: Encoder, batch: Batch, k: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """For every real event t of `batch`, the top-k values of each categorical field of event t+1
        ([B, T, k], best first) and the predicted seconds until it ([B, T])."""
        hidden = encoder(batch)
        topk = {name: head(hidden).topk(min(k, head.out_features), dim=-1).indices
                for name, head in self.heads.categorical.items()}
        return topk, torch.expm1(self.time_head(hidden).squeeze(-1).clamp(min=0))
