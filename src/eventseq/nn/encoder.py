"""Encoder = EventEncoder → SequenceEncoder (+ pooling): the backbone every objective wraps."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from eventseq.data.batch import Batch
from eventseq.data.schema import Schema
from eventseq.nn.event_encoder import EventEncoder, EventEncoderConfig
from eventseq.nn.sequence_encoder import SequenceEncoderConfig, TransformerEncoder, build_sequence_encoder, pool, pooled_dim


@dataclass
class EncoderConfig:
    """The backbone: how events become vectors, and how sequences of them become hidden states."""

    event_encoder: EventEncoderConfig = field(default_factory=EventEncoderConfig)
    sequence_encoder: SequenceEncoderConfig = field(default_factory=SequenceEncoderConfig)


class Encoder(nn.Module):
    """`forward(batch) → hidden [B, T, H]` (H = `output_dim`); `embed(batch) → [B, E]` with the
    configured pooling (E = `embedding_dim`: H, or 2H for pooling=last_mean)."""

    def __init__(self, schema: Schema, config: EncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or EncoderConfig()
        self.event_encoder = EventEncoder(schema, self.config.event_encoder)
        self.sequence_encoder = build_sequence_encoder(self.event_encoder.output_dim, self.config.sequence_encoder)
        self.output_dim = self.sequence_encoder.output_dim
        self.embedding_dim = pooled_dim(self.output_dim, self.config.sequence_encoder.pooling)

    @property
    def causal(self) -> bool:
        """True when the hidden state at an event depends only on it and earlier events
        (GRU/LSTM always; cnn/transformer when configured causal)."""
        config = self.config.sequence_encoder
        return config.type in ("gru", "lstm") or config.causal

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.sequence_encoder(self.event_encoder(batch), batch.lengths)

    def embed(self, batch: Batch) -> torch.Tensor:
        method = self.config.sequence_encoder.pooling
        events = self.event_encoder(batch)  # [B, T, D]
        if method == "cls":
            assert isinstance(self.sequence_encoder, TransformerEncoder)
            _, cls = self.sequence_encoder(events, batch.lengths, return_cls=True)
            return cls
        return pool(self.sequence_encoder(events, batch.lengths), batch.lengths, method)  # [B, H]
