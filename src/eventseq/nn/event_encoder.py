"""EventEncoder: one vector per event from the schema's categorical and numeric fields.

What ptls calls a TrxEncoder. Categoricals go through embeddings (padding id 0 → zero vector),
numerics (plus an optional log time-delta) through a batch norm that only sees real events,
then everything is concatenated (or summed) and optionally projected. Padding positions are
zero on output.

`combine=field_transformer` (TabFormer, Padhi et al., 2021) instead makes one token per field
(each categorical embedding, each numeric scalar through its own linear map, plus a learned field
position), runs a small transformer across the fields of each event, and flattens the result;
`forward(batch, field_mask)` then replaces chosen field tokens by a learned [MASK] token, which is
what TabFormer's masked-field pretraining needs.

Text fields (eventseq.data.text) arrive as one precomputed sentence vector per distinct text of
the batch; each text field has a Linear from the encoder's size to its embedding size, applied to
those distinct vectors before they are placed at their events. They come after the numerics (and
the time delta) in the concatenation and among the field tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from eventseq.data.batch import Batch
from eventseq.data.schema import PADDING_ID, Schema
from eventseq.errors import ConfigError, did_you_mean


@dataclass
class EventEncoderConfig:
    """How events become vectors.

    Attributes:
        embedding_dims: embedding size per categorical or text field (missing fields use the default).
        default_embedding_dim: size for fields not in embedding_dims; None = min(32, 1.6·n^0.56)
            for a categorical, 32 for a text field.
        numeric_dim: project the numeric block to this size; None = numerics enter as scalars.
        time_delta: add log1p(seconds since the previous event) as a numeric input.
        combine: concat (sizes may differ), sum (all parts get default_embedding_dim) or
            field_transformer (a token of default_embedding_dim per field, a transformer across
            the fields of each event, flattened; output_dim then defaults to default_embedding_dim).
        field_heads: attention heads of the field transformer.
        output_dim: final linear projection size; None = no projection.
        dropout: dropout on the event vectors.
    """

    embedding_dims: dict[str, int] = field(default_factory=dict)
    default_embedding_dim: int | None = None
    numeric_dim: int | None = None
    time_delta: bool = True
    combine: str = "concat"
    field_heads: int = 2
    output_dim: int | None = None
    dropout: float = 0.0


TEXT_EMBEDDING_DIM = 32  # default size a text field is projected to (combine=concat)


def default_embedding_dim(num_embeddings: int) -> int:
    """A common rule of thumb (fastai): grows slowly with the vocabulary, capped at 32."""
    return int(min(32, max(2, round(1.6 * num_embeddings**0.56))))


class MaskedBatchNorm(nn.Module):
    """BatchNorm1d over real events only: padding never enters the statistics, stays zero."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(num_features)

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # values [B, T, F], mask [B, T]
        selected = values[mask]  # [N, F]
        output = torch.zeros_like(values)
        if selected.shape[0] == 0:
            return output
        if self.training and selected.shape[0] < 2:
            # one event cannot give a variance; use the running statistics for it
            self.norm.eval()
            output[mask] = self.norm(selected)
            self.norm.train()
        else:
            output[mask] = self.norm(selected)
        return output


def time_deltas(event_time: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log1p of seconds since the previous event; 0 at the first event and at padding. [B, T]"""
    delta = torch.zeros_like(event_time, dtype=torch.float32)
    delta[:, 1:] = (event_time[:, 1:] - event_time[:, :-1]).clamp(min=0).float()
    return torch.log1p(delta) * mask


class EventEncoder(nn.Module):
    """Batch → [B, T, output_dim] event vectors (zero at padding)."""

    def __init__(self, schema: Schema, config: EventEncoderConfig | None = None) -> None:
        super().__init__()
        config = config or EventEncoderConfig()
        self.schema = schema
        self.config = config
        if config.combine not in ("concat", "sum", "field_transformer"):
            raise ConfigError(f"event_encoder.combine={config.combine!r}: expected concat, sum or field_transformer")
        names = [f.name for f in (*schema.categorical, *schema.text)]
        for name in config.embedding_dims:
            if name not in names:
                raise ConfigError(
                    f"event_encoder.embedding_dims names '{name}', not a categorical or text field "
                    f"(fields: {names}){did_you_mean(name, names)}"
                )
        shared = config.combine in ("sum", "field_transformer")  # every part has the same size
        if shared and config.default_embedding_dim is None:
            raise ConfigError(f"event_encoder.combine={config.combine} needs default_embedding_dim (the shared size)")
        self.embeddings = nn.ModuleDict()
        parts_dim = 0
        for feature in schema.categorical:
            if shared:
                dim = config.default_embedding_dim
            else:
                dim = config.embedding_dims.get(
                    feature.name, config.default_embedding_dim or default_embedding_dim(feature.num_embeddings)
                )
            self.embeddings[feature.name] = nn.Embedding(feature.num_embeddings, dim, padding_idx=PADDING_ID)
            parts_dim = parts_dim + dim if config.combine == "concat" else dim
        self.numeric_names = [f.name for f in schema.numeric]
        numeric_count = len(self.numeric_names) + int(config.time_delta)
        self.numeric_norm = MaskedBatchNorm(numeric_count) if numeric_count else None
        self.numeric_projection: nn.Module | None = None
        self.field_count = len(schema.categorical) + numeric_count + len(schema.text)
        self.text_projections = nn.ModuleDict()  # text field -> Linear(encoder dim, embedding size)
        for feature in schema.text:
            dim = config.default_embedding_dim if shared else config.embedding_dims.get(
                feature.name, config.default_embedding_dim or TEXT_EMBEDDING_DIM)
            self.text_projections[feature.name] = nn.Linear(feature.dim, dim)
            if config.combine != "field_transformer":
                parts_dim = parts_dim + dim if config.combine == "concat" else dim
        if config.combine == "field_transformer":
            parts_dim = self._build_field_transformer(numeric_count)
        elif numeric_count:
            target_dim = config.default_embedding_dim if config.combine == "sum" else config.numeric_dim
            if target_dim is not None:
                self.numeric_projection = nn.Linear(numeric_count, target_dim)
                numeric_out = target_dim
            else:
                numeric_out = numeric_count
            if config.combine == "sum":
                parts_dim = parts_dim or numeric_out
            else:
                parts_dim += numeric_out
        if parts_dim == 0:
            raise ConfigError("the schema has no event features and time_delta is off: nothing to encode")
        self.dropout = nn.Dropout(config.dropout)
        output_dim = config.output_dim
        if config.combine == "field_transformer" and output_dim is None:
            output_dim = config.default_embedding_dim
        self.projection = nn.Linear(parts_dim, output_dim) if output_dim else None
        self.output_dim = output_dim or parts_dim

    def _build_field_transformer(self, numeric_count: int) -> int:
        dim = self.config.default_embedding_dim
        if dim % self.config.field_heads:
            raise ConfigError(f"event_encoder.default_embedding_dim={dim} must be divisible by "
                              f"field_heads={self.config.field_heads}")
        # numeric field i → value * weight[i] + bias[i]: one linear map per numeric field
        self.numeric_weight = nn.Parameter(torch.randn(numeric_count, dim) * 0.02)
        self.numeric_bias = nn.Parameter(torch.zeros(numeric_count, dim))
        self.field_positions = nn.Parameter(torch.randn(self.field_count, dim) * 0.02)
        self.field_mask_token = nn.Parameter(torch.randn(dim) * 0.02)
        self.field_transformer = nn.TransformerEncoderLayer(
            dim, self.config.field_heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True)
        return self.field_count * dim

    @property
    def field_names(self) -> list[str]:
        """The fields in token order (field_transformer): categoricals, numerics, the time delta, texts."""
        return [*self.embeddings.keys(), *self.numeric_names, *(["time_delta"] if self.config.time_delta else []),
                *self.text_projections.keys()]

    def forward(self, batch: Batch, field_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Event vectors [B, T, output_dim], zero at padding.

        Args:
            field_mask: [B, T, fields] bool, field tokens to replace by the [MASK] token
                (combine=field_transformer only; fields in `field_names` order).
        """
        if field_mask is not None and self.config.combine != "field_transformer":
            raise ConfigError("field masking needs event_encoder.combine=field_transformer")
        mask = batch.mask  # [B, T]
        parts = []
        for name, embedding in self.embeddings.items():
            ids = batch.features[name]
            if ids.numel() and int(ids.max()) >= embedding.num_embeddings:
                raise ConfigError(
                    f"field '{name}' has id {int(ids.max())} but the vocabulary has "
                    f"{embedding.num_embeddings} entries: data was encoded with a different schema"
                )
            parts.append(embedding(ids))  # [B, T, d]
        if self.numeric_norm is not None:
            columns = [batch.features[name].float() for name in self.numeric_names]
            if self.config.time_delta:
                columns.append(time_deltas(batch.event_time, mask))
            numeric = self.numeric_norm(torch.stack(columns, dim=-1), mask)  # [B, T, F]
            if self.config.combine == "field_transformer":
                numeric = numeric.unsqueeze(-1) * self.numeric_weight + self.numeric_bias  # [B, T, F, d]
                parts.extend(numeric.unbind(dim=2))
            elif self.numeric_projection is not None:
                numeric = self.numeric_projection(numeric)
            if self.config.combine != "field_transformer":
                parts.append(numeric)
        for name, projection in self.text_projections.items():
            if name not in batch.text_vectors:
                raise ConfigError(f"the batch has no text vectors for text field '{name}': build batches with "
                                  f"SequenceDataset.from_table(..., texts=prepared.texts)")
            # each distinct text of the batch projected once [U, d], then placed at its events [B, T, d]
            parts.append(projection(batch.text_vectors[name])[batch.features[name]])
        if self.config.combine == "field_transformer":
            events = self._fields(torch.stack(parts, dim=2), mask, field_mask)
        elif self.config.combine == "sum":
            events = torch.stack(parts, dim=0).sum(dim=0)
        else:
            events = torch.cat(parts, dim=-1)  # [B, T, parts_dim]
        events = self.dropout(events)
        if self.projection is not None:
            events = self.projection(events)
        return events * mask.unsqueeze(-1)  # padding stays zero

    def _fields(self, tokens: torch.Tensor, mask: torch.Tensor, field_mask: torch.Tensor | None) -> torch.Tensor:
        """[B, T, F, d] field tokens → [B, T, F * d] after the transformer across each event's fields."""
        if field_mask is not None:
            tokens = torch.where(field_mask.unsqueeze(-1), self.field_mask_token.to(tokens.dtype), tokens)
        tokens = tokens + self.field_positions
        batch, width, fields, dim = tokens.shape
        output = tokens.new_zeros(batch, width, fields * dim)
        output[mask] = self.field_transformer(tokens[mask]).reshape(-1, fields * dim)  # real events only
        return output


