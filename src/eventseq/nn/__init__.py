"""Models: EventEncoder (per-event vectors) and sequence encoders (GRU/LSTM/CNN/Transformer)."""

from eventseq.nn.encoder import Encoder, EncoderConfig
from eventseq.nn.event_encoder import EventEncoder, EventEncoderConfig, MaskedBatchNorm
from eventseq.nn.sequence_encoder import (
    CnnEncoder,
    RnnEncoder,
    SequenceEncoderConfig,
    TransformerEncoder,
    build_sequence_encoder,
    pool,
)

__all__ = [
    "Encoder", "EncoderConfig", "EventEncoder", "EventEncoderConfig", "MaskedBatchNorm",
    "CnnEncoder", "RnnEncoder", "SequenceEncoderConfig", "TransformerEncoder", "build_sequence_encoder", "pool",
]
