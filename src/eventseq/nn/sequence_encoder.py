"""Sequence encoders behind one interface: (x [B, T, D], lengths [B]) → hidden [B, T, H].

GRU/LSTM run on packed sequences (padding costs nothing), the CNN is a stack of dilated
residual convolutions, the Transformer uses `scaled_dot_product_attention` (causal or
bidirectional). `pool` turns hidden states into one vector per sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from eventseq.config import check_options, option
from eventseq.errors import ConfigError

SEQUENCE_ENCODERS = ("gru", "lstm", "cnn", "transformer")
AUTO_TYPE = "auto"  # not an encoder: `train` tries auto.candidates and keeps the best (training/runs.py)
POOLINGS = ("last", "mean", "max", "cls")  # one summary each; last, mean and max also combine with "+"
COMBINABLE_POOLINGS = ("last", "mean", "max")
POOLING_ALIASES = {"last_mean": "last+mean"}  # the name models saved before "+" combinations use


@dataclass
class SequenceEncoderConfig:
    """The sequence model.

    Attributes:
        type: gru, lstm, cnn or transformer.
        hidden_size: output size H.
        num_layers: stacked layers (RNN layers, conv blocks, transformer blocks).
        dropout: dropout between layers.
        causal: each position sees only the past (cnn, transformer; RNNs always are).
        kernel_size: cnn kernel width (dilations double per layer).
        num_heads: transformer attention heads.
        attention_dropout: dropout on the transformer's attention weights (`dropout` applies to
            its residual branches). Off by default: any value > 0 makes PyTorch's CPU attention
            materialise the [B, heads, T, T] weights (fwd + bwd 4x slower at T=512, d=64).
        positional: transformer positions: sinusoidal or learned (added to the inputs), rotary
            (rotating queries and keys in every block, so attention scores depend on how far apart two
            events are: RoFormer) or none.
        max_positions: longest sequence for learned positions.
        conv_kernel: transformer: width of a depthwise convolution over neighbouring events before
            the first block (causal: over the event and the ones before it), added to each event's
            vector; 0 = none. Attention alone did not find "which event came right before" on small
            data: on the quality suite's markov set (labels in the transitions, 2,000 entities, 1 min)
            the transformer sat at chance (0.25 accuracy) with sinusoidal, learned, rotary or no
            positions and at lr 1e-3, while a GRU reached 0.50 and a CNN 0.51; with conv_kernel=3 it
            reached 0.42, and 0.50 with rotary positions as well. encoder=transformer sets 3 with
            rotary positions (benchmarks/results/transformer_order.md); 0 here keeps models saved
            before it loading as they were.
        pooling: last, mean, max, cls (transformer only, not causal), or several of last, mean and
            max joined by "+", side by side (H each; last_mean is the older name of last+mean).
            last+mean+max is the default (encoder=cnn: mean+max, encoder=transformer: mean): the last state says what changed
            lately, the mean what the whole history adds up to, the max whether (and, with
            event_encoder.recency, when) something rare happened. Chosen on the quality suite
            (seeds 0-1, 0.25 min, with recency, against last_mean without it): higher on 15 of 24
            encoder x set pairs, by up to +0.38 (CNN longrange 0.50 -> 0.88 AUROC, CNN markov
            0.28 -> 0.44, CNN trend R² 0.59 -> 0.76, GRU trend 0.76 -> 0.80), lower on 9 by at most
            0.014 (benchmarks/results/quality_recency.md). For the CNN, whose last position is
            only a local window, mean+max beat last+mean+max on 7 of 8 sets (markov 0.39 -> 0.50,
            taste 0.82 -> 0.85; longrange 0.76 / 0.75), and mean alone lost longrange (0.51):
            benchmarks/results/quality_cnn_pooling.md. The transformer keeps mean: higher than
            last+mean+max on 6 of 8 sets (taste 0.79 -> 0.82; trend 0.72 -> 0.70, drift 0.55 -> 0.52):
            benchmarks/results/quality_transformer_pooling.md.
        rnn_packing: gru/lstm input: packed (padding skipped), padded, or auto = packed on GPU
            and padded on CPU, where a packed GRU measured 3x slower than running over the padding.
    """

    type: str = "gru"
    hidden_size: int = option(64, ge=1)
    num_layers: int = option(1, ge=1)
    dropout: float = option(0.0, ge=0, lt=1)
    causal: bool = False
    kernel_size: int = option(3, ge=1)
    num_heads: int = option(4, ge=1)
    attention_dropout: float = option(0.0, ge=0, lt=1)
    positional: str = option("sinusoidal", choices=("sinusoidal", "learned", "rotary", "none"))
    max_positions: int = option(2048, ge=1)
    conv_kernel: int = option(0, ge=0)
    pooling: str = "last+mean+max"
    rnn_packing: str = option("auto", choices=("auto", "packed", "padded"))

    def validate(self) -> None:
        check_options(self, "sequence_encoder.")  # types, ranges and choices declared above
        if self.type == AUTO_TYPE:
            return  # `encoder=auto`: `train` replaces it by each candidate, which is validated in turn
        if self.type not in SEQUENCE_ENCODERS:
            raise ConfigError(f"sequence_encoder.type={self.type!r}: expected one of {list(SEQUENCE_ENCODERS)}")
        pooling_parts(self.pooling)  # raises on an unknown pooling
        if self.pooling == "cls" and (self.type != "transformer" or self.causal):
            raise ConfigError("pooling=cls needs a bidirectional transformer (type=transformer, causal=false)")
        if self.type == "transformer" and self.hidden_size % self.num_heads:
            raise ConfigError(
                f"hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads}"
            )
        if self.type == "transformer" and self.positional == "rotary" and (self.hidden_size // self.num_heads) % 2:
            raise ConfigError(f"positional=rotary rotates pairs of dimensions: hidden_size / num_heads = "
                              f"{self.hidden_size // self.num_heads} must be even")


def real_events(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """[B, T] True at the real (left-aligned) events of sequences of `lengths`, False at their padding."""
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


def convolve_events(conv: nn.Conv1d, hidden: torch.Tensor, causal: bool) -> torch.Tensor:
    """`conv` over the events of hidden [B, T, H], padded so that the output keeps T steps; causal: each
    step sees itself and the steps before it only (all padding on the left)."""
    reach = (conv.kernel_size[0] - 1) * conv.dilation[0]
    left, right = (reach, 0) if causal else (reach // 2, reach - reach // 2)
    return conv(F.pad(hidden.transpose(1, 2), (left, right))).transpose(1, 2)


class RnnEncoder(nn.Module):
    """GRU or LSTM. Events are left-aligned, so an RNN's state at a real event never depends on
    the padding after it: running over the padded batch gives the same hidden states at real events
    as a packed sequence. Packing skips the padding's compute but, on CPU, its per-step batch
    bookkeeping cost more than it saved (3x slower, GRU 256, 320 views of 15–60 events), hence
    `rnn_packing=auto`: packed on GPU, padded on CPU."""

    def __init__(self, input_dim: int, config: SequenceEncoderConfig) -> None:
        super().__init__()
        cell = nn.GRU if config.type == "gru" else nn.LSTM
        self.rnn = cell(
            input_dim, config.hidden_size, num_layers=config.num_layers, batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.packing = config.rnn_packing
        self.output_dim = config.hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        width = x.shape[1]
        if self.packing == "packed" or (self.packing == "auto" and x.is_cuda):
            packed = pack_padded_sequence(x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
            output, _ = self.rnn(packed)
            hidden, _ = pad_packed_sequence(output, batch_first=True, total_length=width)
            return hidden  # [B, T, H], zero at padding
        hidden, _ = self.rnn(x)  # [B, T, H]
        return hidden * real_events(lengths, width).unsqueeze(-1)  # zero at padding, as packed


class CnnEncoder(nn.Module):
    """Dilated residual 1-D convolutions; padding is re-zeroed after every block."""

    def __init__(self, input_dim: int, config: SequenceEncoderConfig) -> None:
        super().__init__()
        self.input = nn.Linear(input_dim, config.hidden_size)
        self.causal = config.causal
        self.convs = nn.ModuleList(
            nn.Conv1d(config.hidden_size, config.hidden_size, config.kernel_size, dilation=2**layer)
            for layer in range(config.num_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(config.hidden_size) for _ in range(config.num_layers))
        self.dropout = nn.Dropout(config.dropout)
        self.output_dim = config.hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = real_events(lengths, x.shape[1]).unsqueeze(-1)  # [B, T, 1]
        hidden = self.input(x) * mask  # [B, T, H]
        for conv, norm in zip(self.convs, self.norms):
            update = convolve_events(conv, hidden, self.causal)
            hidden = norm(hidden + self.dropout(F.gelu(update))) * mask
        return hidden


def _angles(length: int, dim: int, device: torch.device) -> torch.Tensor:
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    return position * frequency  # [T, ceil(dim / 2)]


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    angles = _angles(length, dim, device)
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)[:, : dim // 2]
    return table  # [T, H]


def rotary_tables(length: int, head_dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [T, head_dim / 2] of the rotary position angles (RoFormer)."""
    angles = _angles(length, head_dim, device)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Queries or keys [B, heads, T, head_dim] with each pair of dimensions (2i, 2i+1) rotated by position's
    angle: the dot product of a rotated query and key then depends on their positions' difference only."""
    # as complex numbers even + i odd times cos + i sin: the same products as rotating each pair by hand, in
    # one kernel (half the time of slicing, stacking and interleaving); complex bfloat16 does not exist
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * torch.complex(*rotary)).flatten(-2).type_as(x)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + MLP block using scaled_dot_product_attention."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float, attention_dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.attention_norm = nn.LayerNorm(hidden_size)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.attention_out = nn.Linear(hidden_size, hidden_size)
        self.mlp_norm = nn.LayerNorm(hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, 4 * hidden_size), nn.GELU(), nn.Linear(4 * hidden_size, hidden_size)
        )
        self.dropout = dropout

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None, is_causal: bool = False,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        batch, width, hidden = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).chunk(3, dim=-1)
        # [B, heads, T, head_dim]
        q, k, v = (t.view(batch, width, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        if rotary is not None:
            q, k = rotate(q, rotary), rotate(k, rotary)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_mask, dropout_p=self.attention_dropout if self.training else 0.0,
            is_causal=is_causal,
        )
        x = x + F.dropout(self.attention_out(attended.transpose(1, 2).reshape(batch, width, hidden)),
                          self.dropout, self.training)
        return x + F.dropout(self.mlp(self.mlp_norm(x)), self.dropout, self.training)


class TransformerEncoder(nn.Module):
    """Transformer over events: causal or bidirectional, sinusoidal/learned/rotary positions, an optional
    depthwise convolution over neighbouring events (conv_kernel), optional CLS."""

    def __init__(self, input_dim: int, config: SequenceEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.input = nn.Linear(input_dim, config.hidden_size)
        if config.positional == "learned":
            self.positions = nn.Embedding(config.max_positions + 1, config.hidden_size)
        # depthwise: each channel mixes its own value over the neighbouring events
        self.local = (nn.Conv1d(config.hidden_size, config.hidden_size, config.conv_kernel, groups=config.hidden_size)
                      if config.conv_kernel else None)
        self.cls = nn.Parameter(torch.randn(config.hidden_size) * 0.02) if config.pooling == "cls" else None
        self.blocks = nn.ModuleList(
            TransformerBlock(config.hidden_size, config.num_heads, config.dropout, config.attention_dropout)
            for _ in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(config.hidden_size)
        self.output_dim = config.hidden_size

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, return_cls: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        hidden = self.input(x)  # [B, T, H]
        if self.local is not None:
            hidden = hidden * real_events(lengths, hidden.shape[1]).unsqueeze(-1)  # padding adds nothing to real events
            hidden = hidden + convolve_events(self.local, hidden, self.config.causal)
        if self.cls is not None:
            hidden = torch.cat([self.cls.expand(hidden.shape[0], 1, -1), hidden], dim=1)
            lengths = lengths + 1
        batch, width, _ = hidden.shape
        if width > self.config.max_positions and self.config.positional == "learned":
            raise ConfigError(f"sequence of {width} events exceeds max_positions={self.config.max_positions}")
        if self.config.positional == "sinusoidal":
            hidden = hidden + sinusoidal_positions(width, hidden.shape[-1], hidden.device)
        elif self.config.positional == "learned":
            hidden = hidden + self.positions(torch.arange(width, device=hidden.device))
        key_valid = real_events(lengths, width)  # [B, T]
        if self.config.causal:
            # Events are left-aligned, so every key a real query may see (j <= i) is a real event:
            # the causal mask alone is exact there and needs no [B, 1, T, T] tensor.
            attention_mask, is_causal = None, True
        else:
            attention_mask, is_causal = key_valid[:, None, None, :], False  # [B, 1, 1, T]
        rotary = (rotary_tables(width, hidden.shape[-1] // self.config.num_heads, hidden.device)
                  if self.config.positional == "rotary" else None)
        for block in self.blocks:
            hidden = block(hidden, attention_mask, is_causal, rotary)
        hidden = self.final_norm(hidden) * key_valid.unsqueeze(-1)
        if self.cls is not None:
            if return_cls:
                return hidden[:, 1:], hidden[:, 0]
            return hidden[:, 1:]
        return hidden


def build_sequence_encoder(input_dim: int, config: SequenceEncoderConfig) -> nn.Module:
    """The sequence encoder named by `config.type`."""
    config.validate()
    if config.type == AUTO_TYPE:
        raise ConfigError("sequence_encoder.type=auto (encoder=auto) is chosen by `train` from auto.candidates; "
                          "to build an encoder, name one of " + ", ".join(SEQUENCE_ENCODERS))
    if config.type in ("gru", "lstm"):
        return RnnEncoder(input_dim, config)
    if config.type == "cnn":
        return CnnEncoder(input_dim, config)
    return TransformerEncoder(input_dim, config)


def pooling_parts(method: str) -> list[str]:
    """The summaries a pooling concatenates: "last+mean+max" → [last, mean, max]; "max" → [max]."""
    parts = POOLING_ALIASES.get(method, method).split("+")
    expected = (f"expected one of {list(POOLINGS)} or a '+'-joined combination of {list(COMBINABLE_POOLINGS)} "
                f"(e.g. last+mean+max)")
    if len(parts) == 1 and parts[0] not in POOLINGS:
        raise ConfigError(f"sequence_encoder.pooling={method!r}: {expected}")
    if len(parts) > 1:
        wrong = [part for part in parts if part not in COMBINABLE_POOLINGS]
        if wrong or len(set(parts)) != len(parts):
            problem = f"'{wrong[0]}' does not combine" if wrong else "a summary is named twice"
            raise ConfigError(f"sequence_encoder.pooling={method!r}: {problem}; {expected}")
    return parts


def pooled_dim(hidden_size: int, method: str) -> int:
    """Width of `pool`'s output for hidden states of `hidden_size`: H per summary."""
    return hidden_size * len(pooling_parts(method))


def pool(hidden: torch.Tensor, lengths: torch.Tensor, method: str) -> torch.Tensor:
    """[B, T, H] hidden states → [B, H] (last valid step, masked mean or masked max), or [B, kH]
    for a combination of k of them ("last+mean+max": the three side by side, in that order)."""
    parts = pooling_parts(method)
    if len(parts) > 1:
        return torch.cat([pool(hidden, lengths, part) for part in parts], dim=-1)
    method = parts[0]
    mask = real_events(lengths, hidden.shape[1]).unsqueeze(-1)  # [B, T, 1]
    if method == "last":
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), (lengths - 1).clamp(min=0)]
    if method == "mean":
        return (hidden * mask).sum(dim=1) / lengths.clamp(min=1).unsqueeze(-1).to(hidden.dtype)
    if method == "max":
        return hidden.masked_fill(~mask, float("-inf")).max(dim=1).values
    raise ConfigError(f"pooling={method!r}: a transformer's cls pooling comes from the encoder, not from pool()")
