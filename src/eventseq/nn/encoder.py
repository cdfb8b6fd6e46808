"""Encoder = EventEncoder → SequenceEncoder (+ pooling): the backbone every objective wraps."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

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

    def resolved(self, causal: bool) -> EncoderConfig:
        """This config with event_encoder.recency=None made explicit: off when the model must be
        `causal` (it predicts the future from the past), else on. An explicit value is kept."""
        if self.event_encoder.recency is not None:
            return self
        return replace(self, event_encoder=replace(self.event_encoder, recency=not causal))

    @classmethod
    def from_saved(cls, values: dict[str, Any]) -> EncoderConfig:
        """The encoder section of a saved model's config.json. A model saved before
        event_encoder.recency existed had no such inputs: its missing key reads as false."""
        from eventseq.config import saved_config

        values = copy.deepcopy(dict(values))
        event = dict(values.get("event_encoder") or {})
        event.setdefault("recency", False)
        values["event_encoder"] = event
        return saved_config(cls, values)


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
        """True when the hidden state at an event depends only on it and earlier events: a causal
        sequence encoder, and no event input that looks at the history's end (recency)."""
        return self.sequence_causal and not self.event_encoder.recency

    @property
    def sequence_causal(self) -> bool:
        """True when the sequence encoder reads events in order only (GRU/LSTM always; cnn/transformer
        when configured causal), whatever the event inputs."""
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
