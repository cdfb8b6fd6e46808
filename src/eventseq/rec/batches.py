"""Batches for the recommender, built with NumPy over the flat history arrays.

- `state_index`: for each (user, time) query, the latest history event before that time — the
  user state a model may use. One `searchsorted` over a (user, time) composite key: no per-user loop.
- `history_windows`: pretraining rows, the last `max_len` positives of each user before a cut-off.
- `GroupCollate`: fine-tuning/validation batches of request groups. Each group gets its state
  index (with a random 2–32 day delay in training); the states of a batch are computed from as few
  history windows as possible: one per user, plus one more whenever a user's groups lie more
  than `max_len` events apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch

from eventseq.data.batch import Batch
from eventseq.data.dataset import SequenceDataset
from eventseq.data.schema import TIME_COLUMN

DAY = 86_400


class HistoryIndex:
    """Sorted (user row, time) keys of every history event, for vectorized state lookups."""

    def __init__(self, history: SequenceDataset) -> None:
        self.offsets = history.offsets  # [U + 1]
        times = history.columns[TIME_COLUMN]
        self.time_origin = int(times.min()) if len(times) else 0
        self.span = int(times.max()) - self.time_origin + 2 * 10**9 if len(times) else 1  # room for query times
        rows = np.repeat(np.arange(len(self.offsets) - 1, dtype=np.int64), np.diff(self.offsets))
        self.keys = rows * self.span + (times - self.time_origin)  # sorted: users in row order, times ascending

    def state_index(self, user_rows: np.ndarray, times: np.ndarray, inclusive: bool = False) -> np.ndarray:
        """Index within its user's history of the latest event before `times` (≤ if inclusive), or -1.

        Args:
            user_rows: history row of each query, [Q] (-1 = a user without history).
            times: query times in seconds, [Q].
            inclusive: count an event exactly at the query time as before it.

        Returns:
            [Q] int64 local event index, -1 where the user has no event before the time.
        """
        user_rows = np.asarray(user_rows, dtype=np.int64)
        # -1 sorts after every key of the previous user and before this one's first event
        times = np.clip(np.asarray(times, dtype=np.int64) - self.time_origin, -1, self.span - 1)
        safe_rows = np.maximum(user_rows, 0)
        queries = safe_rows * self.span + times
        after = np.searchsorted(self.keys, queries, side="right" if inclusive else "left")
        local = after - 1 - self.offsets[safe_rows]
        return np.where((user_rows < 0) | (local < 0), -1, local)


def delayed_state_index(
    index: HistoryIndex, user_rows: np.ndarray, request_times: np.ndarray, rng: np.random.Generator | None,
    min_delay_days: float = 2.0, max_delay_days: float = 32.0,
) -> np.ndarray:
    """State index per group: latest event ≥ Δ before the request, Δ ~ U(min, max) days; no delay if rng is None."""
    if rng is None:
        return index.state_index(user_rows, request_times)
    delays = rng.uniform(min_delay_days * DAY, max_delay_days * DAY, size=len(request_times)).astype(np.int64)
    return index.state_index(user_rows, np.asarray(request_times) - delays, inclusive=True)


@dataclass
class GroupBatch:
    """Request groups with the history windows their user states come from.

    Attributes:
        history: windows of users' positives (a Batch; index = user row).
        state_row: window row of each group's state, [G] (-1 = no history: the start state).
        state_position: position in that window, [G].
        source: encoded request context, [G].
        items: candidate item ids, [G, M] (0 = padding).
        labels: 1 = positive, [G, M] float (0 at padding).
        mask: real candidates, [G, M] bool.
    """

    history: Batch
    state_row: torch.Tensor
    state_position: torch.Tensor
    source: torch.Tensor
    items: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str) -> GroupBatch:
        return GroupBatch(self.history.to(device), *(t.to(device) for t in (
            self.state_row, self.state_position, self.source, self.items, self.labels, self.mask)))

    def __len__(self) -> int:
        return int(self.source.shape[0])


class GroupCollate:
    """Group positions → GroupBatch. Training draws a fresh delay per group on every call."""

    def __init__(self, history: SequenceDataset, groups: pl.DataFrame, max_len: int, delay: bool,
                 min_delay_days: float = 2.0, max_delay_days: float = 32.0, seed: int = 0) -> None:
        self.history = history
        self.index = HistoryIndex(history)
        self.max_len = max_len
        self.delay = delay
        self.min_delay_days, self.max_delay_days = min_delay_days, max_delay_days
        self.rng = np.random.default_rng(seed)
        self.user_rows = groups.get_column("user_row").to_numpy().astype(np.int64)
        self.request_times = groups.get_column("request_time").to_numpy().astype(np.int64)
        self.sources = groups.get_column("source").to_numpy().astype(np.int64)
        items = groups.get_column("items")
        self.item_offsets = np.concatenate([[0], np.cumsum(items.list.len().to_numpy())]).astype(np.int64)
        self.items_flat = items.explode().to_numpy().astype(np.int64)
        self.labels_flat = groups.get_column("labels").explode().to_numpy().astype(np.float32)

    def __len__(self) -> int:
        return len(self.user_rows)

    def generator_state(self) -> dict[str, Any]:
        """The state of the delay generator, for a checkpoint (eventseq.training.callbacks.RandomState)."""
        return self.rng.bit_generator.state

    def restore_generator(self, state: dict[str, Any]) -> None:
        """Go on drawing delays exactly where `generator_state` left off (a resumed run)."""
        self.rng.bit_generator.state = state

    def group_sizes(self) -> np.ndarray:
        return np.diff(self.item_offsets)

    def __call__(self, positions: list[int] | np.ndarray) -> GroupBatch:
        positions = np.asarray(positions, dtype=np.int64)
        users = self.user_rows[positions]
        state = delayed_state_index(self.index, users, self.request_times[positions],
                                    self.rng if self.delay else None, self.min_delay_days, self.max_delay_days)
        history, state_row, state_position = self._windows(users, state)
        starts, sizes = self.item_offsets[positions], np.diff(self.item_offsets)[positions]
        width = int(sizes.max())
        steps = np.arange(width)
        mask = steps[None, :] < sizes[:, None]  # [G, M]
        flat = np.where(mask, starts[:, None] + steps[None, :], 0)
        items = np.where(mask, self.items_flat[flat], 0)
        labels = np.where(mask, self.labels_flat[flat], 0.0).astype(np.float32)
        return GroupBatch(
            history=history,
            state_row=torch.from_numpy(state_row),
            state_position=torch.from_numpy(state_position),
            source=torch.from_numpy(self.sources[positions]),
            items=torch.from_numpy(items),
            labels=torch.from_numpy(labels),
            mask=torch.from_numpy(mask),
        )

    def _windows(self, users: np.ndarray, state: np.ndarray) -> tuple[Batch, np.ndarray, np.ndarray]:
        """History windows (≤ max_len events) that hold every needed state; rows per (user, block)."""
        has_state = state >= 0
        latest = np.full(len(self.history.offsets) - 1, -1, dtype=np.int64)
        np.maximum.at(latest, users[has_state], state[has_state])  # newest needed state per user
        block = np.where(has_state, (latest[np.maximum(users, 0)] - state) // self.max_len, 0)
        keys = np.where(has_state, users * (2**20) + block, -1)
        unique_keys, window_of_group = np.unique(keys, return_inverse=True)
        real = unique_keys >= 0
        window_users = unique_keys[real] // (2**20)
        window_blocks = unique_keys[real] % (2**20)
        ends = latest[window_users] - window_blocks * self.max_len  # inclusive last event
        starts = np.maximum(ends - self.max_len + 1, 0)
        if len(window_users) == 0:  # no group has a state: a one-event dummy window keeps shapes valid
            window_users, starts, ends = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(1, np.int64)
        history = self.history.collate_views(window_users, starts, ends - starts + 1)
        shift = int((~real).sum())  # the -1 key sorts first
        state_row = np.where(has_state, window_of_group - shift, -1)
        state_position = np.where(has_state, state - starts[np.maximum(state_row, 0)], 0)
        return history, state_row.astype(np.int64), state_position.astype(np.int64)


def history_windows(
    history: SequenceDataset, users: np.ndarray, cutoff: int | None, max_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The last `max_len` events of each user before `cutoff` (None = all): (users, starts, lengths).

    Users with fewer than two events before the cut-off are left out (nothing to predict).
    """
    users = np.asarray(users, dtype=np.int64)
    if cutoff is None:
        counts = history.offsets[users + 1] - history.offsets[users]
    else:
        counts = HistoryIndex(history).state_index(users, np.full(len(users), cutoff)) + 1
    keep = counts >= 2
    users, counts = users[keep], counts[keep]
    lengths = np.minimum(counts, max_len)
    return users, counts - lengths, lengths
