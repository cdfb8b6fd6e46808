"""Batch samplers: length bucketing to cut padding, and plain shuffling."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class LengthBucketSampler(torch.utils.data.Sampler[list[int]]):
    """Yields batches of positions whose sequences have similar lengths.

    Each epoch: shuffle all positions, cut them into pools of `batch_size * pool_batches`,
    sort each pool by length, cut pools into batches, shuffle the batch order. Randomness
    comes from `seed + epoch`, so a fixed seed gives the same batches.

    In a torch.distributed run (DDP) every rank draws the same batches and keeps every
    world-size-th one, the same count on every rank (up to world size - 1 batches are left out),
    so ranks see disjoint entities and run the same number of steps.

    Args:
        lengths: events per entity, [N].
        batch_size: entities per batch.
        shuffle: False gives deterministic sorted batches (inference).
        pool_batches: how many batches a pool holds (larger = less padding, less randomness).
        drop_last: drop a final incomplete batch.
        seed: base seed.
        distributed: deal batches out to the ranks of a torch.distributed run (False: this
            process takes every batch, e.g. when the data is already split per rank).
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        pool_batches: int = 50,
        drop_last: bool = False,
        seed: int = 0,
        distributed: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.pool_batches = pool_batches
        self.drop_last = drop_last
        self.seed = seed
        self.distributed = distributed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> int:
        count = len(self.lengths)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def __len__(self) -> int:
        return self._all_batches() // self._rank_world()[1]

    def _rank_world(self) -> tuple[int, int]:
        return _world() if self.distributed else (0, 1)

    def __iter__(self) -> Iterator[list[int]]:
        count = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            batches = [order[i : i + self.batch_size] for i in range(0, count, self.batch_size)]
        else:
            rng = np.random.default_rng(self.seed + self.epoch)
            order = rng.permutation(count)
            pool = self.batch_size * self.pool_batches
            batches = []
            for start in range(0, count, pool):
                chunk = order[start : start + pool]
                chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
                batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
            rng.shuffle(batches)
        if self.drop_last:
            batches = [batch for batch in batches if len(batch) == self.batch_size]
        rank, world = self._rank_world()
        if world > 1:  # every rank drew the same batches: deal them out, equal counts
            batches = batches[rank : len(batches) // world * world : world]
        for batch in batches:
            yield batch.tolist()


def _world() -> tuple[int, int]:
    """(rank, world size) of the torch.distributed process group, (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
