from __future__ import annotations

import numpy as np
import polars as pl
import torch

from eventseq.data.dataset import SequenceDataset
from eventseq.data.schema import CategoricalFeature, Schema
from eventseq.rec.batches import DAY, GroupCollate, HistoryIndex, delayed_state_index, history_windows

SCHEMA = Schema(id_column="user_id", time_column="timestamp", time_kind="int", features=[
    CategoricalFeature("item_id", [str(i) for i in range(10)]),
    CategoricalFeature("source_type", ["a"]),
    CategoricalFeature("action_type", ["click", "cart", "purchase"]),
])


def history(times_per_user: list[list[int]]) -> SequenceDataset:
    table = pl.DataFrame({
        "user_id": list(range(len(times_per_user))),
        "event_time": times_per_user,
        "item_id": [[2 + i % 10 for i in range(len(t))] for t in times_per_user],
        "source_type": [[2] * len(t) for t in times_per_user],
        "action_type": [[2] * len(t) for t in times_per_user],
    })
    return SequenceDataset.from_table(table, SCHEMA)


def test_state_index_is_the_latest_event_strictly_before():
    index = HistoryIndex(history([[10, 20, 30], [5, 20]]))
    rows = np.array([0, 0, 0, 0, 1, 1, 1, -1])
    times = np.array([10, 11, 30, 99, 5, 21, 1, 50])
    assert index.state_index(rows, times).tolist() == [-1, 0, 1, 2, -1, 1, -1, -1]
    assert index.state_index(rows, times, inclusive=True).tolist() == [0, 0, 2, 2, 0, 1, -1, -1]


def test_delayed_state_is_at_least_the_delay_before_the_request():
    events = [0, 1 * DAY, 10 * DAY, 20 * DAY, 29 * DAY, 30 * DAY - 1]
    index = HistoryIndex(history([events]))
    request = np.array([30 * DAY])
    assert delayed_state_index(index, np.array([0]), request, None).tolist() == [5]  # no delay: 30d - 1s
    # fixed delays: 2 days → the event at day 20 is the latest ≤ day 28; exactly 10 days → day 20 (inclusive)
    two = delayed_state_index(index, np.array([0]), request, np.random.default_rng(0), 2.0, 2.0)
    ten = delayed_state_index(index, np.array([0]), request, np.random.default_rng(0), 10.0, 10.0)
    assert two.tolist() == [3] and ten.tolist() == [3]
    many = delayed_state_index(index, np.zeros(2000, dtype=np.int64), np.full(2000, 30 * DAY),
                               np.random.default_rng(1), 2.0, 32.0)
    chosen = np.asarray(events)[np.maximum(many, 0)]
    assert (chosen[many >= 0] <= 30 * DAY - 2 * DAY).all()
    assert set(many.tolist()) == {-1, 0, 1, 2, 3}  # the whole 2..32 day range is reached


def _groups(user_rows, times, items, labels):
    return pl.DataFrame({"user_row": user_rows, "request_time": times, "source": [2] * len(times),
                         "items": items, "labels": labels},
                        schema={"user_row": pl.Int64, "request_time": pl.Int64, "source": pl.Int64,
                                "items": pl.List(pl.Int64), "labels": pl.List(pl.Int8)})


def test_group_batch_points_at_the_right_state_even_across_windows():
    times = list(range(0, 100 * 10, 10))  # 100 events, 10 s apart
    data = history([times, [5]])
    groups = _groups([0, 0, 1, -1], [1000, 55, 6, 7], [[2, 3], [4, 5, 6], [2, 3], [7, 8]],
                     [[1, 0], [0, 1, 0], [1, 0], [0, 1]])
    batch = GroupCollate(data, groups, max_len=16, delay=False)(np.arange(4))
    assert batch.items.tolist()[1] == [4, 5, 6] and batch.items.tolist()[0] == [2, 3, 0]
    assert batch.mask.sum(1).tolist() == [2, 3, 2, 2]
    assert batch.state_row[3].item() == -1  # a user without history gets the start state
    # every pointed-at window position holds the event the lookup chose
    wanted = [99, 5, 0]  # latest event before t=1000, t=55 and (user 1) t=6
    for group, event in enumerate(wanted):
        row, position = batch.state_row[group].item(), batch.state_position[group].item()
        assert batch.history.event_time[row, position].item() == data.columns["event_time"][
            data.offsets[[0, 0, 1][group]] + event]
        assert position < batch.history.lengths[row].item() <= 16
    # user 0's two states are 94 events apart: two windows
    assert batch.state_row[0].item() != batch.state_row[1].item()


def test_history_windows_keep_the_latest_events_before_the_cutoff():
    data = history([list(range(10)), [3], [1, 2]])
    users, starts, lengths = history_windows(data, np.arange(3), cutoff=8, max_len=5)
    assert users.tolist() == [0, 2]  # user 1 has a single event: nothing to predict
    assert starts.tolist() == [3, 0] and lengths.tolist() == [5, 2]  # events 3..7 (< 8)
    batch = data.collate_views(users, starts, lengths)
    assert batch.event_time[0].tolist() == [3, 4, 5, 6, 7]
    assert torch.equal(batch.lengths, torch.tensor([5, 2]))
