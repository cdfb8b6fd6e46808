"""Views of event sequences for self-supervised objectives (CoLES, VICReg, Barlow Twins, NSP/SOP).

A view is a sub-sequence of one entity: a random slice (absolute length bounds, as in CoLES),
a random crop (length as a share of the sequence), optionally with event dropout. All sampling
is vectorized over the views with NumPy; the result is an ordinary Batch whose `index` names the
entity each view came from, so "same index" means "positive pair".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from eventseq.config import check_options, option
from eventseq.data.batch import Batch
from eventseq.data.dataset import SequenceDataset
from eventseq.errors import ConfigError


@dataclass
class ViewConfig:
    """How views are sampled.

    Attributes:
        split_count: views per entity in a batch.
        mode: slices (lengths in [min_len, max_len] events) or crops (a share of the sequence
            in [crop_min, crop_max]).
        min_len: shortest slice (shorter sequences give their whole length).
        max_len: longest slice.
        crop_min: smallest crop share.
        crop_max: largest crop share.
        event_dropout: probability of dropping each event of a view (0 = off).
    """

    split_count: int = option(5, ge=2)
    mode: str = option("slices", choices=("slices", "crops"))
    min_len: int = option(15, ge=1)
    max_len: int = option(150, ge=1)
    crop_min: float = option(0.5, gt=0, le=1)
    crop_max: float = option(1.0, gt=0, le=1)
    event_dropout: float = option(0.0, ge=0, lt=1)

    def validate(self) -> None:
        check_options(self, "views.")
        if not self.min_len <= self.max_len:
            raise ConfigError(f"views.min_len={self.min_len}, max_len={self.max_len}: need 1 <= min_len <= max_len")
        if not self.crop_min <= self.crop_max:
            raise ConfigError(f"views.crop_min={self.crop_min}, crop_max={self.crop_max}: need 0 < min <= max <= 1")


def sample_views(
    lengths: np.ndarray, config: ViewConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw `split_count` views per entity.

    Args:
        lengths: events per entity, [N].

    Returns:
        (owner [N*k] index into `lengths`, start [N*k] relative to the entity, view length [N*k]).
    """
    owner = np.repeat(np.arange(len(lengths)), config.split_count)
    total = np.asarray(lengths, dtype=np.int64)[owner]
    if config.mode == "slices":
        low = np.minimum(config.min_len, total)
        high = np.minimum(config.max_len, total)
    else:
        low = np.maximum(1, np.ceil(total * config.crop_min)).astype(np.int64)
        high = np.maximum(low, np.floor(total * config.crop_max).astype(np.int64))
    view_length = rng.integers(low, high + 1)
    start = rng.integers(0, total - view_length + 1)
    return owner, start, view_length


def _generator(collate: ViewCollate | PairCollate, positions: np.ndarray) -> np.random.Generator:
    """A collate's random generator: fixed by (seed, batch) with `fixed_seed` (validation: the same
    draws on every pass), else one generator per process seeded from torch's seed (see ViewCollate)."""
    if collate.fixed_seed is not None:  # same views for the same entities on every pass
        return np.random.default_rng([collate.fixed_seed, int(positions.sum()), len(positions)])
    if collate._rng is None:
        collate._rng = np.random.default_rng(torch.initial_seed() % 2**63)
    return collate._rng


class ViewCollate:
    """collate_fn: entity positions → a Batch of `split_count` views per entity.

    Randomness is drawn from a NumPy generator seeded lazily from torch's seed of the current
    process, so `seed_everything(seed, workers=True)` makes the views reproducible, and each
    DataLoader worker draws different views. `fixed_seed` gives the same views on every pass
    (validation).
    """

    def __init__(self, dataset: SequenceDataset, config: ViewConfig, fixed_seed: int | None = None) -> None:
        config.validate()
        self.dataset = dataset
        self.config = config
        self.fixed_seed = fixed_seed
        self._rng: np.random.Generator | None = None

    def reseed(self, entropy: Sequence[int]) -> None:
        """Draw the next random views from a generator seeded by `entropy` (streaming: seed, epoch, shard)."""
        self._rng = np.random.default_rng(list(entropy))

    def generator_state(self) -> dict[str, Any] | None:
        """The state of this process's generator (None before the first draw), for a checkpoint."""
        return None if self._rng is None else self._rng.bit_generator.state

    def restore_generator(self, state: dict[str, Any]) -> None:
        """Go on drawing exactly where `generator_state` left off (a resumed run)."""
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state

    def __call__(self, positions: Sequence[int]) -> Batch:
        positions = np.asarray(positions, dtype=np.int64)
        rng = _generator(self, positions)
        owner, start, length = sample_views(self.dataset.entity_lengths(positions), self.config, rng)
        keep = None
        if self.config.event_dropout > 0:
            keep = rng.random((len(owner), int(length.max()))) >= self.config.event_dropout
        return self.dataset.collate_views(positions[owner], start, length, keep)


class PairCollate:
    """collate_fn for sequence-pair tasks: each entity's sequence is cut at a random point into a
    first part [0, cut) and a second part [cut, length) (its most recent `max_len` events).

    - task="sop" (sequence order): label 1 keeps the order (first, second), label 0 swaps the parts.
    - task="nsp" (next sequence): label 1 keeps the entity's own second part, label 0 takes the second
      part of the next entity in the batch.
    Each label is drawn with probability 1/2. The Batch holds 2N views: rows 0..N-1 the left members
    of the pairs, rows N..2N-1 the right members; `extra["pair_label"]` ([N] float) the labels and
    `extra["pair_valid"]` ([N] bool) False for entities with one event (no cut possible) and for
    NSP negatives when the batch has a single entity.
    """

    def __init__(self, dataset: SequenceDataset, task: str, fixed_seed: int | None = None) -> None:
        if task not in ("nsp", "sop"):
            raise ConfigError(f"pair task {task!r}: expected nsp or sop")
        self.dataset = dataset
        self.task = task
        self.fixed_seed = fixed_seed
        self._rng: np.random.Generator | None = None

    reseed = ViewCollate.reseed
    generator_state = ViewCollate.generator_state
    restore_generator = ViewCollate.restore_generator

    def __call__(self, positions: Sequence[int]) -> Batch:
        positions = np.asarray(positions, dtype=np.int64)
        rng = _generator(self, positions)
        total = self.dataset.entity_lengths(positions)
        usable = total if self.dataset.max_len is None else np.minimum(total, self.dataset.max_len)
        offset = total - usable  # the most recent events, as `collate` keeps them
        valid = usable >= 2
        cut = np.where(valid, rng.integers(1, np.maximum(usable, 2)), usable)  # [N]
        first_start, first_length = offset, cut
        second_start, second_length = np.where(valid, offset + cut, offset), np.where(valid, usable - cut, usable)
        label = rng.random(len(positions)) < 0.5  # True = positive (in order / own continuation)
        left_positions, right_positions = positions.copy(), positions.copy()
        if self.task == "sop":
            left_start = np.where(label, first_start, second_start)
            left_length = np.where(label, first_length, second_length)
            right_start = np.where(label, second_start, first_start)
            right_length = np.where(label, second_length, first_length)
        else:
            donor = np.roll(np.arange(len(positions)), -1)  # the next entity of the batch
            left_start, left_length = first_start, first_length
            right_positions = np.where(label, positions, positions[donor])
            right_start = np.where(label, second_start, second_start[donor])
            right_length = np.where(label, second_length, second_length[donor])
            valid = valid & valid[donor] if len(positions) > 1 else valid & label
        batch = self.dataset.collate_views(
            np.concatenate([left_positions, right_positions]),
            np.concatenate([left_start, right_start]),
            np.concatenate([left_length, right_length]),
        )
        batch.extra["pair_label"] = torch.from_numpy(label.astype(np.float32))
        batch.extra["pair_valid"] = torch.from_numpy(valid)
        return batch
