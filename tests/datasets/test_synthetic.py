from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from eventseq.datasets.synthetic import START_TIME, make_transactions
from eventseq.errors import ConfigError


def _bayes_accuracy(data, events: pl.DataFrame | None = None) -> float:
    """Accuracy of the argmax of the exact posterior, computed on `events` (default: the data's own)."""
    ids, posterior = data.bayes_predictions(events)
    truth = data.labels.sort("entity_id")["label"].to_numpy()
    assert ids.tolist() == data.labels.sort("entity_id")["entity_id"].to_list()
    return float((posterior.argmax(axis=1) == truth).mean())


def _shuffle_within_entities(events: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    """Permute each entity's (mcc, amount, channel) rows; times stay in place, so only the order changes."""
    key = np.random.default_rng(seed).random(events.height)
    shuffled = events.with_columns(pl.Series("key", key)).sort(["entity_id", "key"]).drop("key")
    return shuffled.with_columns(events["event_time"])


def test_same_seed_same_data_other_seed_other_data():
    first, second = make_transactions(50, seed=7), make_transactions(50, seed=7)
    assert_frame_equal(first.events, second.events)
    assert_frame_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.transitions, second.transitions)
    other = make_transactions(50, seed=8)
    assert not other.events.equals(first.events)
    assert not np.array_equal(other.transitions, first.transitions)


def test_events_are_typed_sorted_and_in_range():
    data = make_transactions(80, n_categories=10, seed=1)
    events = data.events
    assert events.schema == pl.Schema(
        {"entity_id": pl.Int64, "event_time": pl.Int64, "mcc": pl.Int64, "channel": pl.Int64, "amount": pl.Float64}
    )
    assert_frame_equal(events, events.sort(["entity_id", "event_time"], maintain_order=True))
    assert events["event_time"].min() > START_TIME
    assert events["mcc"].is_between(0, 9).all() and events["channel"].is_between(0, 3).all()
    assert (events["amount"] > 0).all()
    assert data.labels.columns == ["entity_id", "label", "value"]
    assert data.labels["entity_id"].to_list() == list(range(80))
    assert set(data.labels["label"].unique()) == {0, 1}
    assert set(events["entity_id"].unique()) == set(range(80))


@pytest.mark.parametrize("min_length, max_length", [(20, 150), (3, 7), (5, 5)])
def test_lengths_within_bounds(min_length, max_length):
    data = make_transactions(300, min_length=min_length, max_length=max_length, seed=2)
    lengths = data.events.group_by("entity_id").len()["len"]
    assert lengths.min() >= min_length and lengths.max() <= max_length
    if max_length - min_length >= 4:
        assert lengths.n_unique() > 2  # lengths vary, not all equal to a bound


@pytest.mark.parametrize("n_classes", [2, 3])
def test_bayes_posteriors_are_distributions(n_classes):
    data = make_transactions(100, n_classes=n_classes, seed=3)
    ids, posterior = data.bayes_predictions()
    assert posterior.shape == (100, n_classes)
    assert (posterior >= 0).all()
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0)
    np.testing.assert_allclose(data.transitions.sum(axis=2), 1.0)  # each row of each T_y is a distribution


def test_bayes_accuracy_is_high_but_not_perfect():
    data = make_transactions(2000, seed=12345)
    majority = max(data.labels["label"].mean(), 1 - data.labels["label"].mean())
    accuracy = data.bayes_accuracy()
    assert majority < 0.55
    assert 0.75 < accuracy < 1.0
    assert accuracy == pytest.approx(_bayes_accuracy(data))
    # on a subset of entities: the share of that subset classified correctly
    halves = data.bayes_accuracy(np.arange(1000)), data.bayes_accuracy(np.arange(1000, 2000))
    assert halves[0] != halves[1]
    assert np.mean(halves) == pytest.approx(accuracy)


def test_label_is_planted_in_event_order():
    data = make_transactions(2000, seed=21)
    in_order = _bayes_accuracy(data)
    shuffled = _shuffle_within_entities(data.events)
    # same events per entity, only their order differs
    assert_frame_equal(shuffled.group_by("entity_id").agg(pl.col("mcc").sort()).sort("entity_id"),
                       data.events.group_by("entity_id").agg(pl.col("mcc").sort()).sort("entity_id"))
    assert in_order > 0.8
    assert _bayes_accuracy(data, shuffled) < in_order - 0.2


def test_order_signal_alone_suffices_and_value_signal_alone_does_not():
    order_only = make_transactions(2000, amount_shift=0.0, seed=22)
    assert order_only.bayes_accuracy() > 0.8
    amounts_only = make_transactions(2000, order_strength=0.0, seed=22)
    assert amounts_only.bayes_accuracy() < 0.72
    no_signal = make_transactions(2000, order_strength=0.0, amount_shift=0.0, seed=22)
    assert abs(no_signal.bayes_accuracy() - 0.5) < 0.05


def test_three_classes():
    data = make_transactions(900, n_classes=3, seed=5)
    assert set(data.labels["label"].unique()) == {0, 1, 2}
    assert data.transitions.shape[0] == 3 and data.class_shift.shape == (3,)
    assert data.bayes_accuracy() > 0.6  # well above the 1/3 of guessing


@pytest.mark.parametrize(
    "arguments",
    [
        dict(n_entities=0),
        dict(n_classes=1),
        dict(n_categories=1),
        dict(min_length=0),
        dict(min_length=10, max_length=5),
        dict(order_strength=1.5),
        dict(order_strength=-0.1),
        dict(amount_sigma=0.0),
    ],
)
def test_bad_arguments_are_config_errors(arguments):
    with pytest.raises(ConfigError):
        make_transactions(**{"n_entities": 10, **arguments})
