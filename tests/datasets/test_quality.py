"""Each generator's optimum against a by-hand computation: one entity at a time, in plain loops over
its events as the events table holds them (an independent path from the vectorized generator)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eventseq.datasets.quality import DAY, QUALITY_SETS, make_quality_set, quality_score
from eventseq.errors import ConfigError


def _entity_events(data, entity: int):
    return data.events.filter(data.events["entity_id"] == entity).sort("event_time")


def _binary_posterior(log_0: float, log_1: float) -> float:
    return 1.0 / (1.0 + math.exp(log_0 - log_1))


def test_markov_posterior_by_hand():
    data = make_quality_set("markov", 30, seed=1)
    transitions = data.params["transitions"]
    for entity in (0, 7, 29):
        categories = _entity_events(data, entity)["mcc"].to_list()
        logs = [sum(math.log(transitions[c][a][b]) for a, b in zip(categories, categories[1:]))
                for c in range(len(transitions))]
        top = max(logs)
        posterior = np.exp(np.array(logs) - top) / np.exp(np.array(logs) - top).sum()
        assert data.optimal[entity] == pytest.approx(posterior, rel=1e-9)
    # the chains share the uniform stationary distribution: counts alone carry nothing
    assert np.allclose(transitions.sum(axis=1), 1.0)


def test_timing_posterior_by_hand():
    data = make_quality_set("timing", 30, seed=2)
    params = data.params
    p_regular = 1 / (1 + params["mean_gap"])
    p_tail = 1 / (1 + params["tail_mean"])
    for entity in (0, 11, 29):
        times = _entity_events(data, entity)["event_time"].to_list()
        days = sorted(t // DAY for t in times)
        logs = [0.0, 0.0]
        for gap in (b - a for a, b in zip(days, days[1:])):
            logs[0] += math.log(p_regular * (1 - p_regular) ** gap)
            logs[1] += math.log(params["burst"]) if gap == 0 else \
                math.log((1 - params["burst"]) * p_tail * (1 - p_tail) ** (gap - 1))
        for t in times:
            for c in (0, 1):
                logs[c] += math.log(params["hour_profiles"][c][(t % DAY) // 3600])
        assert data.optimal[entity] == pytest.approx(_binary_posterior(*logs), rel=1e-9)


def test_drift_posterior_uses_the_recent_events_only():
    data = make_quality_set("drift", 20, seed=3, max_length=60)
    profiles, end = data.params["profiles"], data.params["end"]
    for entity in (0, 5, 19):
        events = _entity_events(data, entity)
        logs = [0.0, 0.0]
        for t, category in zip(events["event_time"].to_list(), events["mcc"].to_list()):
            if end - t < data.params["recent_days"] * DAY:
                logs = [logs[c] + math.log(profiles[c][category]) for c in (0, 1)]
        assert data.optimal[entity] == pytest.approx(_binary_posterior(*logs), rel=1e-9)


def test_sparse_posterior_by_hand():
    data = make_quality_set("sparse", 25, seed=4)
    profiles, means, shift = data.params["profiles"], data.params["category_means"], data.params["amount_shift"]
    for entity in (0, 3, 24):
        events = _entity_events(data, entity)
        assert 1 <= events.height <= 5
        logs = [0.0, 0.0]
        for category, amount in zip(events["mcc"].to_list(), events["amount"].to_list()):
            for c in (0, 1):
                residual = math.log(amount) - means[category] - shift * (c - 0.5)
                logs[c] += math.log(profiles[c][category]) - 0.5 * (residual / 0.7) ** 2
        assert data.optimal[entity] == pytest.approx(_binary_posterior(*logs), rel=1e-9)


def test_trend_posterior_mean_is_the_bayesian_regression_slope():
    data = make_quality_set("trend", 20, seed=5)
    slope_std, noise_std = 0.5, 0.8
    for entity in (0, 9, 19):
        amounts = np.log(_entity_events(data, entity)["amount"].to_numpy())
        s = np.linspace(-1.0, 1.0, len(amounts))
        # slope posterior with the intercept integrated out (s is centred, so it separates)
        expected = (s @ amounts / noise_std**2) / (1 / slope_std**2 + s @ s / noise_std**2)
        assert data.optimal[entity] == pytest.approx(expected, rel=1e-9)


def test_longrange_optimum_is_one_minus_the_label_noise():
    data = make_quality_set("longrange", 4000, seed=6, min_length=20, max_length=40, label_noise=0.1)
    rare = 20  # the rare category's id
    events = data.events.filter(data.events["mcc"] == rare)
    assert events.height == 4000  # exactly one rare event per entity
    accuracy = np.mean((data.optimal > 0.5) == data.truth())
    assert accuracy == pytest.approx(0.9, abs=0.015)
    assert data.optimum() == pytest.approx(0.9, abs=0.015)  # AUROC of a two-valued score: 0.9 as well


def test_taste_posterior_is_calibrated():
    data = make_quality_set("taste", 2000, seed=7)
    assert data.optimal.shape == (2000, 3) and ((data.optimal >= 0) & (data.optimal <= 1)).all()
    truth = data.truth()
    confident = data.optimal > 0.9
    # a posterior probability means what it says: labels are 1 about as often as predicted
    assert np.abs(data.optimal.mean(axis=0) - truth.mean(axis=0)).max() < 0.03
    assert truth[confident].mean() > 0.9
    assert 0.8 < data.optimum() < 1.0


@pytest.mark.parametrize("name", list(QUALITY_SETS))
def test_every_set_is_reproducible_and_well_formed(name):
    first, second = make_quality_set(name, 60, seed=8), make_quality_set(name, 60, seed=8)
    assert first.events.equals(second.events) and first.labels.equals(second.labels)
    assert first.labels.height == 60 and first.events["entity_id"].n_unique() == 60
    assert first.events.sort(["entity_id", "event_time"]).equals(first.events)
    assert first.optimal.shape[0] == 60 and np.isfinite(first.optimal).all()
    other = make_quality_set(name, 60, seed=9)
    assert not other.events.equals(first.events)


def test_scores_and_bad_names():
    assert quality_score("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == 1.0
    assert quality_score("multiclass", np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]])) == 0.5
    with pytest.raises(ConfigError, match="unknown quality set 'markow'.*markov"):
        make_quality_set("markow")
    with pytest.raises(ConfigError, match="min_length"):
        make_quality_set("sparse", 10, min_length=0)
