from __future__ import annotations

import numpy as np
import pytest

from eventseq.data.augment import ViewCollate, ViewConfig, sample_views
from eventseq.data.dataset import SequenceDataset
from eventseq.errors import ConfigError


def test_slices_respect_bounds_and_stay_inside_the_sequence():
    lengths = np.array([3, 10, 200, 50])
    config = ViewConfig(split_count=7, min_len=5, max_len=20)
    owner, start, length = sample_views(lengths, config, np.random.default_rng(0))
    assert owner.tolist() == np.repeat(np.arange(4), 7).tolist()
    total = lengths[owner]
    assert np.all(length <= np.minimum(20, total)) and np.all(length >= np.minimum(5, total))
    assert np.all(start >= 0) and np.all(start + length <= total)
    assert np.all(length[owner == 0] == 3)  # shorter than min_len: the whole sequence


def test_crops_are_a_share_of_the_sequence():
    lengths = np.array([100, 40])
    config = ViewConfig(split_count=50, mode="crops", crop_min=0.5, crop_max=0.8)
    owner, start, length = sample_views(lengths, config, np.random.default_rng(1))
    share = length / lengths[owner]
    assert share.min() >= 0.5 and share.max() <= 0.8
    assert np.all(start + length <= lengths[owner])


def _dataset(tiny_prepared) -> SequenceDataset:
    return SequenceDataset.from_table(tiny_prepared.table, tiny_prepared.schema)


def test_views_are_batches_indexed_by_entity(tiny_prepared):
    dataset = _dataset(tiny_prepared)
    collate = ViewCollate(dataset, ViewConfig(split_count=3, min_len=1, max_len=2), fixed_seed=0)
    batch = collate([0, 2])
    assert batch.index.tolist() == [0, 0, 0, 2, 2, 2]
    full = dataset.collate([0, 2])
    # every view is a contiguous run of its entity's events
    for row, entity in enumerate([0, 0, 0, 1, 1, 1]):
        times = batch.event_time[row, : batch.lengths[row]].tolist()
        source = full.event_time[entity, : full.lengths[entity]].tolist()
        assert any(source[i : i + len(times)] == times for i in range(len(source)))
    assert collate([0, 2]).event_time.tolist() == batch.event_time.tolist()  # fixed seed: same views


def test_event_dropout_keeps_order_and_at_least_one_event(tiny_prepared):
    dataset = _dataset(tiny_prepared)
    collate = ViewCollate(dataset, ViewConfig(split_count=4, min_len=3, max_len=3, event_dropout=0.9), fixed_seed=1)
    batch = collate([0, 1])
    assert batch.lengths.min() >= 1
    for row in range(batch.batch_size):
        times = batch.event_time[row, : batch.lengths[row]]
        assert bool((times[1:] >= times[:-1]).all())
        assert bool((batch.event_time[row, batch.lengths[row]:] == 0).all())


@pytest.mark.parametrize(
    "bad", [dict(split_count=1), dict(mode="chunks"), dict(min_len=0), dict(min_len=5, max_len=4),
            dict(crop_min=0.0), dict(event_dropout=1.0)]
)
def test_bad_view_configs(bad):
    with pytest.raises(ConfigError):
        ViewConfig(**bad).validate()
