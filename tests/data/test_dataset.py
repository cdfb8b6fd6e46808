"""Tests for eventseq.data.dataset: flat arrays + offsets, vectorized padded collate."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from eventseq.data.dataset import SequenceDataset
from eventseq.data.sampler import LengthBucketSampler
from eventseq.data.schema import TIME_COLUMN, CategoricalFeature, NumericFeature, Schema
from eventseq.errors import ColumnError, DataError


@pytest.fixture
def schema() -> Schema:
    return Schema(
        id_column="client_id",
        time_column="ts",
        time_kind="int",
        features=[CategoricalFeature(name="mcc", vocabulary=["a", "b", "c"]), NumericFeature(name="amount")],
    )


@pytest.fixture
def table() -> pl.DataFrame:
    """Three entities with 3, 1 and 4 events; times ascending within each entity."""
    return pl.DataFrame(
        {
            "client_id": [10, 20, 30],
            TIME_COLUMN: [[1, 2, 3], [7], [4, 5, 6, 8]],
            "mcc": [[2, 3, 4], [1], [4, 4, 3, 2]],
            "amount": [[0.5, 1.5, 2.5], [9.0], [-1.0, -2.0, -3.0, -4.0]],
            "label": [0, 1, 1],
        },
        schema_overrides={
            TIME_COLUMN: pl.List(pl.Int64), "mcc": pl.List(pl.Int32), "amount": pl.List(pl.Float32), "label": pl.Int32,
        },
    )


def test_collate_pads_left_aligned_with_zeros(table, schema):
    dataset = SequenceDataset.from_table(table, schema)

    batch = dataset.collate([0, 1, 2])

    assert batch.lengths.tolist() == [3, 1, 4]
    assert batch.event_time.shape == (3, 4)
    assert batch.features["mcc"].tolist() == [[2, 3, 4, 0], [1, 0, 0, 0], [4, 4, 3, 2]]
    assert batch.features["amount"].tolist() == [[0.5, 1.5, 2.5, 0.0], [9.0, 0.0, 0.0, 0.0], [-1.0, -2.0, -3.0, -4.0]]
    assert batch.event_time.tolist() == [[1, 2, 3, 0], [7, 0, 0, 0], [4, 5, 6, 8]]
    assert batch.index.tolist() == [0, 1, 2]
    assert batch.target is None


def test_collate_dtypes(table, schema):
    batch = SequenceDataset.from_table(table, schema).collate([0, 2])

    assert batch.features["mcc"].dtype == torch.int64
    assert batch.features["amount"].dtype == torch.float32
    assert batch.event_time.dtype == torch.int64
    assert batch.lengths.dtype == torch.int64


def test_batch_width_is_longest_in_batch(table, schema):
    batch = SequenceDataset.from_table(table, schema).collate([1, 0])

    assert batch.max_length == 3
    assert batch.mask.tolist() == [[True, False, False], [True, True, True]]


def test_max_len_keeps_most_recent_events(table, schema):
    dataset = SequenceDataset.from_table(table, schema, max_len=2)

    batch = dataset.collate([0, 1, 2])

    assert batch.lengths.tolist() == [2, 1, 2]
    assert batch.event_time.tolist() == [[2, 3], [7, 0], [6, 8]]
    assert batch.features["mcc"].tolist() == [[3, 4], [1, 0], [3, 2]]
    assert dataset.lengths.tolist() == [2, 1, 2]
    assert dataset.num_events == 5


def test_collate_does_not_modify_flat_arrays(table, schema):
    dataset = SequenceDataset.from_table(table, schema)
    before = {name: values.copy() for name, values in dataset.columns.items()}

    dataset.collate([1, 0, 2])

    for name, values in dataset.columns.items():
        np.testing.assert_array_equal(values, before[name])


def test_subset_shares_memory_and_maps_positions(table, schema):
    dataset = SequenceDataset.from_table(table, schema, target="label")

    subset = dataset.subset(np.array([2, 0]))

    for name in dataset.columns:
        assert np.shares_memory(subset.columns[name], dataset.columns[name])
    assert len(subset) == 2
    assert subset.entity_ids().tolist() == [30, 10]
    assert subset.target_values().tolist() == [1, 0]
    assert subset.lengths.tolist() == [4, 3]
    batch = subset.collate([1])
    assert batch.event_time.tolist() == [[1, 2, 3]]
    assert batch.index.tolist() == [1]  # position within the subset


def test_target_attached(table, schema):
    dataset = SequenceDataset.from_table(table, schema, target="label")

    batch = dataset.collate([2, 0])

    assert dataset.target_names == ["label"]
    assert batch.target.tolist() == [1, 0]


def test_several_targets_stack(table, schema):
    table = table.with_columns(other=pl.Series([1, 0, 0], dtype=pl.Int32))

    batch = SequenceDataset.from_table(table, schema, target=["label", "other"]).collate([0, 1])

    assert batch.target.shape == (2, 2)
    assert batch.target.tolist() == [[0, 1], [1, 0]]


def test_null_target(table, schema):
    table = table.with_columns(label=pl.Series([0, None, 1], dtype=pl.Int32))

    with pytest.raises(DataError, match="target 'label' is null for 1 entities"):
        SequenceDataset.from_table(table, schema, target="label")


def test_missing_target_column(table, schema):
    with pytest.raises(ColumnError, match="'labl'.*did you mean 'label'"):
        SequenceDataset.from_table(table, schema, target="labl")


def test_entity_with_zero_events(table, schema):
    table = table.with_columns(
        pl.Series(TIME_COLUMN, [[1, 2, 3], [], [4, 5, 6, 8]], dtype=pl.List(pl.Int64)),
        pl.Series("mcc", [[2, 3, 4], [], [4, 4, 3, 2]], dtype=pl.List(pl.Int32)),
        pl.Series("amount", [[0.5, 1.5, 2.5], [], [-1.0, -2.0, -3.0, -4.0]], dtype=pl.List(pl.Float32)),
    )

    with pytest.raises(DataError, match="entity at row 1 has no events"):
        SequenceDataset.from_table(table, schema)


def test_mismatched_list_lengths_name_the_column(table, schema):
    table = table.with_columns(pl.Series("amount", [[0.5, 1.5, 2.5], [9.0], [-1.0, -2.0]], dtype=pl.List(pl.Float32)))

    with pytest.raises(DataError, match="list column 'amount' has a different length.*row 2"):
        SequenceDataset.from_table(table, schema)


def test_missing_feature_column(table, schema):
    with pytest.raises(ColumnError, match="lacks column 'mcc'"):
        SequenceDataset.from_table(table.drop("mcc"), schema)


def test_non_list_feature_column(table, schema):
    with pytest.raises(ColumnError, match="column 'amount' is .*expected a list column"):
        SequenceDataset.from_table(table.with_columns(amount=pl.lit(1.0)), schema)


def test_null_list_row(table, schema):
    table = table.with_columns(pl.Series("mcc", [[2, 3, 4], None, [4, 4, 3, 2]], dtype=pl.List(pl.Int32)))

    with pytest.raises(DataError, match="list column 'mcc' has 1 null rows"):
        SequenceDataset.from_table(table, schema)


def test_sliced_and_chunked_tables(table, schema):
    expected = SequenceDataset.from_table(table, schema).collate([1, 2])
    chunked = pl.concat([table.slice(0, 1), table.slice(1, 2)], rechunk=False)

    sliced_batch = SequenceDataset.from_table(table.slice(1, 2), schema).collate([0, 1])
    chunked_batch = SequenceDataset.from_table(chunked, schema).collate([1, 2])

    for batch in (sliced_batch, chunked_batch):
        assert torch.equal(batch.event_time, expected.event_time)
        assert torch.equal(batch.features["amount"], expected.features["amount"])


def test_from_prepared_table(tiny_prepared):
    dataset = SequenceDataset.from_table(tiny_prepared.table, tiny_prepared.schema, target="churned")

    assert len(dataset) == 3
    assert dataset.num_events == 8
    assert sorted(dataset.lengths.tolist()) == [2, 3, 3]


def test_dataloader_with_sampler_visits_every_entity(table, schema):
    dataset = SequenceDataset.from_table(table, schema, target="label")
    sampler = LengthBucketSampler(dataset.lengths, batch_size=2, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate)

    seen = torch.cat([batch.index for batch in loader])

    assert sorted(seen.tolist()) == [0, 1, 2]


def test_flat_arrays_are_arrow_buffers_without_copy(tiny_prepared):
    """Numeric, time and categorical columns are views of the Arrow buffers (zero-copy)."""
    arrow = tiny_prepared.table.to_arrow()
    dataset = SequenceDataset.from_table(arrow, tiny_prepared.schema)
    for name in ["event_time", "mcc", "amount"]:
        assert arrow[name].num_chunks == 1
        buffer = arrow[name].chunk(0).flatten().to_numpy(zero_copy_only=True)
        assert np.shares_memory(dataset.columns[name], buffer), name
    assert dataset.collate([0]).features["mcc"].dtype == torch.int64
