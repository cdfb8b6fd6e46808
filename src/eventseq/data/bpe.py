"""Event BPE: byte-pair encoding applied to events, so that frequent patterns become one token.

Each event gets a base token, the combination of some fields (`data/tokens.py`: categorical ids,
quantile buckets of numerics). `fit_bpe` then repeats, `merges` times, "find the most frequent
pair of adjacent tokens inside an entity and make it a new token" (Sennrich et al., 2016, on events
instead of characters). `apply_bpe` replays the merges in the order they were learned, so a
sequence is tokenized at inference exactly as during fitting, and `expand_tokens` inverts it.

The sequence table that comes out has one row per *token*: its `event_token` id, the time of its
first event, `token_events` (log1p of the events it covers), each other categorical at its first
event and each other numeric averaged over its events. The schema keeps the fitted raw features in
`Schema.bpe.features`, so `encode_events` encodes raw events and then applies the merges.

Every step is a whole-array NumPy operation over the flat event arrays (one per merge), not a loop
over entities or events. Written here rather than taken from a text tokenizer library: those work
on strings, so events would have to be mapped to characters (capping the base vocabulary) and the
merges translated back; the algorithm itself is a few array operations.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pyarrow as pa

from eventseq.data.schema import (
    FIRST_VALUE_ID,
    TIME_COLUMN,
    UNKNOWN_ID,
    CategoricalFeature,
    EventBpe,
    NumericFeature,
    Schema,
)
from eventseq.data.tokens import combine_digits, field_digits, field_size
from eventseq.errors import ConfigError, DataError, did_you_mean

TOKEN_COLUMN = "event_token"
TOKEN_EVENTS_COLUMN = "token_events"
MAX_BASE_TOKENS = 1_000_000


def _flat(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    column = table[name].combine_chunks()
    offsets = np.asarray(column.offsets, dtype=np.int64)
    return column.flatten().to_numpy(zero_copy_only=False), offsets - offsets[0]


def _base_fields(
    features: list[CategoricalFeature | NumericFeature], fields: list[str]
) -> list[CategoricalFeature | NumericFeature]:
    by_name = {feature.name: feature for feature in features}
    chosen = []
    for name in fields:
        if name not in by_name:
            raise ConfigError(f"bpe field '{name}' is not an event feature (features: {list(by_name)})"
                              f"{did_you_mean(name, list(by_name))}")
        chosen.append(by_name[name])
    return chosen


def base_tokens(table: pa.Table, schema: Schema, fields: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Flat base token per event, the entity offsets, and the size of the base token space."""
    chosen = _base_fields(schema.features, fields)
    sizes = [field_size(feature) for feature in chosen]
    base_size = int(np.prod(sizes, dtype=np.float64))
    if base_size > MAX_BASE_TOKENS:
        raise ConfigError(
            f"bpe fields {fields} combine into {base_size:,} base tokens (more than {MAX_BASE_TOKENS:,}): "
            f"use fewer fields, fewer quantile buckets or a smaller max_vocab_size"
        )
    digits = []
    offsets = np.zeros(1, dtype=np.int64)
    for feature in chosen:
        values, offsets = _flat(table, feature.name)
        digits.append(field_digits(feature, values.astype(np.int64 if feature.kind == "categorical" else np.float64)))
    return combine_digits(digits, sizes).astype(np.int64), offsets, base_size


def _owners(offsets: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def _merge_pair(
    tokens: np.ndarray, first: np.ndarray, owner: np.ndarray, left: int, right: int, new: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replace every adjacent (left, right) inside an entity by `new`, scanning left to right."""
    positions = np.flatnonzero((tokens[:-1] == left) & (tokens[1:] == right) & (owner[:-1] == owner[1:]))
    if positions.size == 0:
        return tokens, first, owner
    if left == right:  # a run "a a a" holds overlapping pairs: merge the 1st and 2nd, leave the 3rd
        run_start = np.r_[True, np.diff(positions) != 1]
        start_of_run = positions[run_start][np.cumsum(run_start) - 1]
        positions = positions[(positions - start_of_run) % 2 == 0]
    tokens = tokens.copy()
    tokens[positions] = new
    keep = np.ones(len(tokens), dtype=bool)
    keep[positions + 1] = False
    return tokens[keep], first[keep], owner[keep]


def learn_merges(
    tokens: np.ndarray, offsets: np.ndarray, base_size: int, merges: int, min_count: int = 2
) -> list[list[int]]:
    """Learn up to `merges` merges over flat base tokens; stops when no pair occurs `min_count` times.

    Ties between equally frequent pairs go to the smaller (left, right), so fitting is deterministic.
    """
    owner = _owners(offsets)
    first = np.arange(len(tokens))
    learned: list[list[int]] = []
    for step in range(merges):
        vocabulary = base_size + step
        same = owner[:-1] == owner[1:]
        if not same.any():
            break
        codes = tokens[:-1][same] * vocabulary + tokens[1:][same]
        pairs, counts = np.unique(codes, return_counts=True)
        best = int(np.argmax(counts))
        if counts[best] < min_count:
            break
        left, right = divmod(int(pairs[best]), vocabulary)
        learned.append([left, right])
        tokens, first, owner = _merge_pair(tokens, first, owner, left, right, vocabulary)
    return learned


def tokenize(
    tokens: np.ndarray, offsets: np.ndarray, merges: list[list[int]], base_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply learned merges in order: (token ids, index of each token's first event, new offsets)."""
    owner = _owners(offsets)
    first = np.arange(len(tokens))
    for step, (left, right) in enumerate(merges):
        tokens, first, owner = _merge_pair(tokens, first, owner, left, right, base_size + step)
    counts = np.bincount(owner, minlength=len(offsets) - 1)
    return tokens, first, np.concatenate([[0], np.cumsum(counts)])


def expand_tokens(tokens: np.ndarray, merges: list[list[int]], base_size: int) -> np.ndarray:
    """The inverse of the merges: token ids → the base tokens they stand for, in order."""
    expanded = np.asarray(tokens, dtype=np.int64)
    for step in range(len(merges) - 1, -1, -1):  # undo the newest merge first
        is_merged = expanded == base_size + step
        if not is_merged.any():
            continue
        left, right = merges[step]
        repeats = np.where(is_merged, 2, 1)
        out = np.repeat(expanded, repeats)
        starts = np.cumsum(repeats) - repeats
        out[starts[is_merged]] = left
        out[starts[is_merged] + 1] = right
        expanded = out
    return expanded


def _token_names(bpe: EventBpe, token_ids: list[int]) -> list[str]:
    chosen = _base_fields(bpe.features, bpe.fields)
    sizes = [field_size(feature) for feature in chosen]

    def base_name(token: int) -> str:
        parts = []
        for feature, size, stride in zip(chosen, sizes, _strides(sizes)):
            digit = (token // stride) % size
            if isinstance(feature, CategoricalFeature):
                parts.append(f"{feature.name}={feature.vocabulary[digit - 1] if digit else '?'}")
            else:
                parts.append(f"{feature.name}=q{digit}")
        return "|".join(parts)

    names: dict[int, str] = {}

    def name(token: int) -> str:
        if token not in names:
            if token < bpe.base_size:
                names[token] = base_name(token)
            else:
                left, right = bpe.merges[token - bpe.base_size]
                names[token] = f"{name(left)} {name(right)}"
        return names[token]

    return [name(token) for token in token_ids]


def _strides(sizes: list[int]) -> list[int]:
    strides = [1] * len(sizes)
    for index in range(len(sizes) - 2, -1, -1):
        strides[index] = strides[index + 1] * sizes[index + 1]
    return strides


def fit_bpe(table: pl.DataFrame, schema: Schema, fields: list[str], merges: int, min_count: int = 2) -> Schema:
    """Learn event-BPE merges on a sequence table; returns the schema of the tokenized table.

    Args:
        table: a sequence table encoded with `schema` (as `prepare` makes it, before BPE).
        schema: its fitted schema (quantized numerics among `fields` need `quantize`).
        fields: event fields whose combination is an event's base token.
        merges: most merges to learn (each adds one token).
        min_count: stop once the most frequent pair occurs fewer times.

    Returns:
        A schema whose features describe the tokenized table and whose `bpe` holds the merges.

    Raises:
        ConfigError: unknown or unquantized fields, too many base token combinations.
    """
    if not fields:
        raise ConfigError("bpe needs at least one field (bpe_fields)")
    if merges < 1 or min_count < 1:
        raise ConfigError(f"bpe_merges={merges} and bpe_min_count={min_count} must both be >= 1")
    arrow = table.to_arrow()
    tokens, offsets, base_size = base_tokens(arrow, schema, fields)
    learned = learn_merges(tokens, offsets, base_size, merges, min_count)
    tokenized, _, _ = tokenize(tokens, offsets, learned, base_size)
    ids, counts = np.unique(tokenized, return_counts=True)
    by_frequency = ids[np.lexsort((ids, -counts))].tolist()  # most frequent first, as other vocabularies
    bpe = EventBpe(fields=list(fields), merges=learned, features=list(schema.features), base_size=base_size,
                   vocabulary=by_frequency)
    others = [feature for feature in schema.features if feature.name not in fields]
    token_feature = CategoricalFeature(name=TOKEN_COLUMN, vocabulary=_token_names(bpe, by_frequency))
    features = [token_feature, *others, NumericFeature(name=TOKEN_EVENTS_COLUMN, transform="log")]
    taken = {feature.name for feature in schema.features}
    for reserved in (TOKEN_COLUMN, TOKEN_EVENTS_COLUMN):
        if reserved in taken:
            raise ConfigError(f"event BPE writes a column '{reserved}': rename the event feature of that name")
    return dataclasses.replace(schema, features=features, bpe=bpe)


def apply_bpe(table: pl.DataFrame, schema: Schema) -> pl.DataFrame:
    """Tokenize a sequence table encoded with the raw features `schema.bpe.features`.

    Returns the table with one list entry per token (columns as `schema.features`); scalar
    columns (id, targets) are kept as they are.
    """
    bpe = schema.bpe
    if bpe is None:
        raise DataError("apply_bpe needs a schema fitted with event BPE")
    raw_schema = dataclasses.replace(schema, features=bpe.features, bpe=None)
    arrow = table.to_arrow()
    tokens, offsets, _ = base_tokens(arrow, raw_schema, bpe.fields)
    tokenized, first, token_offsets = tokenize(tokens, offsets, bpe.merges, bpe.base_size)
    lookup = np.full(bpe.base_size + len(bpe.merges), UNKNOWN_ID, dtype=np.int32)
    lookup[np.asarray(bpe.vocabulary, dtype=np.int64)] = np.arange(len(bpe.vocabulary)) + FIRST_VALUE_ID
    # entities are contiguous and never empty: a token ends where the next one starts
    token_end = np.r_[first[1:], offsets[-1]]
    events_per_token = token_end - first

    def as_list(values: np.ndarray) -> pa.ListArray:
        return pa.ListArray.from_arrays(pa.array(token_offsets.astype(np.int32)), pa.array(values))

    columns: dict[str, pa.Array] = {}
    times, _ = _flat(arrow, TIME_COLUMN)
    columns[TIME_COLUMN] = as_list(times[first])
    columns[TOKEN_COLUMN] = as_list(lookup[tokenized])
    for feature in schema.features:
        if feature.name in (TOKEN_COLUMN, TOKEN_EVENTS_COLUMN):
            continue
        values, _ = _flat(arrow, feature.name)
        if feature.kind in ("categorical", "text"):  # ids: the value at the token's first event
            columns[feature.name] = as_list(values[first].astype(np.int32))
        else:
            sums = np.add.reduceat(values.astype(np.float64), first) if len(first) else values[:0]
            columns[feature.name] = as_list((sums / events_per_token).astype(np.float32))
    columns[TOKEN_EVENTS_COLUMN] = as_list(np.log1p(events_per_token).astype(np.float32))
    scalars = [name for name in table.columns if name not in (TIME_COLUMN, *[f.name for f in bpe.features])]
    out = table.select(scalars)
    lists = pl.from_arrow(pa.table(columns))
    assert isinstance(lists, pl.DataFrame)
    ordered = [schema.id_column, TIME_COLUMN, *schema.feature_names]
    return pl.concat([out, lists], how="horizontal").select(
        ordered + [name for name in scalars if name != schema.id_column])
