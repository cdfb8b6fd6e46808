"""The recommender's network: the library's EventEncoder and causal Transformer, plus small heads.

Token = item embedding + context embedding + feedback-type embedding (+ a log time-gap, + a learned
position): exactly the library's EventEncoder with `combine=sum` over the history schema's three
categoricals, followed by the library's TransformerEncoder with `causal=True`. Hidden state h_t
summarises the positives up to and including t; `start` is the state before any event.

Heads, shared by pretraining and fine-tuning (so that "full" initialisation can carry them over):
- fusion:    user ⊕ context → query vector, state + MLP(state ‖ context) (late fusion of the request context);
- projector: item embedding → item vector, embedding + MLP(embedding) (for the catalog softmax and candidates);
- feedback:  user ⊕ context ⊕ item → feedback class (click / cart / purchase), pretraining only.

Why the two residual heads and the identity input map of the transformer: at initialisation the query
of position t is then close to a mix of the embeddings of the items before t, and the item vector is
close to the item's own embedding, so cos(query, item) is a tied-embedding score from the first step
and the next-positive loss pulls co-occurring items together at once (the regime of SASRec's shared
item embeddings and of word2vec). With plain MLP heads and a random input map the two sides start
unrelated and pretraining sat on a plateau at the popularity level: on 2,000 users / 500 items,
validation next-positive NLL after 6 epochs was 5.83 with plain heads, 5.75 with residual heads, 5.44
with residual heads and the identity map (ln 500 = 6.21). Sampled softmax gains as much.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from eventseq.config import check_options, option
from eventseq.data.batch import Batch
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError
from eventseq.nn.event_encoder import EventEncoder, EventEncoderConfig
from eventseq.nn.sequence_encoder import SequenceEncoderConfig, TransformerEncoder


@dataclass
class RecModelConfig:
    """Size of the recommender network.

    Attributes:
        dim: token, hidden and output size d.
        num_layers: transformer blocks.
        num_heads: attention heads.
        dropout: dropout in the transformer and on tokens.
        max_len: longest history window (learned positions).
        time_delta: add log1p(seconds since the previous positive) to each token.
    """

    dim: int = option(64, ge=1)
    num_layers: int = option(2, ge=1)
    num_heads: int = option(2, ge=1)
    dropout: float = option(0.1, ge=0, lt=1)
    max_len: int = option(512, ge=2)
    time_delta: bool = True

    def validate(self) -> None:
        check_options(self, "model.")
        if self.dim % self.num_heads:
            raise ConfigError(f"model.dim={self.dim} must be positive and divisible by num_heads={self.num_heads}")


def _mlp(inputs: int, dim: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, dim), nn.GELU(), nn.Linear(dim, outputs))


class RecNetwork(nn.Module):
    """Backbone (event encoder + causal transformer) and heads; see the module docstring."""

    def __init__(self, schema: Schema, config: RecModelConfig) -> None:
        super().__init__()
        config.validate()
        if len(schema.categorical) != 3:
            raise ConfigError("the recommender needs the history schema of `rec prepare` (item, source, action)")
        self.config = config
        self.item_field, self.source_field, self.action_field = (f.name for f in schema.categorical)
        self.num_items = schema.categorical[0].num_embeddings
        self.num_feedback = len(schema.categorical[2].vocabulary)
        dim = config.dim
        self.event_encoder = EventEncoder(schema, EventEncoderConfig(
            combine="sum", default_embedding_dim=dim, time_delta=config.time_delta, dropout=config.dropout,
            recency=False))  # causal: a token's inputs never see the history's end
        self.sequence_encoder = TransformerEncoder(dim, SequenceEncoderConfig(
            type="transformer", hidden_size=dim, num_layers=config.num_layers, num_heads=config.num_heads,
            dropout=config.dropout, causal=True, positional="learned", max_positions=config.max_len))
        with torch.no_grad():  # tokens enter the residual stream unchanged (module docstring)
            nn.init.eye_(self.sequence_encoder.input.weight)
            self.sequence_encoder.input.bias.zero_()
        self.start = nn.Parameter(torch.zeros(dim))
        self.fusion = _mlp(2 * dim, dim, dim)
        self.projector = _mlp(dim, dim, dim)
        self.feedback = _mlp(3 * dim, dim, self.num_feedback)

    # -------------------------------------------------------------- pieces
    @property
    def item_table(self) -> nn.Embedding:
        return self.event_encoder.embeddings[self.item_field]

    @property
    def source_table(self) -> nn.Embedding:
        return self.event_encoder.embeddings[self.source_field]

    def hidden(self, batch: Batch) -> torch.Tensor:
        """[B, T, d] states; h_t includes event t."""
        return self.sequence_encoder(self.event_encoder(batch), batch.lengths)

    def previous_states(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, T, d]: the state before each event (h_{t-1}; `start` before the first)."""
        start = self.start.expand(hidden.shape[0], 1, -1)
        return torch.cat([start, hidden[:, :-1]], dim=1)

    def query(self, states: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """L2-normalised user ⊕ context vectors: [..., d] (residual over the state)."""
        return F.normalize(states + self.fusion(torch.cat([states, self.source_table(sources)], dim=-1)), dim=-1)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """L2-normalised projected item vectors: [..., d] (residual over the embedding)."""
        embedded = self.item_table(items)
        return F.normalize(embedded + self.projector(embedded), dim=-1)

    def feedback_logits(self, states: torch.Tensor, sources: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        parts = [states, self.source_table(sources), self.item_table(items)]
        return self.feedback(torch.cat(parts, dim=-1))  # [..., F]

    def states_at(self, hidden: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """hidden[rows, positions] ([N, d]); `start` where rows < 0 (no history)."""
        picked = hidden[rows.clamp(min=0), positions]
        return torch.where((rows < 0)[:, None], self.start.expand_as(picked), picked)

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """Backbone + fusion + projector weights: what "full" initialisation copies."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("feedback.")}

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """Event encoder + transformer + start state: what "backbone" initialisation copies."""
        prefixes = ("event_encoder.", "sequence_encoder.", "start")
        return {k: v for k, v in self.state_dict().items() if k.startswith(prefixes)}
