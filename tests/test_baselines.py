"""Tests for eventseq.baselines: next-event targets, the metric, and the classical baselines.

Ids: 0 padding, 1 unknown, 2.. the vocabulary ("a" = 2, "b" = 3, "c" = 4, "d" = 5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from eventseq.baselines import (
    InterEventTimeBaseline,
    MarkovBaseline,
    MostFrequentBaseline,
    evaluate_baselines,
    next_event_metrics,
    next_event_targets,
)
from eventseq.data.dataset import SequenceDataset
from eventseq.data.schema import TIME_COLUMN, CategoricalFeature, NumericFeature, Schema
from eventseq.errors import ConfigError, DataError



def make_dataset(
    mcc: list[list[int]], times: list[list[int]] | None = None, max_len: int | None = None
) -> SequenceDataset:
    """Entities with ids 10, 20, ...; `times` default to one event per second from 0."""
    times = times if times is not None else [list(range(len(sequence))) for sequence in mcc]
    lengths = [len(sequence) for sequence in mcc]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    columns = {
        TIME_COLUMN: np.concatenate([np.asarray(t, dtype=np.int64) for t in times]),
        "mcc": np.concatenate([np.asarray(s, dtype=np.int32) for s in mcc]),
        "amount": np.zeros(int(offsets[-1]), dtype=np.float32),
    }
    schema = Schema(
        id_column="client_id",
        time_column="ts",
        time_kind="int",
        features=[CategoricalFeature(name="mcc", vocabulary=["a", "b", "c", "d"]), NumericFeature(name="amount")],
    )
    ids = np.arange(1, len(mcc) + 1, dtype=np.int64) * 10
    return SequenceDataset(columns, offsets, ids, schema, max_len=max_len)


# ----------------------------------------------------------------------------- targets


@pytest.fixture
def three_entities() -> SequenceDataset:
    """4, 1 and 3 events; the third entity has a zero gap (a time tie)."""
    return make_dataset(
        mcc=[[2, 3, 4, 2], [3], [4, 4, 2]],
        times=[[0, 10, 30, 60], [5], [100, 100, 150]],
    )


def test_targets_list_every_position_after_the_first(three_entities):
    targets = next_event_targets(three_entities)

    assert len(targets) == 5  # 3 + 0 + 2: a single-event entity has no target
    assert targets.entity.tolist() == [0, 0, 0, 2, 2]
    assert targets.position.tolist() == [1, 2, 3, 1, 2]
    assert targets.event_index.tolist() == [1, 2, 3, 6, 7]
    assert targets.values["mcc"].tolist() == [3, 4, 2, 4, 2]
    assert targets.previous["mcc"].tolist() == [2, 3, 4, 4, 4]
    assert targets.delta.tolist() == [10.0, 20.0, 30.0, 0.0, 50.0]
    assert targets.delta.dtype == np.float64
    np.testing.assert_array_equal(targets.previous_delta, [np.nan, 10.0, 20.0, np.nan, 0.0])
    assert list(targets.values) == ["mcc"]  # categorical fields only


def test_targets_respect_max_len_truncation(three_entities):
    three_entities.max_len = 2  # keep the 2 most recent events: [30, 60] and [100, 150]

    targets = next_event_targets(three_entities)

    assert targets.entity.tolist() == [0, 2]
    assert targets.position.tolist() == [1, 1]
    assert targets.values["mcc"].tolist() == [2, 2]
    assert targets.previous["mcc"].tolist() == [4, 4]
    assert targets.delta.tolist() == [30.0, 50.0]
    assert np.isnan(targets.previous_delta).all()  # t - 1 is the first kept event


def test_targets_follow_subset_order(three_entities):
    targets = next_event_targets(three_entities.subset(np.array([2, 0])))

    assert targets.entity.tolist() == [0, 0, 1, 1, 1]  # positions within the subset
    assert targets.values["mcc"].tolist() == [4, 2, 3, 4, 2]


def test_targets_reject_decreasing_times():
    dataset = make_dataset(mcc=[[2, 3], [2, 3, 4]], times=[[0, 1], [5, 9, 7]])

    with pytest.raises(DataError, match=r"entity 20 at position 2 \(9 then 7\)"):
        next_event_targets(dataset)


# ----------------------------------------------------------------------------- metric


def test_metrics_on_a_hand_made_case():
    targets = next_event_targets(make_dataset(mcc=[[2, 3, 4, 2]], times=[[0, 10, 20, 50]]))  # truth 3, 4, 2
    topk = {"mcc": np.array([[3, 2], [2, 4], [5, 3]])}

    metrics = next_event_metrics(topk, targets, predicted_delta=np.array([10.0, 20.0, 0.0]), ks=(1, 2))

    assert metrics["mcc_acc@1"] == pytest.approx(1 / 3)
    assert metrics["mcc_acc@2"] == pytest.approx(2 / 3)
    assert metrics["time_mae_seconds"] == pytest.approx((0 + 10 + 30) / 3)
    assert metrics["time_mae_log"] == pytest.approx((0 + math.log(21 / 11) + math.log(31)) / 3)


def test_metrics_without_time_or_fields():
    targets = next_event_targets(make_dataset(mcc=[[2, 3, 4]]))

    assert next_event_metrics({"mcc": np.array([[3], [4]])}, targets, ks=(1,)) == {"mcc_acc@1": 1.0}
    assert set(next_event_metrics({}, targets, np.zeros(2))) == {"time_mae_seconds", "time_mae_log"}


def test_metrics_reject_topk_with_too_few_columns():
    targets = next_event_targets(make_dataset(mcc=[[2, 3, 4]]))

    with pytest.raises(DataError, match=r"topk\['mcc'\] has 1 columns: accuracy@5 needs at least 5"):
        next_event_metrics({"mcc": np.array([[3], [4]])}, targets, ks=(1, 5))


def test_metrics_reject_mismatched_shapes_and_fields():
    targets = next_event_targets(make_dataset(mcc=[[2, 3, 4]]))  # 2 targets

    with pytest.raises(DataError, match=r"topk\['mcc'\] has shape \(3, 1\): expected \[2, k\]"):
        next_event_metrics({"mcc": np.zeros((3, 1), dtype=np.int64)}, targets, ks=(1,))
    with pytest.raises(DataError, match=r"predicted_delta has shape \(3,\): expected \(2,\)"):
        next_event_metrics({}, targets, np.zeros(3))
    with pytest.raises(DataError, match=r"negative or non-finite"):
        next_event_metrics({}, targets, np.array([1.0, -1.0]))
    with pytest.raises(DataError, match=r"'mc' is not a categorical field.*did you mean 'mcc'"):
        next_event_metrics({"mc": np.zeros((2, 1), dtype=np.int64)}, targets, ks=(1,))
    with pytest.raises(DataError, match="no next-event targets"):
        next_event_metrics({}, next_event_targets(make_dataset(mcc=[[2]])), np.zeros(0))


# ----------------------------------------------------------------------------- most frequent


@pytest.fixture
def with_unknowns() -> SequenceDataset:
    """Target values (t >= 1): 3, 3, 1, 1, 1 and 4, 3 -> unknown (1) x3, "b" (3) x3, "c" (4) x1.

    The first events ("d" = 5, "a" = 2) are never targets. Gaps: 10, 10, 20, 40, 80 and 5, 1.
    """
    return make_dataset(
        mcc=[[5, 3, 3, 1, 1, 1], [2, 4, 3]],
        times=[[0, 10, 20, 40, 80, 160], [0, 5, 6]],
    )


def test_most_frequent_ranks_target_values_with_ties_to_smaller_id(with_unknowns):
    topk, predicted_delta = MostFrequentBaseline(k=2).fit(with_unknowns).predict(with_unknowns)

    assert topk["mcc"].tolist() == [[1, 3]] * 7  # unknown and "b" tie at 3; the smaller id first
    assert predicted_delta.tolist() == [10.0] * 7  # median of 1, 5, 10, 10, 20, 40, 80


def test_most_frequent_pads_with_padding_when_fewer_than_k_values(with_unknowns):
    model = MostFrequentBaseline(k=4).fit(with_unknowns)

    assert model.topk_["mcc"].tolist() == [1, 3, 4, 0]  # "a" and "d" only occur at t = 0


# ----------------------------------------------------------------------------- markov


CYCLE_TRAIN = [[2, 3, 4, 2, 3, 4, 2], [3, 4, 2, 3]]  # a -> b -> c -> a


def test_markov_learns_a_deterministic_cycle():
    train = make_dataset(mcc=CYCLE_TRAIN)
    test = make_dataset(mcc=[[4, 2, 3, 4]])

    topk, _ = MarkovBaseline(order=1, k=2).fit(train).predict(test)
    metrics = next_event_metrics(topk, next_event_targets(test), ks=(1, 2))

    assert metrics == {"mcc_acc@1": 1.0, "mcc_acc@2": 1.0}
    # each context has one successor; the second column backs off to the global ranking
    # (a, b, c each follow 3 times: ties go to the smaller id)
    assert topk["mcc"].tolist() == [[2, 3], [3, 2], [4, 2]]


def test_markov_backs_off_to_global_frequencies_for_an_unseen_context():
    train = make_dataset(mcc=CYCLE_TRAIN)
    test = make_dataset(mcc=[[5, 2]])  # "d" never occurs in training

    topk, _ = MarkovBaseline(order=1, k=3).fit(train).predict(test)

    assert topk["mcc"].tolist() == [[2, 3, 4]]


def test_markov_backs_off_to_shorter_contexts():
    train = make_dataset(mcc=CYCLE_TRAIN)
    test = make_dataset(mcc=[[2, 4, 3]])

    topk, _ = MarkovBaseline(order=2, k=3).fit(train).predict(test)

    # t = 1 has one previous value: context "a" -> b, then the global a, c
    # t = 2: (a, c) was never seen; "c" alone -> a, then the global b, c
    assert topk["mcc"].tolist() == [[3, 2, 4], [2, 3, 4]]


def test_second_order_resolves_what_first_order_cannot():
    sequence = make_dataset(mcc=[[2, 2, 3, 2, 2, 3, 2, 2, 3]])  # after a: a or b; after (a, a): always b
    targets = next_event_targets(sequence)

    first, _ = MarkovBaseline(order=1, k=1).fit(sequence).predict(sequence)
    second, _ = MarkovBaseline(order=2, k=1).fit(sequence).predict(sequence)

    assert next_event_metrics(first, targets, ks=(1,))["mcc_acc@1"] == 5 / 8  # "a" always guesses a
    assert next_event_metrics(second, targets, ks=(1,))["mcc_acc@1"] == 1.0


def test_markov_time_is_the_median_gap_given_the_previous_value():
    # gaps after "a": 10, 30 (median 20); after "b": 100, 100; all four: median 65
    train = make_dataset(mcc=[[2, 3, 2, 3, 2]], times=[[0, 10, 110, 140, 240]])
    test = make_dataset(mcc=[[3, 2, 5, 2]])

    _, predicted_delta = MarkovBaseline().fit(train).predict(test)

    assert predicted_delta.tolist() == [100.0, 20.0, 65.0]  # "d" was never a previous value: global


# ----------------------------------------------------------------------------- inter-event time


@pytest.fixture
def crafted_gaps() -> SequenceDataset:
    """Gaps 10, 20, 10, 960 (entity 10) and 7, 2 (entity 20)."""
    return make_dataset(mcc=[[2] * 5, [2] * 3], times=[[0, 10, 30, 40, 1000], [0, 7, 9]])


def test_inter_event_time_median_uses_only_past_gaps(crafted_gaps):
    train = crafted_gaps.subset(np.array([0]))  # training gaps 10, 20, 10, 960: median 15

    topk, predicted_delta = InterEventTimeBaseline().fit(train).predict(crafted_gaps)

    assert topk == {}
    # t = 1 has no past gap (fallback 15); the 960 s gap being predicted at t = 4 is not used
    assert predicted_delta.tolist() == [15.0, 10.0, 15.0, 10.0, 15.0, 7.0]


def test_inter_event_time_mean_and_window(crafted_gaps):
    train = crafted_gaps.subset(np.array([0]))  # mean training gap 250

    _, mean = InterEventTimeBaseline(statistic="mean").fit(train).predict(crafted_gaps)
    _, recent = InterEventTimeBaseline(window=2).fit(train).predict(crafted_gaps)

    np.testing.assert_allclose(mean, [250.0, 10.0, 15.0, 40 / 3, 250.0, 7.0])
    assert recent.tolist() == [15.0, 10.0, 15.0, 15.0, 15.0, 7.0]  # t = 4: median of 20, 10


# ----------------------------------------------------------------------------- bad input


def test_unknown_field_names_the_valid_ones():
    train = make_dataset(mcc=CYCLE_TRAIN)

    with pytest.raises(ConfigError, match=r"field 'amount' is not a categorical field.*categorical fields: \['mcc'\]"):
        MarkovBaseline(fields=["amount"]).fit(train)
    with pytest.raises(ConfigError, match=r"'mc'.*did you mean 'mcc'"):
        MostFrequentBaseline(fields=["mc"]).fit(train)


@pytest.mark.parametrize("model", [MostFrequentBaseline(), MarkovBaseline(), InterEventTimeBaseline()])
def test_predict_before_fit(model):
    with pytest.raises(NotFittedError, match=r"is not fitted yet: call .*fit\(train_dataset\)"):
        model.predict(make_dataset(mcc=CYCLE_TRAIN))


def test_bad_parameters_are_named():
    train = make_dataset(mcc=CYCLE_TRAIN)

    with pytest.raises(ConfigError, match=r"order=0"):
        MarkovBaseline(order=0).fit(train)
    with pytest.raises(ConfigError, match=r"statistic='mode'"):
        InterEventTimeBaseline(statistic="mode").fit(train)
    with pytest.raises(DataError, match="no next-event targets"):
        MostFrequentBaseline().fit(make_dataset(mcc=[[2], [3]]))


# ----------------------------------------------------------------------------- one table


def test_evaluate_baselines_gives_one_row_per_baseline():
    train = make_dataset(mcc=CYCLE_TRAIN)
    test = make_dataset(mcc=[[4, 2, 3, 4]])

    table = evaluate_baselines(train, test, ks=(1, 2))

    assert table["baseline"].to_list() == [
        "most frequent", "markov order 1", "markov order 2", "inter-event time (median)",
    ]
    assert table.columns == ["baseline", "mcc_acc@1", "mcc_acc@2", "time_mae_seconds", "time_mae_log"]
    assert table["mcc_acc@1"].to_list() == [1 / 3, 1.0, 1.0, None]  # most frequent always says "a"
    assert table["time_mae_seconds"].to_list() == [0.0, 0.0, 0.0, 0.0]  # every gap is 1 s


def test_docs_example_runs(tmp_path, monkeypatch, python_block):
    monkeypatch.chdir(tmp_path)
    code = python_block("baselines.md", "# Classical next-event baselines")
    namespace: dict = {}

    exec(compile(code, "docs", "exec"), namespace)

    table = namespace["table"]
    assert table.height == 4
    markov, frequent = table["mcc_acc@1"][1], table["mcc_acc@1"][0]
    assert 0.0 < frequent < markov <= 1.0
