"""Word2vec-style event-value embeddings: skip-gram with negative sampling over categorical values.

Each categorical value (a merchant category, an item...) is a word and each entity's sequence of
that field a sentence: values that occur within `window` events of each other get similar vectors
(Mikolov et al., 2013). The vectors trained are the EventEncoder's own embedding tables, so a
word2vec model initialises a supervised or self-supervised model directly (`init_from=`); its
entity embedding is the mean of its events' value vectors (a bag of events).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from eventseq.config import option
from eventseq.data.batch import Batch
from eventseq.data.schema import FIRST_VALUE_ID, Schema
from eventseq.errors import ConfigError, did_you_mean
from eventseq.nn.encoder import Encoder


@dataclass
class Word2VecConfig:
    """The skip-gram objective.

    Attributes:
        fields: categorical fields to embed (empty = all of them).
        window: context events on each side of a value.
        negatives: negative samples per (value, context) pair, drawn from the batch's values
            (so with the values' frequency, as word2vec's unigram table).
    """

    fields: list[str] = field(default_factory=list)
    window: int = option(5, ge=1)
    negatives: int = option(5, ge=1)


def skipgram_pairs(ids: torch.Tensor, lengths: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(center, context) value ids of every pair of real events at most `window` apart, both directions,
    unknown values left out. ids [B, T] → two [P] tensors."""
    steps = torch.arange(ids.shape[1], device=ids.device)
    centers, contexts = [], []
    for offset in range(1, window + 1):
        valid = steps[None, offset:] < lengths[:, None]  # [B, T - offset]: both ends are real events
        left, right = ids[:, :-offset][valid], ids[:, offset:][valid]
        known = (left >= FIRST_VALUE_ID) & (right >= FIRST_VALUE_ID)
        left, right = left[known], right[known]
        centers += [left, right]
        contexts += [right, left]
    if not centers:
        empty = ids.new_zeros(0)
        return empty, empty
    return torch.cat(centers), torch.cat(contexts)


class Word2VecObjective(nn.Module):
    """Skip-gram with negative sampling on the encoder's categorical embedding tables."""

    monitor = ("val_loss", "min")

    def __init__(self, schema: Schema, encoder: Encoder, config: Word2VecConfig) -> None:
        super().__init__()
        names = [feature.name for feature in schema.categorical]
        for name in config.fields:
            if name not in names:
                raise ConfigError(f"word2vec.fields names '{name}', not a categorical field "
                                  f"(categoricals: {names}){did_you_mean(name, names)}")
        if config.window < 1 or config.negatives < 1:
            raise ConfigError(f"word2vec.window={config.window}, negatives={config.negatives}: both must be >= 1")
        self.fields = list(config.fields) or names
        if not self.fields:
            raise ConfigError("word2vec needs at least one categorical field; the schema has none")
        self.config = config
        if encoder.event_encoder.source_encoders is not None:
            raise ConfigError("word2vec trains one embedding table per field: set event_encoder.per_source=false")
        tables = encoder.event_encoder.embeddings
        self.embedding_dim = sum(tables[name].embedding_dim for name in self.fields)
        # context vectors ("output" vectors of word2vec), zero-initialised as in the original code
        self.contexts = nn.ModuleDict({name: nn.Embedding(tables[name].num_embeddings, tables[name].embedding_dim)
                                       for name in self.fields})
        for table in self.contexts.values():
            nn.init.zeros_(table.weight)


    def losses(self, encoder: Encoder, batch: Batch) -> dict[str, torch.Tensor]:
        parts, pairs = [], 0
        for name in self.fields:
            centers, contexts = skipgram_pairs(batch.features[name], batch.lengths, self.config.window)
            if len(centers) == 0:
                continue
            pairs += len(centers)
            vectors = encoder.event_encoder.embeddings[name](centers)  # [P, d]
            positive = (vectors * self.contexts[name](contexts)).sum(dim=1)  # [P]
            noise = contexts[torch.randint(len(contexts), (len(centers), self.config.negatives), device=centers.device)]
            negative = torch.einsum("pd,pkd->pk", vectors, self.contexts[name](noise))  # [P, K]
            parts.append(-(F.logsigmoid(positive).mean() + F.logsigmoid(-negative).sum(dim=1).mean()))
        if not parts:  # no two known values within the window anywhere in the batch
            return {"loss": sum(p.sum() for p in self.contexts.parameters()) * 0.0, "count": torch.tensor(0)}
        return {"loss": torch.stack(parts).mean(), "count": torch.tensor(pairs)}

    def embed(self, encoder: Encoder, batch: Batch) -> torch.Tensor:
        """Mean over each entity's events of its values' vectors, fields concatenated: [B, sum d]."""
        mask = batch.mask.unsqueeze(-1).float()  # [B, T, 1]
        pooled = [(encoder.event_encoder.embeddings[name](batch.features[name]) * mask).sum(dim=1)
                  for name in self.fields]
        return torch.cat(pooled, dim=1) / batch.lengths.clamp(min=1).unsqueeze(-1).float()
