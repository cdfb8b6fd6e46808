"""Sharded sequence tables, read lazily: training and inference on data larger than memory.

Layout (written by `prepare` with shards or by the Spark engine): a prepare directory holding
`schema.json` and `data.parquet/` as a *directory* of `part-*.parquet` files, each holding whole
entities with the columns of the ordinary sequence table. A single `data.parquet` file works too
(it is one shard).

`ShardIndex` reads only Parquet footers and the id column: how many entities each row group holds
in each split. `ShardedDataset` is a torch IterableDataset over *units* (a part file, or one row
group when there are fewer files than readers):

- units are dealt to ranks and then to DataLoader workers, so each unit is read by exactly one
  worker of one rank per epoch; each worker holds one unit in memory at a time, as an ordinary
  `SequenceDataset`, batched by `LengthBucketSampler` and the objective's own collate — the one
  batching path of eventseq;
- the order of a worker's units and the batches inside a unit are shuffled from (seed, epoch);
- DDP needs every rank to run the same number of batches per epoch (a rank that stops early leaves
  the others waiting in a collective forever): the batches each unit can give are known up front
  from the index, so every rank and worker computes the same plan and each rank stops at the
  minimum over ranks;
- the train / validation / test split is a hash of the entity id (`hash_split`), so an entity is
  always in the same part whatever the shard layout and nothing has to be loaded to split.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from eventseq._io import open_parquet, read_json
from eventseq.data.batch import Batch
from eventseq.data.dataset import SequenceDataset
from eventseq.data.hashing import hash_split
from eventseq.data.sampler import LengthBucketSampler
from eventseq.data.schema import TIME_COLUMN, Schema
from eventseq.data.store import DATA_FILE, SCHEMA_FILE, check_part_schema, schema_in_metadata
from eventseq.errors import ColumnError, ConfigError, EventseqError, FileFormatError, did_you_mean

PART_PATTERN = "part-*.parquet"
PARTS = ("train", "valid", "test")  # split codes 0, 1, 2

CollateFactory = Callable[[SequenceDataset], Callable[[np.ndarray], Batch]]


# ----------------------------------------------------------------------------- layout


def shard_files(path: str | os.PathLike) -> list[Path]:
    """The part files of a sharded sequence table, sorted; a single Parquet file is one part.

    Args:
        path: a prepare directory (with data.parquet as a file or a directory of part files),
            the data.parquet directory itself, or one Parquet file.

    Raises:
        FileFormatError: nothing to read there.
    """
    path = Path(path)
    if path.is_dir() and (path / DATA_FILE).exists():
        path = path / DATA_FILE
    if path.is_file():
        return [path]
    if path.is_dir():
        parts = sorted(path.glob(PART_PATTERN))
        if parts:
            return parts
        raise FileFormatError(f"{path} holds no {PART_PATTERN} files: expected a sharded sequence table")
    raise FileFormatError(f"sequence table not found: {path} (expected a prepare directory or Parquet file)")


def is_sharded(path: str | os.PathLike) -> bool:
    """True when `path` is (or holds) a data.parquet directory of part files."""
    path = Path(path)
    return (path / DATA_FILE).is_dir() or (path.is_dir() and any(path.glob(PART_PATTERN)))


def read_shard_schema(path: str | os.PathLike) -> Schema:
    """The schema of a (sharded) sequence table: schema.json next to data.parquet, else the Parquet metadata."""
    path = Path(path)
    for directory in (path, path.parent):
        if directory.is_dir() and (directory / SCHEMA_FILE).is_file() and (directory / DATA_FILE).exists():
            return Schema.from_dict(read_json(directory / SCHEMA_FILE, "schema"))
    first = shard_files(path)[0]
    schema = schema_in_metadata(open_parquet(first).schema_arrow)
    if schema is None:
        raise FileFormatError(f"{path}: no schema.json and no eventseq schema in {first.name}'s metadata")
    return schema


@dataclass(frozen=True)
class ShardUnit:
    """What one worker reads at a time: some row groups of one part file."""

    file: int  # index into ShardIndex.files
    row_groups: tuple[int, ...]


class ShardIndex:
    """Part files, their row groups, and how many entities each row group holds per split.

    Only Parquet footers are read, plus the id column when a split is asked for (entities are
    assigned to parts by `hash_split` of their id).

    Args:
        path: see `shard_files`.
        schema: the table's schema (names the id, time, feature and target columns).
        valid_fraction, test_fraction, split_seed: the hash split (0, 0: every entity is "train").

    Raises:
        FileFormatError: unreadable part; ColumnError: a part lacks a column of the schema.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        schema: Schema,
        valid_fraction: float = 0.0,
        test_fraction: float = 0.0,
        split_seed: int = 0,
    ) -> None:
        self.path = Path(path)
        self.schema = schema
        self.valid_fraction = valid_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.files = shard_files(path)
        self.row_group_rows: list[np.ndarray] = []  # per file: entities per row group
        self.split_counts: list[np.ndarray] = []  # per file: [row groups, 3] entities per part
        needed = [schema.id_column, TIME_COLUMN, *schema.feature_names]
        for file in self.files:
            parquet = open_parquet(file)
            check_part_schema(file, parquet.schema_arrow, schema, "the schema it is read with")
            columns = parquet.schema_arrow.names
            for name in needed:
                if name not in columns:
                    raise ColumnError(f"{file} lacks column '{name}'{did_you_mean(name, columns)}; has {columns}")
            rows = np.array([parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)],
                            dtype=np.int64)
            self.row_group_rows.append(rows)
            counts = np.zeros((len(rows), len(PARTS)), dtype=np.int64)
            if valid_fraction or test_fraction:
                try:
                    ids = parquet.read(columns=[schema.id_column])[schema.id_column]
                except (pa.ArrowInvalid, OSError) as error:
                    raise FileFormatError(f"cannot read {file}: corrupt or truncated ({error})") from None
                try:
                    codes = self.split_codes(ids)
                except EventseqError as error:
                    raise type(error)(f"{file}: {error}") from None
                group = np.repeat(np.arange(len(rows)), rows)
                flat = np.bincount(group * len(PARTS) + codes, minlength=len(rows) * len(PARTS))
                counts = flat.reshape(-1, len(PARTS))
            else:
                counts[:, 0] = rows
            self.split_counts.append(counts)

    def split_codes(self, ids: pa.Array | pa.ChunkedArray | np.ndarray) -> np.ndarray:
        """Part code (0 train, 1 valid, 2 test) of each id under this index's split."""
        if not (self.valid_fraction or self.test_fraction):
            return np.zeros(len(ids), dtype=np.int8)
        return hash_split(ids, self.valid_fraction, self.test_fraction, self.split_seed)

    @property
    def num_entities(self) -> int:
        return int(sum(rows.sum() for rows in self.row_group_rows))

    def count(self, part: str | None) -> int:
        """Entities in `part` (None: all)."""
        return int(sum(self._unit_count(ShardUnit(f, tuple(range(len(r)))), part)
                       for f, r in enumerate(self.row_group_rows)))

    def units(self, readers: int, strict: bool = True) -> list[ShardUnit]:
        """Whole files when there are at least `readers` of them, else single row groups.

        Raises:
            ConfigError: with `strict`, fewer row groups than readers (ranks x workers).
        """
        whole = [ShardUnit(f, tuple(range(len(rows)))) for f, rows in enumerate(self.row_group_rows) if len(rows)]
        if len(whole) >= readers:  # (a part without rows has no row group, and no unit)
            return whole
        units = [ShardUnit(f, (g,)) for f, rows in enumerate(self.row_group_rows) for g in range(len(rows))]
        if strict and len(units) < readers:
            raise ConfigError(
                f"{self.path}: {len(self.files)} part file(s) with {len(units)} row group(s) in all cannot feed "
                f"{readers} readers (ranks x DataLoader workers, each reading its own shards): write at least "
                f"{readers} part files (or smaller row groups), or lower data.num_workers / the device count"
            )
        return units

    def _unit_count(self, unit: ShardUnit, part: str | None) -> int:
        counts = self.split_counts[unit.file][list(unit.row_groups)]
        return int(counts.sum() if part is None else counts[:, PARTS.index(part)].sum())

    def read(self, unit: ShardUnit, columns: Sequence[str]) -> pa.Table:
        """The `columns` of one unit, read from disk."""
        file = self.files[unit.file]
        try:
            return open_parquet(file).read_row_groups(list(unit.row_groups), columns=list(columns))
        except (pa.ArrowInvalid, OSError) as error:
            raise FileFormatError(f"cannot read {file}: corrupt or truncated ({error})") from None


# ----------------------------------------------------------------------------- the streaming dataset


def distributed_rank(environment: bool = False) -> tuple[int, int]:
    """(rank, world size) of this process: the torch.distributed process group when there is one;
    else, with `environment`, torchrun's RANK / WORLD_SIZE variables (inference needs no process
    group); else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    if environment:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return 0, 1


def batches_in(entities: int, batch_size: int, drop_last: bool) -> int:
    """Batches LengthBucketSampler makes of `entities` (drop_last only applies when more than one batch)."""
    if drop_last and entities > batch_size:
        return entities // batch_size
    return -(-entities // batch_size)


def _worker_quotas(capacity: np.ndarray, total: int) -> np.ndarray:
    """Split `total` batches over workers with `capacity` batches each (sum >= total), proportionally."""
    available = int(capacity.sum())
    if available == 0:
        return np.zeros_like(capacity)
    exact = capacity * total / available
    quota = np.floor(exact).astype(np.int64)
    short = total - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:short]] += 1
    return quota


class ShardedDataset(torch.utils.data.IterableDataset):
    """Batches from a sharded sequence table, one unit (file or row group) in memory per worker.

    Iterate it through `stream_loader` (a DataLoader without automatic batching): each item is
    a Batch. Every rank yields `len(self)` batches per epoch.

    Args:
        index: the shard index (and its hash split).
        part: train, valid or test; None for every entity.
        batch_size: entities per batch.
        collate: builds the collate_fn of one unit's SequenceDataset (an objective's
            `collate(dataset, train, seed)`); None = whole sequences (`dataset.collate`).
        target: target column(s) to attach, as in SequenceDataset.from_table.
        max_len: most recent events kept per entity.
        shuffle: shuffle units and batches from (seed, epoch); False: fixed order, batches sorted
            by length (validation, inference).
        bucket: batch similar lengths together (pools of 50 batches); False: plain shuffling.
        drop_last: drop a unit's last incomplete batch when the unit has more than one batch.
        seed: base seed.
        num_workers: the DataLoader's worker count (units are planned for it).
        rank, world_size: fixed values; None = read from torch.distributed / torchrun when iterated.
    """

    def __init__(
        self,
        index: ShardIndex,
        part: str | None,
        batch_size: int,
        collate: CollateFactory | None = None,
        target: str | Sequence[str] | None = None,
        max_len: int | None = None,
        shuffle: bool = True,
        bucket: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if part is not None and part not in PARTS:
            raise ConfigError(f"part={part!r}: expected one of {PARTS} or None")
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: must be >= 1")
        self.index = index
        self.part = part
        self.batch_size = batch_size
        self.collate = collate
        self.target = target
        self.max_len = max_len
        self.shuffle = shuffle
        self.bucket = bucket
        self.drop_last = drop_last
        self.seed = seed
        self.num_workers = num_workers
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._bound: tuple[int, int] | None = None  # (rank, world) read by the main process for its workers
        schema = index.schema
        targets = [target] if isinstance(target, str) else list(target or [])
        self.columns = list(dict.fromkeys([schema.id_column, TIME_COLUMN, *schema.feature_names, *targets]))

    @property
    def schema(self) -> Schema:
        return self.index.schema

    def set_epoch(self, epoch: int) -> None:
        """Shuffle for this epoch (called by `stream_loader` before each pass)."""
        self.epoch = epoch

    def bind(self) -> tuple[int, int]:
        """Read rank and world size now, in the main process, for the workers about to copy the dataset."""
        self._bound = None
        self._bound = self._rank_world()
        return self._bound

    # -------------------------------------------------------------- the plan
    def plan(self) -> tuple[list[list[ShardUnit]], np.ndarray]:
        """Units of every (rank, worker) slot and each slot's batch quota, [ranks * workers].

        Every process computes the same plan from the index alone. Units go largest first to the
        slot with the fewest batches so far; each rank then runs the minimum over ranks, shared
        among its workers in proportion to what they hold.
        """
        rank, world = self._rank_world()
        workers = max(self.num_workers, 1)
        readers = world * workers
        units = self.index.units(readers)
        capacity = np.array([batches_in(self.index._unit_count(u, self.part), self.batch_size, self.drop_last)
                             for u in units], dtype=np.int64)
        slots: list[list[ShardUnit]] = [[] for _ in range(readers)]
        load = np.zeros(readers, dtype=np.int64)
        for unit in np.argsort(-capacity, kind="stable"):  # a loop over units (files), not rows
            slot = int(np.argmin(load))
            slots[slot].append(units[unit])
            load[slot] += capacity[unit]
        per_rank = load.reshape(world, workers)
        steps = int(per_rank.sum(axis=1).min())
        if steps == 0 and load.any():
            raise ConfigError(
                f"{self.index.path}: the {self.part or 'data'} batches per rank would be "
                f"{per_rank.sum(axis=1).tolist()}, "
                f"and every rank must run as many as the emptiest: write more, evenly sized part files "
                f"or lower data.batch_size"
            )
        quotas = np.concatenate([_worker_quotas(row, steps) for row in per_rank])
        return slots, quotas

    def _rank_world(self) -> tuple[int, int]:
        rank, world = self._bound if self._bound is not None else distributed_rank()
        rank = rank if self.rank is None else self.rank
        world = world if self.world_size is None else self.world_size
        if not 0 <= rank < world:
            raise ConfigError(f"rank {rank} is outside world size {world}")
        return rank, world

    def __len__(self) -> int:
        """Batches this rank yields per epoch (the same on every rank)."""
        _, quotas = self.plan()
        rank, _ = self._rank_world()
        workers = max(self.num_workers, 1)
        return int(quotas[rank * workers : (rank + 1) * workers].sum())

    # -------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        if workers != max(self.num_workers, 1):
            raise ConfigError(
                f"this ShardedDataset was planned for num_workers={self.num_workers} but the DataLoader runs "
                f"{workers} workers: build it with the loader's worker count"
            )
        rank, _ = self._rank_world()
        slot = rank * workers + worker
        slots, quotas = self.plan()
        remaining = int(quotas[slot])
        units = slots[slot]
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, slot]).permutation(len(units))
            units = [units[i] for i in order]
        for unit in units:
            if remaining == 0:
                return
            for batch in self._unit_batches(unit):
                yield batch
                remaining -= 1
                if remaining == 0:
                    return

    def unit_dataset(self, unit: ShardUnit) -> SequenceDataset:
        """The entities of `unit` in this dataset's part, in memory."""
        file = self.index.files[unit.file]
        table = self.index.read(unit, self.columns)
        try:
            dataset = SequenceDataset.from_table(table, self.schema, target=self.target, max_len=self.max_len,
                                                 texts=self._texts())
        except EventseqError as error:  # name the file: row numbers are within it
            raise type(error)(f"{file} (row groups {list(unit.row_groups)}): {error}") from None
        if self.part is not None and (self.index.valid_fraction or self.index.test_fraction):
            codes = self.index.split_codes(table[self.schema.id_column])
            dataset = dataset.subset(np.flatnonzero(codes == PARTS.index(self.part)))
        return dataset

    def _texts(self) -> dict:
        """The text tables of the schema's text fields (texts.parquet of the prepare directory), read once."""
        if not self.schema.text:
            return {}
        if getattr(self, "_text_tables", None) is None:
            from eventseq.data.text import TEXTS_FILE, read_text_tables

            directory = self.index.files[0].parent
            directory = directory.parent if directory.name == DATA_FILE else directory
            self._text_tables = read_text_tables(directory / TEXTS_FILE, self.schema.text)
        return self._text_tables

    def _unit_batches(self, unit: ShardUnit) -> Iterator[Batch]:
        dataset = self.unit_dataset(unit)
        if len(dataset) == 0:
            return
        unit_seed = (self.seed * 1_000_003 + unit.file * 1_009 + unit.row_groups[0]) % 2**32
        sampler = LengthBucketSampler(
            dataset.lengths, self.batch_size, shuffle=self.shuffle, pool_batches=50 if self.bucket else 1,
            drop_last=self.drop_last and len(dataset) > self.batch_size, seed=unit_seed,
            distributed=False,  # the plan already gave this unit to this rank
        )
        sampler.set_epoch(self.epoch)
        collate = dataset.collate if self.collate is None else self.collate(dataset)
        reseed = getattr(collate, "reseed", None)
        if self.shuffle and callable(reseed):  # random views drawn from (seed, epoch, unit), not process state
            reseed([self.seed, self.epoch, unit.file, unit.row_groups[0]])
        for positions in sampler:
            yield collate(np.asarray(positions, dtype=np.int64))


def _as_is(item: Batch) -> Batch:
    return item


class StreamLoader(torch.utils.data.DataLoader):
    """DataLoader over a ShardedDataset: items are whole Batches (no automatic batching).

    Before each pass it fixes the rank and world size in the main process and sets the
    dataset's epoch from `epoch_of()` (e.g. the LightningModule's current epoch), so the
    workers it starts shuffle for the right epoch, also after resuming from a checkpoint.
    """

    def __init__(self, dataset: ShardedDataset, epoch_of: Callable[[], int] | None = None) -> None:
        super().__init__(dataset, batch_size=None, num_workers=dataset.num_workers, collate_fn=_as_is)
        self.epoch_of = epoch_of
        self._passes = 0

    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]
        dataset: ShardedDataset = self.dataset  # type: ignore[assignment]
        dataset.bind()
        dataset.set_epoch(self.epoch_of() if self.epoch_of is not None else self._passes)
        self._passes += 1
        return super().__iter__()


def stream_loader(dataset: ShardedDataset, epoch_of: Callable[[], int] | None = None) -> StreamLoader:
    """A DataLoader yielding the Batches of `dataset` (see StreamLoader)."""
    return StreamLoader(dataset, epoch_of)


__all__ = [
    "ShardIndex", "ShardUnit", "ShardedDataset", "StreamLoader", "stream_loader", "shard_files", "is_sharded",
    "read_shard_schema", "distributed_rank", "batches_in",
]
