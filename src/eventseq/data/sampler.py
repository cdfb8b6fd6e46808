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

    Args:
        lengths: events per entity, [N].
        batch_size: entities per batch.
        shuffle: False gives deterministic sorted batches (inference).
        pool_batches: how many batches a pool holds (larger = less padding, less randomness).
        drop_last: drop a final incomplete batch.
        seed: base seed.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        pool_batches: int = 50,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.pool_batches = pool_batches
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        count = len(self.lengths)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

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
        for batch in batches:
            if self.drop_last and len(batch) < self.batch_size:
                continue
            yield batch.tolist()
