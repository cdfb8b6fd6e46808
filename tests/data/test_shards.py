from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch

from eventseq.data import load_prepared
from eventseq.data.augment import ViewConfig
from eventseq.data.hashing import hash_split
from eventseq.data.sampler import LengthBucketSampler
from eventseq.data.shards import (
    ShardedDataset,
    ShardIndex,
    read_shard_schema,
    shard_files,
    stream_loader,
)
from eventseq.errors import ColumnError, ConfigError, FileFormatError
from eventseq.objectives.coles import ColesConfig, ColesObjective


def _index(path, valid=0.2, test=0.0, seed=0):
    return ShardIndex(path, read_shard_schema(path), valid, test, seed)


def _stream(index, part="train", batch_size=16, rank=0, world=1, workers=0, **changes):
    return ShardedDataset(index, part, batch_size, target="id_copy", num_workers=workers, rank=rank,
                          world_size=world, **changes)


def _epoch_ids(loader) -> list[np.ndarray]:
    """Entity ids of each batch of one pass (the `id_copy` target)."""
    return [batch.target.numpy() for batch in loader]


# ----------------------------------------------------------------- the stream


def test_one_process_reads_every_entity_of_its_part_once_per_epoch(sharded_dir):
    index = _index(sharded_dir)
    table = pl.read_parquet(sharded_dir / "data.parquet")
    codes = hash_split(table["entity_id"].to_numpy(), 0.2)
    for part, code in (("train", 0), ("valid", 1)):
        stream = _stream(index, part, shuffle=part == "train")
        batches = _epoch_ids(stream_loader(stream))
        seen = np.concatenate(batches)
        assert len(batches) == len(stream)
        assert len(seen) == len(set(seen.tolist()))  # once
        assert set(seen.tolist()) == set(table["entity_id"].to_numpy()[codes == code].tolist())


def test_a_worker_holds_one_shard_at_a_time(sharded_dir, monkeypatch):
    index = _index(sharded_dir)
    reads = []
    read = index.read
    monkeypatch.setattr(index, "read", lambda unit, columns: reads.append(unit.file) or read(unit, columns))
    batches = iter(stream_loader(_stream(index, batch_size=16)))
    next(batches)
    assert len(reads) == 1  # lazily: the first batch needs the first shard only
    rest = list(batches)
    assert sorted(reads) == [0, 1, 2, 3] and len(rest) > 4  # then one shard after the other


def test_shuffling_follows_seed_and_epoch(sharded_dir):
    index = _index(sharded_dir)
    loader = stream_loader(_stream(index, batch_size=8, seed=1), epoch_of=lambda: epoch)
    epoch = 0
    first = _epoch_ids(loader)
    again = _epoch_ids(loader)
    epoch = 1
    second = _epoch_ids(loader)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))
    assert sorted(np.concatenate(first).tolist()) == sorted(np.concatenate(second).tolist())


@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_and_workers_share_the_shards_without_overlap(tmp_path, prepared_dir, make_shards, workers):
    # uneven part files: the ranks can make different numbers of batches, but must run the same number
    sharded = make_shards(prepared_dir, tmp_path / "uneven", [100, 60, 40, 25, 15])
    index = _index(sharded, valid=0.0)
    per_rank = []
    for rank in range(2):
        stream = _stream(index, batch_size=8, rank=rank, world=2, workers=workers, drop_last=True)
        batches = _epoch_ids(stream_loader(stream))
        assert len(batches) == len(stream)
        assert all(len(batch) == 8 for batch in batches)
        per_rank.append(np.concatenate(batches))
    assert len(per_rank[0]) == len(per_rank[1])  # the same number of full batches
    assert not set(per_rank[0].tolist()) & set(per_rank[1].tolist())
    # the plan: each file goes to one (rank, worker) slot; each rank runs the minimum over ranks
    slots, quotas = _stream(index, batch_size=8, world=2, workers=workers, drop_last=True).plan()
    assert sorted(unit.file for slot in slots for unit in slot) == [0, 1, 2, 3, 4]
    assert quotas.reshape(2, -1).sum(axis=1).tolist() == [len(per_rank[0]) // 8] * 2


def test_fewer_files_than_readers_uses_row_groups_or_says_what_to_do(tmp_path, prepared_dir, make_shards):
    sharded = make_shards(prepared_dir, tmp_path / "groups", 1, row_group_size=60)  # one file, 4 row groups
    index = _index(sharded, valid=0.0)
    seen = [np.concatenate(_epoch_ids(stream_loader(_stream(index, rank=rank, world=4)))) for rank in range(4)]
    assert sum(len(ids) for ids in seen) == 240 and len(set(np.concatenate(seen).tolist())) == 240
    one_group = make_shards(prepared_dir, tmp_path / "one", 1)
    with pytest.raises(ConfigError, match=r"1 part file\(s\) with 1 row group\(s\).*2 readers"):
        len(_stream(_index(one_group), rank=0, world=2))


def test_a_single_data_file_is_one_shard(prepared_dir):
    assert shard_files(prepared_dir) == [prepared_dir / "data.parquet"]
    index = ShardIndex(prepared_dir, load_prepared(prepared_dir).schema)
    stream = ShardedDataset(index, None, 64)
    assert sum(batch.batch_size for batch in stream_loader(stream)) == 240


def test_views_come_from_the_objectives_own_collate(sharded_dir):
    """The stream batches through `objective.collate(dataset, train, seed)`: CoLES views per entity."""
    index = _index(sharded_dir)
    views = ViewConfig(split_count=3, min_len=2, max_len=5)
    objective = ColesObjective(index.schema, _FakeEncoder(), ColesConfig(views=views))
    stream = _stream(index, batch_size=10, collate=lambda dataset: objective.collate(dataset, True, 0))
    batch = next(iter(stream_loader(stream)))
    assert batch.batch_size == 30 and batch.index.unique().numel() == 10
    assert int(batch.lengths.max()) <= 5
    assert torch.equal(batch.target[0::3], batch.target[1::3])  # three views of each entity


class _FakeEncoder:
    output_dim = 4


def test_bad_shards_are_named(tmp_path, prepared_dir, make_shards):
    sharded = make_shards(prepared_dir, tmp_path / "bad", 2)
    (sharded / "data.parquet" / "part-00001.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(FileFormatError, match="part-00001.parquet"):
        _index(sharded)
    other = make_shards(prepared_dir, tmp_path / "missing", 2)
    part = other / "data.parquet" / "part-00000.parquet"
    pl.read_parquet(part).drop("mcc").write_parquet(part)
    with pytest.raises(ColumnError, match="part-00000.parquet lacks column 'mcc'"):
        _index(other)
    with pytest.raises(FileFormatError, match="no part-"):
        shard_files(tmp_path)


# ----------------------------------------------------------------- the in-memory sampler under DDP


def test_length_bucket_sampler_deals_equal_disjoint_batches_to_ranks(monkeypatch):
    import eventseq.data.sampler as sampler_module

    lengths = np.arange(1, 104)
    seen = []
    for rank in range(3):
        monkeypatch.setattr(sampler_module, "_world", lambda rank=rank: (rank, 3))
        sampler = LengthBucketSampler(lengths, 10, seed=5)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 11 // 3
        seen.append(np.concatenate(batches))
    everything = np.concatenate(seen)
    assert len(everything) == len(set(everything.tolist()))


# ----------------------------------------------------------------- training from shards


def test_train_and_pretrain_read_shards(sharded_dir, tmp_path, make_train_config):
    from eventseq.saved import load_model
    from eventseq.training import PretrainConfig, pretrain, train

    config = make_train_config(sharded_dir, tmp_path / "train")
    config.data.streaming = True
    result = train(config)
    assert {"val_auroc", "test_auroc"} <= set(result.metrics)
    splits = json.loads((result.run_dir / "splits.json").read_text())
    assert sum(splits["entities"].values()) == 240 and splits["entities"]["test"] > 0
    assert load_model(result.model_dir).kind == "supervised"

    coles = PretrainConfig(output=str(tmp_path / "coles"))
    coles.data.path, coles.data.streaming, coles.data.batch_size = str(sharded_dir), True, 16
    coles.model.sequence_encoder.hidden_size = 8
    coles.coles.views.min_len, coles.coles.views.max_len, coles.coles.views.split_count = 3, 10, 3
    coles.trainer.max_epochs, coles.trainer.progress_bar = 1, False
    pretrained = pretrain(coles)
    assert pretrained.metrics["val_recall_at_2"] > 0
    assert load_model(pretrained.model_dir).kind == "coles"
