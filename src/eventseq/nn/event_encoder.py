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

Numerics quantized by `prepare` (`quantize`) can instead enter as a bucket embedding
(`numeric_encoding={amount: bins}`) or a piecewise-linear encoding (`ple`, Gorishniy et al.,
2022), and `combined=[[mcc, amount]]` adds one embedding per combination of values (a combined
event token, e.g. "grocery × amount bucket 3"); see data/tokens.py for what a bucket is.

A schema of several merged sources (data/sources.py) gets one EventEncoder per source over that
source's own fields (its own embeddings and numeric statistics), each projected to a common size,
plus a source embedding; every event takes the vector of its own source.

Text fields (eventseq.data.text) arrive as one precomputed sentence vector per distinct text of
the batch; each text field has a Linear from the encoder's size to its embedding size, applied to
those distinct vectors before they are placed at their events. They come after the numerics (and
the time delta) in the concatenation and among the field tokens.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from eventseq.config import option
from eventseq.data.batch import Batch
from eventseq.data.schema import FIRST_VALUE_ID, PADDING_ID, NumericFeature, Schema
from eventseq.data.tokens import combine_digits, field_digits, field_size, piecewise_linear
from eventseq.errors import ConfigError, did_you_mean


@dataclass
class EventEncoderConfig:
    """How events become vectors.

    Attributes:
        embedding_dims: embedding size per categorical field, text field, bucketed/ple numeric
            field or combined token (named `a+b`); missing ones use the default.
        default_embedding_dim: size for fields not in embedding_dims; None = min(32, 1.6·n^0.56)
            for a categorical, 32 for a text field.
        numeric_dim: project the numeric block to this size; None = numerics enter as scalars.
        time_delta: add log1p(seconds since the previous event) as a numeric input.
        calendar: add the time of day and the day of the week of each event (UTC), each as a sine
            and a cosine, as four numeric inputs: what an hour-of-day or weekday habit needs, which
            gaps alone do not show. On by default: on the quality suite's timing set it lifted every
            encoder from 0.61-0.74 to 0.86-0.89 AUROC (optimum 0.93; benchmarks/results/quality.md).
        recency: add where each event lies in its history: the share of the history's time span
            elapsed at it and log1p(seconds until the history's last event), two numeric inputs.
            They let any encoder tell old from recent behaviour, and say *when* something happened,
            without carrying a clock through the sequence. An event's inputs then depend on the
            history's end, so the encoder is no longer causal. None (the default) = on wherever a
            model is trained (supervised and self-supervised modules, `EncoderConfig.resolved`),
            except where it must be causal: gpt and cpc; the recommender never has it; per-event
            embeddings (level=event) refuse a model trained with it. A bare EventEncoder built
            outside a training module reads None as off. On the quality suite (seeds 0-1, 0.25
            min) it took the CNN on longrange from 0.50 to 0.88 AUROC (optimum 0.89), together
            with pooling last+mean+max (benchmarks/results/quality_recency.md).
        combine: concat (sizes may differ), sum (all parts get default_embedding_dim) or
            field_transformer (a token of default_embedding_dim per field, a transformer across
            the fields of each event, flattened; output_dim then defaults to default_embedding_dim).
        field_heads: attention heads of the field transformer.
        output_dim: final linear projection size; None = no projection.
        dropout: dropout on the event vectors.
        numeric_encoding: per numeric field: scalar (default: batch-normed value), bins (an
            embedding per quantile bucket) or ple (piecewise-linear encoding + linear map); bins and
            ple need the field quantized in prepare (`quantize`).
        combined: combined event tokens: each a list of fields (categoricals, quantized numerics)
            whose combination of values gets its own embedding.
        per_source: with several merged sources, one encoder per source (else one encoder over
            every field, the source being one categorical among them).
    """

    embedding_dims: dict[str, int] = option(default_factory=dict, ge=1)
    default_embedding_dim: int | None = option(None, ge=1)
    numeric_dim: int | None = option(None, ge=1)
    time_delta: bool = True
    calendar: bool = True
    recency: bool | None = None
    combine: str = "concat"
    field_heads: int = option(2, ge=1)
    output_dim: int | None = option(None, ge=1)
    dropout: float = option(0.0, ge=0, lt=1)
    numeric_encoding: dict[str, str] = field(default_factory=dict)
    combined: list[list[str]] = field(default_factory=list)
    per_source: bool = True


NUMERIC_ENCODINGS = ("scalar", "bins", "ple")


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


CALENDAR_FEATURES = ("day_sin", "day_cos", "week_sin", "week_cos")


def calendar_features(event_time: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Time of day and day of week of int64 epoch seconds, as sines and cosines: [B, T, 4], 0 at padding."""
    day = (event_time % 86_400).double() / 86_400  # share of the day elapsed
    week = ((event_time // 86_400 + 3) % 7).double() / 7  # 1970-01-01 was a Thursday: Monday = 0
    day, week = day * (2 * torch.pi), week * (2 * torch.pi)
    features = torch.stack([day.sin(), day.cos(), week.sin(), week.cos()], dim=-1).float()  # [B, T, 4]
    return features * mask.unsqueeze(-1)


RECENCY_FEATURES = ("elapsed_share", "time_to_end")


def recency_features(event_time: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Where each event lies in its (left-aligned) history: [B, T, 2], 0 at padding.

    elapsed_share: (t - first) / (last - first), 0 for a history of one time stamp;
    time_to_end: log1p(seconds from the event to the history's last event).
    """
    mask = torch.arange(event_time.shape[1], device=event_time.device)[None, :] < lengths[:, None]
    first = event_time[:, :1]  # [B, 1]
    last = event_time.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1))  # [B, 1]
    span = (last - first).clamp(min=1).double()
    elapsed = ((event_time - first).clamp(min=0).double() / span).clamp(max=1.0)
    to_end = torch.log1p((last - event_time).clamp(min=0).double())
    return torch.stack([elapsed, to_end], dim=-1).float() * mask.unsqueeze(-1)


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
        self.recency = bool(config.recency)  # None: the training modules resolve it (EncoderConfig.resolved)
        self.source_encoders: nn.ModuleDict | None = None
        # the source column may be gone (event BPE over it): then the tokens carry the source
        if schema.sources and config.per_source and schema.source_column in schema.feature_names:
            self._build_sources()
            return
        if config.combine not in ("concat", "sum", "field_transformer"):
            raise ConfigError(f"event_encoder.combine={config.combine!r}: expected concat, sum or field_transformer")
        token_fields = self._check_token_config(schema, config)
        names = [f.name for f in (*schema.categorical, *schema.text)] + list(token_fields)
        for name in config.embedding_dims:
            if name not in names:
                raise ConfigError(
                    f"event_encoder.embedding_dims names '{name}', not a categorical or text field, bucketed "
                    f"numeric or combined token (those: {names}){did_you_mean(name, names)}"
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
        # quantized numerics and combined tokens: [fields], a table (or, for ple, a linear map)
        self.token_fields = token_fields
        self.token_tables = nn.ModuleDict()
        for name, (fields, size) in token_fields.items():
            dim = config.default_embedding_dim if shared else config.embedding_dims.get(
                name, config.default_embedding_dim or default_embedding_dim(size + 1))
            if config.numeric_encoding.get(name) == "ple":
                self.token_tables[name] = nn.Linear(size, dim)
            else:  # id 0 = padding, bucket/combination k = k + 1
                self.token_tables[name] = nn.Embedding(size + 1, dim, padding_idx=PADDING_ID)
            parts_dim = parts_dim + dim if config.combine == "concat" else dim
        self.numeric_names = [f.name for f in schema.numeric
                              if config.numeric_encoding.get(f.name, "scalar") == "scalar"]
        numeric_count = (len(self.numeric_names) + int(config.time_delta) + len(CALENDAR_FEATURES) * config.calendar
                         + len(RECENCY_FEATURES) * self.recency)
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

    def _build_sources(self) -> None:
        schema, config = self.schema, self.config
        if config.combine == "field_transformer":
            raise ConfigError("event_encoder.combine=field_transformer works on one source: set per_source=false")
        encoders = {}
        for source, names in schema.sources.items():
            features = [feature for feature in schema.features if feature.name in names]
            own = set(names) | {"+".join(group) for group in config.combined}
            sub_config = dataclasses.replace(
                config, output_dim=None, per_source=False,
                embedding_dims={k: v for k, v in config.embedding_dims.items() if k in own},
                numeric_encoding={k: v for k, v in config.numeric_encoding.items() if k in names},
                combined=[group for group in config.combined if set(group) <= set(names)],
            )
            sub_schema = dataclasses.replace(schema, features=features, sources={}, source_column=None)
            encoders[source] = EventEncoder(sub_schema, sub_config)
        self.output_dim = config.output_dim or max(encoder.output_dim for encoder in encoders.values())
        self.source_encoders = nn.ModuleDict(encoders)
        self.source_projections = nn.ModuleDict({
            source: nn.Linear(encoder.output_dim, self.output_dim) for source, encoder in encoders.items()})
        source_feature = next(f for f in schema.categorical if f.name == schema.source_column)
        self.source_embedding = nn.Embedding(source_feature.num_embeddings, self.output_dim, padding_idx=PADDING_ID)
        self.source_ids = {source: source_feature.vocabulary.index(source) + FIRST_VALUE_ID
                           for source in encoders}

    def _forward_sources(self, batch: Batch) -> torch.Tensor:
        source_ids = batch.features[self.schema.source_column]  # [B, T]
        events = self.source_embedding(source_ids)  # [B, T, D]
        for source, encoder in self.source_encoders.items():
            own = batch.mask & (source_ids == self.source_ids[source])  # [B, T]
            if own.any():
                vectors = self.source_projections[source](encoder(batch, event_mask=own))
                events = events + vectors * own.unsqueeze(-1)
        return events * batch.mask.unsqueeze(-1)

    @staticmethod
    def _check_token_config(schema: Schema, config: EventEncoderConfig) -> dict[str, tuple[list, int]]:
        """Validate numeric_encoding and combined; returns {name: (schema fields, digit count)}."""
        by_name = {feature.name: feature for feature in schema.features}
        tokens: dict[str, tuple[list, int]] = {}
        numeric = [f.name for f in schema.numeric]
        for name, encoding in config.numeric_encoding.items():
            if name not in numeric:
                raise ConfigError(f"event_encoder.numeric_encoding names '{name}', not a numeric field "
                                  f"(numerics: {numeric}){did_you_mean(name, numeric)}")
            if encoding not in NUMERIC_ENCODINGS:
                raise ConfigError(f"event_encoder.numeric_encoding.{name}={encoding!r}: expected one of "
                                  f"{list(NUMERIC_ENCODINGS)}")
            if encoding != "scalar":
                tokens[name] = ([by_name[name]], field_size(by_name[name]))
        for group in config.combined:
            if len(group) < 2:
                raise ConfigError(f"event_encoder.combined entry {group}: combine at least two fields")
            for name in group:
                if name not in by_name:
                    raise ConfigError(f"event_encoder.combined names '{name}', not an event field "
                                      f"(fields: {list(by_name)}){did_you_mean(name, list(by_name))}")
            fields = [by_name[name] for name in group]
            if any(feature.kind == "text" for feature in fields):
                raise ConfigError(f"event_encoder.combined {group}: a text field cannot be part of a combined token")
            size = 1
            for feature in fields:
                size *= field_size(feature)
            if size > 10_000_000:
                raise ConfigError(f"event_encoder.combined {group} has {size:,} combinations: too many to embed")
            tokens["+".join(group)] = (fields, size)
        if tokens and config.combine == "field_transformer":
            raise ConfigError("event_encoder.combine=field_transformer takes numerics as scalars: "
                              "drop numeric_encoding and combined")
        return tokens

    def _token_part(self, name: str, batch: Batch, mask: torch.Tensor) -> torch.Tensor:
        fields, _ = self.token_fields[name]
        table = self.token_tables[name]
        if isinstance(table, nn.Linear):  # piecewise-linear encoding of one numeric field
            return table(piecewise_linear(fields[0], batch.features[fields[0].name].float()))
        digits = [field_digits(feature, batch.features[feature.name].float() if isinstance(feature, NumericFeature)
                               else batch.features[feature.name]) for feature in fields]
        token = combine_digits(digits, [field_size(feature) for feature in fields]) + 1
        return table(torch.where(mask, token, torch.zeros_like(token)))

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
                *(CALENDAR_FEATURES if self.config.calendar else []),
                *(RECENCY_FEATURES if self.recency else []), *self.text_projections.keys()]

    def forward(
        self, batch: Batch, field_mask: torch.Tensor | None = None, event_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Event vectors [B, T, output_dim], zero at padding.

        Args:
            field_mask: [B, T, fields] bool, field tokens to replace by the [MASK] token
                (combine=field_transformer only; fields in `field_names` order).
            event_mask: [B, T] bool, the events to encode (default: every real event); the
                others are zero and stay out of the numeric statistics (one source's events).
        """
        if self.source_encoders is not None:
            if field_mask is not None:
                raise ConfigError("field masking needs one event encoder: set event_encoder.per_source=false")
            return self._forward_sources(batch)
        if field_mask is not None and self.config.combine != "field_transformer":
            raise ConfigError("field masking needs event_encoder.combine=field_transformer")
        mask = batch.mask if event_mask is None else event_mask  # [B, T]
        parts = []
        for name, embedding in self.embeddings.items():
            ids = batch.features[name]
            if ids.numel() and int(ids.max()) >= embedding.num_embeddings:
                raise ConfigError(
                    f"field '{name}' has id {int(ids.max())} but the vocabulary has "
                    f"{embedding.num_embeddings} entries: data was encoded with a different schema"
                )
            parts.append(embedding(ids))  # [B, T, d]
        for name in self.token_tables:
            parts.append(self._token_part(name, batch, mask))  # [B, T, d]
        if self.numeric_norm is not None:
            columns = [batch.features[name].float() for name in self.numeric_names]
            if self.config.time_delta:
                columns.append(time_deltas(batch.event_time, mask))
            if self.config.calendar:
                columns.extend(calendar_features(batch.event_time, mask).unbind(dim=-1))
            if self.recency:
                columns.extend((recency_features(batch.event_time, batch.lengths) * mask.unsqueeze(-1)).unbind(dim=-1))
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


