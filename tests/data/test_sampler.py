"""Tests for eventseq.data.sampler: length-bucketed batches."""

from __future__ import annotations

import numpy as np
import pytest

from eventseq.data.sampler import LengthBucketSampler


@pytest.fixture
def varied_lengths() -> np.ndarray:
    """500 sequence lengths spread over 1..300 (fixed seed)."""
    return np.random.default_rng(123).integers(1, 301, size=500)


def _padded_cells(batches: list[list[int]], lengths: np.ndarray) -> int:
    """Cells in the padded [B, T] tensors of all batches."""
    return sum(len(batch) * int(lengths[batch].max()) for batch in batches)


def test_every_index_exactly_once_per_epoch(varied_lengths):
    sampler = LengthBucketSampler(varied_lengths, batch_size=16, pool_batches=4, seed=1)

    for epoch in range(3):
        sampler.set_epoch(epoch)
        flat = [i for batch in sampler for i in batch]
        assert sorted(flat) == list(range(len(varied_lengths)))


def test_bucketing_gives_less_padding_than_random_batches(varied_lengths):
    batch_size = 16
    bucketed = list(LengthBucketSampler(varied_lengths, batch_size=batch_size, seed=0))
    order = np.random.default_rng(0).permutation(len(varied_lengths))
    random_batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]

    bucketed_cells = _padded_cells(bucketed, varied_lengths)
    random_cells = _padded_cells(random_batches, varied_lengths)

    assert bucketed_cells < 0.7 * random_cells
    assert bucketed_cells >= int(varied_lengths.sum())


def test_same_seed_and_epoch_give_same_batches(varied_lengths):
    first = LengthBucketSampler(varied_lengths, batch_size=8, seed=5)
    second = LengthBucketSampler(varied_lengths, batch_size=8, seed=5)
    first.set_epoch(2)
    second.set_epoch(2)

    assert list(first) == list(second)


def test_different_epoch_gives_different_order(varied_lengths):
    sampler = LengthBucketSampler(varied_lengths, batch_size=8, seed=5)
    epoch_0 = list(sampler)
    sampler.set_epoch(1)

    assert list(sampler) != epoch_0


def test_different_seed_gives_different_order(varied_lengths):
    assert list(LengthBucketSampler(varied_lengths, 8, seed=0)) != list(LengthBucketSampler(varied_lengths, 8, seed=1))


@pytest.mark.parametrize("shuffle", [True, False])
def test_drop_last(shuffle):
    lengths = np.arange(1, 11)  # 10 entities, batches of 4 -> 2 full, one of 2

    sampler = LengthBucketSampler(lengths, batch_size=4, shuffle=shuffle, drop_last=True)
    batches = list(sampler)

    assert len(sampler) == 2
    assert len(batches) == 2
    assert all(len(batch) == 4 for batch in batches)


@pytest.mark.parametrize("shuffle", [True, False])
def test_len_without_drop_last_counts_partial_batch(shuffle):
    sampler = LengthBucketSampler(np.arange(1, 11), batch_size=4, shuffle=shuffle)

    assert len(sampler) == 3
    assert [len(batch) for batch in sampler].count(2) == 1


def test_no_shuffle_is_sorted_by_length_descending():
    lengths = np.array([3, 9, 1, 9, 5, 2, 7])

    sampler = LengthBucketSampler(lengths, batch_size=3, shuffle=False)
    batches = list(sampler)

    assert batches == [[1, 3, 6], [4, 0, 5], [2]]  # ties (9, 9) keep index order
    assert batches == list(sampler)


def test_no_shuffle_ignores_seed_and_epoch():
    lengths = np.array([3, 9, 1, 9, 5, 2, 7])
    sampler = LengthBucketSampler(lengths, batch_size=2, shuffle=False, seed=7)
    before = list(sampler)
    sampler.set_epoch(4)

    assert list(sampler) == before


def test_batches_are_plain_int_lists(varied_lengths):
    batch = next(iter(LengthBucketSampler(varied_lengths, batch_size=4)))

    assert isinstance(batch, list)
    assert all(isinstance(i, int) for i in batch)


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        LengthBucketSampler(np.arange(5), batch_size=0)
