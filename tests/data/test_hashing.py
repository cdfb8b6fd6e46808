"""Tests for eventseq.data.hashing: the entity-id hash behind the split and the shards."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from eventseq.data.hashing import entity_hash, entity_shards, hash_split
from eventseq.errors import ColumnError, ConfigError


def test_entity_hash_is_fixed_and_order_free():
    ids = np.array([0, 1, 2, 12345678901], dtype=np.int64)
    hashed = entity_hash(ids)
    # pinned values: the split of an entity must never change between versions or machines
    assert hashed[:2].tolist() == [5197578548964807871, 11385487063155714807]
    assert np.array_equal(entity_hash(ids[::-1]), hashed[::-1])
    assert not np.array_equal(entity_hash(ids, seed=1), hashed)
    strings = pa.array(["ab", "ba", "", "client-00017"])
    string_hash = entity_hash(strings)
    assert len(set(string_hash.tolist())) == 4  # "ab" and "ba" differ, "" is a value
    assert np.array_equal(entity_hash(strings.slice(1, 2)), string_hash[1:3])  # slices hash the same
    assert np.array_equal(entity_hash(pa.chunked_array([["ab"], ["ba", ""]])), string_hash[:3])


def test_hash_split_has_the_fractions_and_rejects_bad_ids():
    codes = hash_split(np.arange(20_000), valid_fraction=0.2, test_fraction=0.1, seed=3)
    shares = np.bincount(codes, minlength=3) / len(codes)
    assert shares == pytest.approx([0.7, 0.2, 0.1], abs=0.01)
    with pytest.raises(ColumnError, match="null"):
        entity_hash(pa.array([1, None]))
    with pytest.raises(ColumnError, match="double"):
        entity_hash(pa.array([1.5]))
    with pytest.raises(ConfigError, match="valid_fraction"):
        hash_split(np.arange(3), 0.7, 0.5)


def test_entity_shards_are_the_hash_modulo_the_count_and_take_any_id_type():
    ids = np.arange(10_000)
    shards = entity_shards(ids, 7)
    assert np.array_equal(shards, (entity_hash(ids) % np.uint64(7)).astype(np.int64))
    assert np.bincount(shards, minlength=7).min() > 1200  # about 10,000 / 7 each
    floats = entity_shards(pa.array([1.5, 2.5, 1.5]), 3)  # hashed as their text, the same every time
    assert floats[0] == floats[2] and set(floats.tolist()) <= {0, 1, 2}
