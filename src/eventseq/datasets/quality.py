"""Generators of the quality suite: one kind of signal each, with the best score computable.

Real event data carries its label in many ways: in the order of events, in their timing, in a
stable taste, in what changed lately, in one rare event long ago, in the dynamics of amounts, or in
a handful of events only. Each generator here plants one of these, and nothing else, in an otherwise
uninformative transaction log, and returns the exact Bayes posterior (or posterior mean) of every
entity's target under the generator's true parameters: the optimum any model can reach on it.

Every generator is vectorized over entities (Python loops only over time steps or classes) and
returns a `QualitySet`. `QUALITY_SETS` names them for the quality benchmark (benchmarks/quality.py)
and for tests and tutorials.

| name      | signal                                                    | task                 |
|-----------|-----------------------------------------------------------|----------------------|
| markov    | class-specific transitions; the same category counts      | multiclass (4)       |
| timing    | bursty vs regular gaps, hour of day                       | binary               |
| taste     | a stable per-entity mixture over 40 categories            | multilabel (3)       |
| drift     | the last 30 days differ; old events are decoys (to 2,000) | binary               |
| longrange | where in the history one rare event happened              | binary               |
| trend     | the slope of log-amounts over the history                 | regression           |
| sparse    | 1–5 events per entity                                     | binary               |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from eventseq.errors import ConfigError

START_TIME = 1_672_531_200  # 2023-01-01 UTC, seconds
DAY = 86_400
QUALITY_TASKS = ("binary", "multiclass", "multilabel", "regression")
# the score of each task in the suite (higher is better for all four)
QUALITY_METRICS = {"binary": "auroc", "multiclass": "accuracy", "multilabel": "macro_auroc", "regression": "r2"}


@dataclass
class QualitySet:
    """One generated data set of the quality suite.

    Attributes:
        name: the generator's name (a key of QUALITY_SETS).
        signal: what carries the label, in words.
        events: entity_id, event_time (int seconds), mcc (categorical), amount (numeric) and,
            for some sets, more fields (named in `columns`).
        labels: entity_id and the target column(s), one row per entity, sorted by entity_id.
        columns: PrepareConfig arguments for `events` (id, time, fields, transforms, targets).
        task: binary, multiclass, multilabel or regression.
        optimal: the Bayes-optimal prediction per entity (rows as `labels`): P(y=1) [N] for binary,
            the posterior [N, C] for multiclass, P(y_l=1) [N, L] for multilabel, the posterior mean
            [N] for regression.
    """

    name: str
    signal: str
    events: pl.DataFrame
    labels: pl.DataFrame
    columns: dict[str, Any]
    task: str
    optimal: np.ndarray
    targets: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # the generator's true parameters

    @property
    def metric(self) -> str:
        return QUALITY_METRICS[self.task]

    def truth(self, entity_ids: np.ndarray | None = None) -> np.ndarray:
        """The targets of `entity_ids` (all if None): [N] or, for multilabel, [N, L]."""
        rows = self._rows(entity_ids)
        values = self.labels.select(self.targets).to_numpy()[rows]
        return values if self.task == "multilabel" else values[:, 0]

    def optimum(self, entity_ids: np.ndarray | None = None) -> float:
        """The score of the Bayes-optimal prediction on these entities (all if None)."""
        rows = self._rows(entity_ids)
        return quality_score(self.task, self.truth(entity_ids), self.optimal[rows])

    def _rows(self, entity_ids: np.ndarray | None) -> np.ndarray:
        ids = self.labels["entity_id"].to_numpy()
        if entity_ids is None:
            return np.arange(len(ids))
        rows = np.searchsorted(ids, entity_ids)
        if (rows >= len(ids)).any() or (ids[np.minimum(rows, len(ids) - 1)] != entity_ids).any():
            raise ConfigError(f"entity ids not in the '{self.name}' set")
        return rows


def quality_score(task: str, truth: np.ndarray, predicted: np.ndarray) -> float:
    """The suite's score of `predicted` against `truth` (see QUALITY_METRICS).

    Args:
        task: binary (predicted = P(y=1) [N]), multiclass (class scores [N, C] or labels [N]),
            multilabel (P(y_l=1) [N, L]) or regression (values [N]; the score is R²).
    """
    from sklearn.metrics import r2_score, roc_auc_score

    if task == "binary":
        return float(roc_auc_score(truth, predicted))
    if task == "multiclass":
        labels = predicted.argmax(axis=1) if predicted.ndim == 2 else predicted
        return float(np.mean(labels == truth))
    if task == "multilabel":
        return float(np.mean([roc_auc_score(truth[:, j], predicted[:, j]) for j in range(truth.shape[1])]))
    if task == "regression":
        return float(r2_score(truth, predicted))
    raise ConfigError(f"task={task!r}: expected one of {list(QUALITY_TASKS)}")


# ----------------------------------------------------------------------------- shared pieces
def _check(n_entities: int, min_length: int, max_length: int) -> None:
    if n_entities < 2 or not 1 <= min_length <= max_length:
        raise ConfigError(f"need n_entities >= 2 and 1 <= min_length <= max_length "
                          f"(got {n_entities}, {min_length}, {max_length})")


def _draw(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One category per row of `probabilities` [..., K] by inverse CDF: [...]."""
    cumulative = probabilities.cumsum(axis=-1)
    draws = (rng.random(probabilities.shape[:-1])[..., None] > cumulative).sum(axis=-1)
    return np.minimum(draws, probabilities.shape[-1] - 1)  # float round-off at the top


def _flat(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(entity of every event, position of every event in its entity) for these lengths."""
    entity = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return entity, np.arange(len(entity)) - starts[entity]


def _increasing_times(rng: np.random.Generator, lengths: np.ndarray, mean_gap: float,
                      span_days: float = 365) -> np.ndarray:
    """Strictly increasing event times per entity (exponential gaps of at least one second)."""
    entity, position = _flat(lengths)
    gaps = np.maximum(rng.exponential(mean_gap, size=len(entity)).astype(np.int64), 1)
    totals = np.cumsum(gaps)
    first_event = np.arange(len(entity)) - position  # index of each event's entity's first event
    offsets = totals - totals[first_event] + gaps[first_event]
    first = rng.integers(0, int(span_days * DAY), size=len(lengths))
    return START_TIME + first[entity] + offsets


def _noise_amounts(rng: np.random.Generator, category: np.ndarray, n_categories: int) -> np.ndarray:
    """Amounts that depend on the category only (no label information)."""
    means = np.random.default_rng(12345).normal(3.0, 0.8, size=n_categories)
    return np.round(np.exp(rng.normal(means[category], 0.7)), 2).clip(0.01)


def _frame(entity: np.ndarray, times: np.ndarray, **columns: np.ndarray) -> pl.DataFrame:
    frame = pl.DataFrame({"entity_id": entity.astype(np.int64), "event_time": times.astype(np.int64),
                          **columns})
    return frame.sort(["entity_id", "event_time"], maintain_order=True)


def _columns(targets: dict[str, str], categorical: list[str] | None = None, numeric: list[str] | None = None
             ) -> dict[str, Any]:
    numeric = numeric if numeric is not None else ["amount"]
    return dict(id_column="entity_id", time_column="event_time",
                categorical=categorical if categorical is not None else ["mcc"], numeric=numeric,
                numeric_transform={name: "log_standardize" for name in numeric}, targets=targets)


def _posterior(log_likelihoods: np.ndarray) -> np.ndarray:
    """Posterior [N, C] from log-likelihoods [N, C] under a uniform prior."""
    shifted = log_likelihoods - log_likelihoods.max(axis=1, keepdims=True)
    posterior = np.exp(shifted)
    return posterior / posterior.sum(axis=1, keepdims=True)


def _class_labels(name: str, labels: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"entity_id": np.arange(len(labels), dtype=np.int64), name: labels.astype(np.int64)})


# ----------------------------------------------------------------------------- generators
def make_markov(n_entities: int = 2000, seed: int = 0, n_classes: int = 4, n_categories: int = 12,
                min_length: int = 20, max_length: int = 200, order_strength: float = 0.1) -> QualitySet:
    """Order and transitions: each class has its own Markov chain over categories, all with the
    same (uniform) stationary distribution, so category counts say nothing in expectation.

    T_y = (1 - s)·U + s·P_y with U uniform and P_y a class-specific permutation ("after i comes
    σ_y(i)", self-repeats where σ_y has fixed points): doubly stochastic, hence uniform stationary.
    The first event is uniform. Target `label` (multiclass).
    """
    _check(n_entities, min_length, max_length)
    rng = np.random.default_rng(seed)
    uniform = np.full((n_categories, n_categories), 1.0 / n_categories)
    transitions = np.stack([(1 - order_strength) * uniform
                            + order_strength * np.eye(n_categories)[rng.permutation(n_categories)]
                            for _ in range(n_classes)])  # [C, K, K]
    labels = rng.integers(0, n_classes, size=n_entities)
    lengths = rng.integers(min_length, max_length + 1, size=n_entities)
    width = int(lengths.max())
    states = np.empty((n_entities, width), dtype=np.int64)
    states[:, 0] = rng.integers(0, n_categories, size=n_entities)
    for step in range(1, width):
        states[:, step] = _draw(rng, transitions[labels, states[:, step - 1]])
    valid = np.arange(width)[None, :] < lengths[:, None]
    entity, _ = _flat(lengths)
    category = states[valid]
    # log-likelihood per class: the transitions after the first event (the first is uniform for all)
    log_likelihoods = np.zeros((n_entities, n_classes))
    pair_valid = valid[:, 1:]
    previous, current = states[:, :-1], states[:, 1:]
    for c in range(n_classes):
        steps = np.log(transitions[c][previous, current]) * pair_valid
        log_likelihoods[:, c] = steps.sum(axis=1)
    events = _frame(entity, _increasing_times(rng, lengths, DAY / 2), mcc=category,
                    amount=_noise_amounts(rng, category, n_categories))
    return QualitySet("markov", "order: class-specific transitions, equal category frequencies", events,
                      _class_labels("label", labels), _columns({"label": "multiclass"}), "multiclass",
                      _posterior(log_likelihoods), ["label"], {"transitions": transitions})


def _geometric_log_pmf(gaps: np.ndarray, mean: float) -> np.ndarray:
    """log P(gap) of a geometric distribution on {0, 1, ...} with this mean."""
    p = 1.0 / (1.0 + mean)
    return np.log(p) + gaps * np.log1p(-p)


def make_timing(n_entities: int = 2000, seed: int = 0, min_length: int = 10, max_length: int = 100,
                burst: float = 0.4, hour_shift: float = 0.06) -> QualitySet:
    """Timing: class 1 is bursty (several events on one day, then longer pauses) and shops later in
    the day; class 0 is regular. Both have the same mean gap (2 days), the same categories and amounts.

    Day gaps: class 0 geometric on {0, 1, ...} with mean 2; class 1 0 with probability `burst`, else
    1 + a geometric whose mean makes the overall mean 2 as well. Hour of day:
    a mixture of a shared daytime profile and a class-specific one (weight `hour_shift`). Target
    `label` (binary).
    """
    _check(n_entities, min_length, max_length)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n_entities)
    lengths = rng.integers(min_length, max_length + 1, size=n_entities)
    entity, position = _flat(lengths)
    bursty = labels[entity] == 1
    mean_gap = 2.0
    tail_mean = mean_gap / (1 - burst) - 1.0  # mean of the geometric part after the leading 1 day
    regular_gaps = rng.geometric(1.0 / (1.0 + mean_gap), size=len(entity)) - 1
    tail_gaps = 1 + rng.geometric(1.0 / (1.0 + tail_mean), size=len(entity)) - 1
    burst_gaps = np.where(rng.random(len(entity)) < burst, 0, tail_gaps)
    gaps = np.where(bursty, burst_gaps, regular_gaps)
    gaps[position == 0] = 0  # the first event starts the entity's clock
    days = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[np.cumsum(lengths) - lengths], lengths)
    hours_of_day = np.arange(24)
    daytime = np.exp(-0.5 * ((hours_of_day - 13) / 3.5) ** 2)
    evening = np.exp(-0.5 * ((hours_of_day - 20) / 2.0) ** 2)
    morning = np.exp(-0.5 * ((hours_of_day - 8) / 2.0) ** 2)
    profiles = np.stack([(1 - hour_shift) * daytime / daytime.sum() + hour_shift * morning / morning.sum(),
                         (1 - hour_shift) * daytime / daytime.sum() + hour_shift * evening / evening.sum()])
    hours = _draw(rng, profiles[labels[entity]])
    start_day = rng.integers(0, 300, size=n_entities)
    seconds = rng.integers(0, 3600, size=len(entity))
    times = START_TIME + (start_day[entity] + days) * DAY + hours * 3600 + seconds

    # exact log-likelihoods: the gaps after the first event, and every event's hour
    later = position > 0
    log_regular = _geometric_log_pmf(gaps, mean_gap)
    log_burst = np.where(gaps == 0, np.log(burst), np.log1p(-burst) + _geometric_log_pmf(gaps - 1, tail_mean))
    log_likelihoods = np.zeros((n_entities, 2))
    for c, gap_term in enumerate((log_regular, log_burst)):
        step = np.where(later, gap_term, 0.0) + np.log(profiles[c][hours])
        log_likelihoods[:, c] = np.bincount(entity, weights=step, minlength=n_entities)
    category = _draw(rng, np.full((len(entity), 10), 0.1))
    events = _frame(entity, times, mcc=category, amount=_noise_amounts(rng, category, 10))
    return QualitySet("timing", "timing: bursty vs regular gaps, hour of day", events, _class_labels("label", labels),
                      _columns({"label": "binary"}), "binary", _posterior(log_likelihoods)[:, 1], ["label"],
                      {"burst": burst, "tail_mean": tail_mean, "mean_gap": mean_gap, "hour_profiles": profiles})


def make_taste(n_entities: int = 2000, seed: int = 0, n_categories: int = 40, n_labels: int = 3,
               min_length: int = 10, max_length: int = 120, concentration: float = 20.0,
               posterior_samples: int = 400) -> QualitySet:
    """A stable latent taste: each entity's categories are drawn from its own mixture
    θ ~ Dirichlet(concentration · base); label l is 1 when w_l · θ exceeds its median (w_l random).

    The optimum is P(y_l = 1 | counts) under the Dirichlet posterior, estimated with
    `posterior_samples` draws per entity. Targets `like_0` .. `like_{L-1}` (multilabel).
    """
    _check(n_entities, min_length, max_length)
    rng = np.random.default_rng(seed)
    base = rng.dirichlet(np.full(n_categories, 2.0))
    prior = concentration * base  # Dirichlet parameters: smaller concentration = more varied tastes
    taste = rng.dirichlet(prior, size=n_entities)  # [N, K]
    weights = rng.normal(size=(n_labels, n_categories))
    reference = rng.dirichlet(prior, size=20_000) @ weights.T  # the thresholds: medians under the prior
    thresholds = np.median(reference, axis=0)
    labels = (taste @ weights.T > thresholds).astype(np.int64)  # [N, L]
    lengths = rng.integers(min_length, max_length + 1, size=n_entities)
    entity, _ = _flat(lengths)
    category = _draw(rng, taste[entity])
    counts = np.zeros((n_entities, n_categories))
    np.add.at(counts, (entity, category), 1.0)
    optimal = np.zeros((n_entities, n_labels))
    sampler = np.random.default_rng(seed + 1)
    for start in range(0, n_entities, 500):  # bounded memory: 500 entities x samples x K at a time
        alpha = prior[None, :] + counts[start:start + 500]
        gamma = sampler.gamma(np.repeat(alpha[:, None, :], posterior_samples, axis=1))  # [n, S, K]
        samples = gamma / gamma.sum(axis=2, keepdims=True)
        optimal[start:start + 500] = ((samples @ weights.T) > thresholds).mean(axis=1)
    events = _frame(entity, _increasing_times(rng, lengths, 2 * DAY), mcc=category,
                    amount=_noise_amounts(rng, category, n_categories))
    names = [f"like_{l}" for l in range(n_labels)]
    label_frame = pl.DataFrame({"entity_id": np.arange(n_entities, dtype=np.int64),
                                **{name: labels[:, l] for l, name in enumerate(names)}})
    return QualitySet("taste", "a stable latent taste over many categories", events, label_frame,
                      _columns({name: "multilabel" for name in names}), "multilabel", optimal, names)


def _shifted_profiles(rng: np.random.Generator, n_categories: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    base = rng.dirichlet(np.full(n_categories, 3.0))
    direction = rng.normal(size=n_categories)
    profiles = np.stack([base * np.exp(-strength * direction), base * np.exp(strength * direction)])
    return base, profiles / profiles.sum(axis=1, keepdims=True)


def make_drift(n_entities: int = 2000, seed: int = 0, n_categories: int = 20, min_length: int = 20,
               max_length: int = 2000, recent_days: int = 30, history_days: int = 360,
               strength: float = 0.25) -> QualitySet:
    """Drift: the label shows only in the last `recent_days` of a `history_days` history (all
    entities end on the same day). Recent categories follow the class's profile; older ones follow
    the profile of an unrelated random class, a decoy for whole-history counts. Lengths up to 2,000.
    Target `label` (binary).
    """
    _check(n_entities, min_length, max_length)
    rng = np.random.default_rng(seed)
    _, profiles = _shifted_profiles(rng, n_categories, strength)
    labels = rng.integers(0, 2, size=n_entities)
    decoys = rng.integers(0, 2, size=n_entities)
    lengths = np.exp(rng.uniform(np.log(min_length), np.log(max_length), size=n_entities)).astype(np.int64)
    lengths = np.clip(lengths, min_length, max_length)
    entity, _ = _flat(lengths)
    end = START_TIME + 400 * DAY
    ages = rng.uniform(0, history_days * DAY, size=len(entity)).astype(np.int64)  # seconds before the end
    recent = ages < recent_days * DAY
    category = np.where(recent, _draw(rng, profiles[labels[entity]]), _draw(rng, profiles[decoys[entity]]))
    log_likelihoods = np.zeros((n_entities, 2))
    for c in range(2):
        log_likelihoods[:, c] = np.bincount(entity, weights=np.log(profiles[c][category]) * recent,
                                            minlength=n_entities)
    events = _frame(entity, end - ages, mcc=category, amount=_noise_amounts(rng, category, n_categories))
    return QualitySet("drift", "drift: only the last 30 days carry the label", events, _class_labels("label", labels),
                      _columns({"label": "binary"}), "binary", _posterior(log_likelihoods)[:, 1], ["label"],
                      {"profiles": profiles, "recent_days": recent_days, "end": end})


def make_longrange(n_entities: int = 2000, seed: int = 0, n_categories: int = 20, min_length: int = 100,
                   max_length: int = 500, label_noise: float = 0.1) -> QualitySet:
    """Long range: every entity has exactly one event of a rare category (id `n_categories`);
    for class 1 it is among the first 10% of the history, for class 0 between 40% and 60%. The
    other events are noise; the count of the rare event is 1 for everyone. A share `label_noise`
    of the labels is flipped, so the optimum is 1 - label_noise (accuracy). Target `label` (binary).
    """
    _check(n_entities, min_length, max_length)
    if not 0.0 <= label_noise < 0.5:
        raise ConfigError(f"label_noise={label_noise}: expected 0 <= label_noise < 0.5")
    rng = np.random.default_rng(seed)
    early = rng.integers(0, 2, size=n_entities)  # where the rare event is: 1 = early
    lengths = rng.integers(min_length, max_length + 1, size=n_entities)
    low = np.where(early == 1, 0.0, 0.4)
    high = np.where(early == 1, 0.1, 0.6)
    rare_at = np.floor(lengths * rng.uniform(low, high)).astype(np.int64)
    entity, position = _flat(lengths)
    category = _draw(rng, np.full((len(entity), n_categories), 1.0 / n_categories))
    category = np.where(position == rare_at[entity], n_categories, category)
    flipped = rng.random(n_entities) < label_noise
    labels = np.where(flipped, 1 - early, early)
    optimal = np.where(early == 1, 1 - label_noise, label_noise)
    events = _frame(entity, _increasing_times(rng, lengths, DAY / 3), mcc=category,
                    amount=_noise_amounts(rng, category, n_categories + 1))
    return QualitySet("longrange", "long range: when one rare event happened", events, _class_labels("label", labels),
                      _columns({"label": "binary"}), "binary", optimal.astype(np.float64), ["label"])


def make_trend(n_entities: int = 2000, seed: int = 0, min_length: int = 10, max_length: int = 100,
               slope_std: float = 0.5, noise_std: float = 0.8) -> QualitySet:
    """Numeric dynamics: log-amounts follow μ + b·s + ε with s from -1 (first event) to 1 (last),
    μ ~ N(3, 1) per entity, ε ~ N(0, noise_std²); the target is the slope b ~ N(0, slope_std²).
    Levels (mean amount) carry nothing; the spread carries |b| only. The optimum is the posterior
    mean of b (exact: with s centred, b's posterior does not depend on μ). Target `slope` (regression).
    """
    _check(n_entities, max(min_length, 2), max_length)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(max(min_length, 2), max_length + 1, size=n_entities)
    entity, position = _flat(lengths)
    s = 2.0 * position / (lengths[entity] - 1) - 1.0
    level = rng.normal(3.0, 1.0, size=n_entities)
    slope = rng.normal(0.0, slope_std, size=n_entities)
    log_amount = level[entity] + slope[entity] * s + rng.normal(0.0, noise_std, size=len(entity))
    amount = np.round(np.exp(log_amount), 2).clip(0.01)
    observed = np.log(amount)  # what the data holds (rounded to cents)
    precision = 1.0 / slope_std**2 + np.bincount(entity, weights=s * s, minlength=n_entities) / noise_std**2
    posterior_mean = np.bincount(entity, weights=s * observed, minlength=n_entities) / noise_std**2 / precision
    category = _draw(rng, np.full((len(entity), 10), 0.1))
    events = _frame(entity, _increasing_times(rng, lengths, DAY), mcc=category, amount=amount)
    labels = pl.DataFrame({"entity_id": np.arange(n_entities, dtype=np.int64), "slope": slope})
    return QualitySet("trend", "numeric dynamics: the trend of amounts, not their level", events, labels,
                      _columns({"slope": "regression"}), "regression", posterior_mean, ["slope"])


def make_sparse(n_entities: int = 2000, seed: int = 0, n_categories: int = 15, min_length: int = 1,
                max_length: int = 5, strength: float = 0.5, amount_shift: float = 0.3) -> QualitySet:
    """Short sparse histories (1–5 events, like CDNOW): categories from a class-specific profile,
    log-amounts shifted by ±amount_shift/2 per class. Target `label` (binary)."""
    _check(n_entities, min_length, max_length)
    rng = np.random.default_rng(seed)
    _, profiles = _shifted_profiles(rng, n_categories, strength)
    means = rng.normal(3.0, 0.8, size=n_categories)
    labels = rng.integers(0, 2, size=n_entities)
    lengths = rng.integers(min_length, max_length + 1, size=n_entities)
    entity, _ = _flat(lengths)
    category = _draw(rng, profiles[labels[entity]])
    shift = amount_shift * (labels[entity] - 0.5)
    amount = np.round(np.exp(rng.normal(means[category] + shift, 0.7)), 2).clip(0.01)
    observed = np.log(amount)
    log_likelihoods = np.zeros((n_entities, 2))
    for c in range(2):
        residual = observed - means[category] - amount_shift * (c - 0.5)
        step = np.log(profiles[c][category]) - 0.5 * (residual / 0.7) ** 2
        log_likelihoods[:, c] = np.bincount(entity, weights=step, minlength=n_entities)
    events = _frame(entity, _increasing_times(rng, lengths, 20 * DAY), mcc=category, amount=amount)
    return QualitySet("sparse", "short sparse histories (1-5 events)", events, _class_labels("label", labels),
                      _columns({"label": "binary"}), "binary", _posterior(log_likelihoods)[:, 1], ["label"],
                      {"profiles": profiles, "category_means": means, "amount_shift": amount_shift})


QUALITY_SETS: dict[str, Callable[..., QualitySet]] = {
    "markov": make_markov,
    "timing": make_timing,
    "taste": make_taste,
    "drift": make_drift,
    "longrange": make_longrange,
    "trend": make_trend,
    "sparse": make_sparse,
}


def make_quality_set(name: str, n_entities: int = 2000, seed: int = 0, **options: Any) -> QualitySet:
    """The generator `name` of QUALITY_SETS with these arguments.

    Raises:
        ConfigError: an unknown name.
    """
    if name not in QUALITY_SETS:
        from eventseq.errors import did_you_mean

        raise ConfigError(f"unknown quality set {name!r}{did_you_mean(name, list(QUALITY_SETS))}; "
                          f"available: {list(QUALITY_SETS)}")
    return QUALITY_SETS[name](n_entities=n_entities, seed=seed, **options)
