"""Entity-id hashing: the one rule that assigns an entity to a split part or a shard from its id alone.

`entity_hash` is fixed (splitmix64 over integers, a polynomial hash over string bytes): the same id
hashes the same in every process, machine and library version, so a streaming run needs no list of
entities to split (`hash_split`) and a sharded prepare puts an entity in the same part file every
time (`entity_shards`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from eventseq.errors import ColumnError, ConfigError


def _mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fixed, well-mixed 64-bit hash of each uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64, copy=True)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def _is_bytes(id_type: pa.DataType) -> bool:
    """String or binary ids: hashed by their bytes."""
    return any(check(id_type) for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary,
                                            pa.types.is_large_binary))


def _bytes_hash(array: pa.Array) -> np.ndarray:
    """A polynomial hash (mod 2^64) of each string/binary value, vectorized over the flat bytes."""
    array = array.cast(pa.large_binary())
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]].astype(np.uint64)
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    # weight of byte i of a value: P^(i+1), so "ab" and "ba" differ; uint64 products wrap (mod 2^64)
    position = np.arange(len(data), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    powers = np.cumprod(np.full(max(int(lengths.max(initial=0)), 1), 0x100000001B3, dtype=np.uint64))
    with np.errstate(over="ignore"):
        prefix = np.concatenate([np.zeros(1, np.uint64), np.cumsum(data * powers[position], dtype=np.uint64)])
        return prefix[offsets[1:]] - prefix[offsets[:-1]] + lengths.astype(np.uint64)


def entity_hash(ids: pa.Array | pa.ChunkedArray | np.ndarray, seed: int = 0) -> np.ndarray:
    """A stable 64-bit hash per entity id (integers or strings), the same in every process and version.

    Raises:
        ColumnError: null ids, or an id type that is neither integer nor string-like.
    """
    if isinstance(ids, np.ndarray):
        ids = pa.array(ids)
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if ids.null_count:
        raise ColumnError(f"the entity id column has {ids.null_count} null values; every entity needs an id")
    if pa.types.is_integer(ids.type):
        raw = ids.cast(pa.int64()).to_numpy(zero_copy_only=False).view(np.uint64)
    elif _is_bytes(ids.type):
        raw = _bytes_hash(ids)
    else:
        raise ColumnError(f"entity ids of type {ids.type} cannot be hashed for the split: expected integers or strings")
    with np.errstate(over="ignore"):  # the seed's own hash, offset so that id 0 with seed 0 does not hash to 0
        salt = _mix64(np.asarray([seed], dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))[0]
        return _mix64(raw ^ salt)


def hash_split(
    ids: pa.Array | pa.ChunkedArray | np.ndarray, valid_fraction: float, test_fraction: float = 0.0, seed: int = 0
) -> np.ndarray:
    """Part of each entity from its id alone: 0 train, 1 valid, 2 test (int8, [N]).

    The same id always lands in the same part (for a given seed), whatever the shard, the row
    order or the process, so a streaming run needs no list of entities to split.
    """
    if not 0 <= valid_fraction < 1 or not 0 <= test_fraction < 1 or valid_fraction + test_fraction >= 1:
        raise ConfigError(f"valid_fraction={valid_fraction}, test_fraction={test_fraction}: each in [0, 1) and sum < 1")
    uniform = (entity_hash(ids, seed) >> np.uint64(11)).astype(np.float64) / float(1 << 53)  # [0, 1)
    return np.where(uniform < valid_fraction, 1, np.where(uniform < valid_fraction + test_fraction, 2, 0)).astype(
        np.int8
    )


def entity_shards(ids: pa.Array | pa.ChunkedArray | np.ndarray, shards: int) -> np.ndarray:
    """Which of `shards` groups each entity falls in (int64, [N]), from `entity_hash` of its id (ids that are
    neither integers nor strings, e.g. floats or dates, are hashed as their text)."""
    if isinstance(ids, np.ndarray):
        ids = pa.array(ids)
    if not (pa.types.is_integer(ids.type) or _is_bytes(ids.type)):
        ids = ids.cast(pa.string())
    return (entity_hash(ids) % np.uint64(shards)).astype(np.int64)
