"""Synthetic card transactions with a label planted in event order and, partly, in amounts.

Each entity has a class y. Its merchant categories follow a Markov chain whose transition matrix
depends on y: T_y = (1 - order_strength)·T_shared + order_strength·P_y, with P_y a class-specific
"after category i comes category σ_y(i)" permutation. Log-amounts are Normal(μ_category + δ_y, σ).
Channel, lengths and times do not depend on y. Because the generator knows its parameters, the
exact class posterior of every entity — hence the Bayes-optimal accuracy — is computable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from eventseq.errors import ConfigError

START_TIME = 1_672_531_200  # 2023-01-01 UTC, seconds


@dataclass
class SyntheticTransactions:
    """A generated data set: raw events, per-entity labels and the generator's parameters.

    Attributes:
        events: entity_id, event_time (int seconds), mcc, channel (categorical), amount (numeric).
        labels: entity_id, label (class 0..n_classes-1), value (regression target).
    """

    events: pl.DataFrame
    labels: pl.DataFrame
    transitions: np.ndarray  # [C, K, K] true P(next category | previous, class)
    start: np.ndarray  # [K]
    category_mean: np.ndarray  # [K] mean log-amount per category
    class_shift: np.ndarray  # [C] shift of log-amount per class
    amount_sigma: float

    def class_log_likelihoods(self, events: pl.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact log P(events of entity | class) under the true parameters.

        Returns:
            (entity ids [N], log-likelihoods [N, C]) with entities in sorted id order.
        """
        frame = (self.events if events is None else events).sort(["entity_id", "event_time"], maintain_order=True)
        ids, starts = np.unique(frame["entity_id"].to_numpy(), return_index=True)
        category = frame["mcc"].to_numpy().astype(np.int64)
        log_amount = np.log(frame["amount"].to_numpy())
        first = np.zeros(len(category), dtype=bool)
        first[starts] = True
        previous = np.roll(category, 1)
        entity_of_event = np.repeat(np.arange(len(ids)), np.diff(np.append(starts, len(category))))
        classes = self.transitions.shape[0]
        log_likelihoods = np.zeros((len(ids), classes))
        for c in range(classes):
            step = np.where(first, np.log(self.start[category]), np.log(self.transitions[c, previous, category]))
            residual = log_amount - self.category_mean[category] - self.class_shift[c]
            step = step - 0.5 * (residual / self.amount_sigma) ** 2
            log_likelihoods[:, c] = np.bincount(entity_of_event, weights=step, minlength=len(ids))
        return ids, log_likelihoods

    def bayes_predictions(self, events: pl.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(entity ids, posterior [N, C]) of the Bayes-optimal classifier (uniform class prior)."""
        ids, log_likelihoods = self.class_log_likelihoods(events)
        log_likelihoods -= log_likelihoods.max(axis=1, keepdims=True)
        posterior = np.exp(log_likelihoods)
        return ids, posterior / posterior.sum(axis=1, keepdims=True)

    def bayes_accuracy(self, entity_ids: np.ndarray | None = None) -> float:
        """Accuracy of the Bayes-optimal rule on these entities (all if None)."""
        ids, posterior = self.bayes_predictions()
        truth = self.labels.sort("entity_id")["label"].to_numpy()
        correct = posterior.argmax(axis=1) == truth
        if entity_ids is not None:
            correct = correct[np.isin(ids, entity_ids)]
        return float(correct.mean())


def make_transactions(
    n_entities: int = 5000,
    n_classes: int = 2,
    n_categories: int = 8,
    min_length: int = 20,
    max_length: int = 60,
    order_strength: float = 0.09,
    amount_shift: float = 0.1,
    amount_sigma: float = 1.0,
    seed: int = 0,
) -> SyntheticTransactions:
    """Generate a synthetic transaction log (see module docstring). Vectorized over entities.

    Args:
        n_entities: number of clients.
        n_classes: label classes (2 = binary).
        n_categories: merchant categories (mcc vocabulary size).
        min_length: fewest events per entity (lengths are uniform in [min_length, max_length]).
        max_length: most events per entity.
        order_strength: weight of the class-specific transition pattern (order signal).
        amount_shift: class shift of mean log-amount, scaled by class index (value signal).
        amount_sigma: std of log-amount.
        seed: random seed; the same seed gives the same data.

    Raises:
        ConfigError: a count, length, order_strength or amount_sigma out of range.
    """
    if n_entities < 1 or n_classes < 2 or n_categories < 2 or not 1 <= min_length <= max_length:
        raise ConfigError(
            "make_transactions needs n_entities >= 1, n_classes >= 2, n_categories >= 2, 1 <= min_length <= max_length"
        )
    # outside these ranges the transition rows are not distributions / the likelihood divides by zero
    if not 0.0 <= order_strength <= 1.0 or not amount_sigma > 0.0:
        raise ConfigError(
            f"make_transactions needs 0 <= order_strength <= 1 and amount_sigma > 0 "
            f"(got order_strength={order_strength}, amount_sigma={amount_sigma})"
        )
    rng = np.random.default_rng(seed)
    shared = rng.dirichlet(np.full(n_categories, 0.7), size=n_categories)  # [K, K]
    transitions = np.empty((n_classes, n_categories, n_categories))
    for c in range(n_classes):
        permutation = np.eye(n_categories)[rng.permutation(n_categories)]
        transitions[c] = (1 - order_strength) * shared + order_strength * permutation
    start = rng.dirichlet(np.ones(n_categories))
    category_mean = rng.normal(3.0, 1.0, size=n_categories)
    class_shift = amount_shift * (np.arange(n_classes) - (n_classes - 1) / 2)
    channel_given_category = rng.dirichlet(np.ones(4), size=n_categories)  # noise feature

    labels = rng.integers(0, n_classes, size=n_entities)
    lengths = rng.integers(min_length, max_length + 1, size=n_entities)
    width = int(lengths.max())
    cumulative = transitions.cumsum(axis=2)  # [C, K, K]
    categories = np.empty((n_entities, width), dtype=np.int64)
    categories[:, 0] = (rng.random(n_entities)[:, None] > start.cumsum()[None, :]).sum(axis=1)
    for step in range(1, width):
        thresholds = cumulative[labels, categories[:, step - 1]]  # [N, K]
        categories[:, step] = (rng.random(n_entities)[:, None] > thresholds).sum(axis=1)
    np.minimum(categories, n_categories - 1, out=categories)  # guard float round-off at the top

    valid = np.arange(width)[None, :] < lengths[:, None]
    entity = np.broadcast_to(np.arange(n_entities)[:, None], valid.shape)[valid]
    category = categories[valid]
    log_amount = rng.normal(category_mean[category] + class_shift[labels[entity]], amount_sigma)
    channel = (rng.random(len(category))[:, None] > channel_given_category[category].cumsum(axis=1)).sum(axis=1)
    gaps = rng.exponential(86_400.0, size=valid.shape).astype(np.int64)  # about a day apart
    starts = rng.integers(0, 365 * 86_400, size=n_entities)
    times = (START_TIME + starts[:, None] + np.cumsum(gaps, axis=1))[valid]

    events = pl.DataFrame(
        {
            "entity_id": entity.astype(np.int64),
            "event_time": times.astype(np.int64),
            "mcc": category.astype(np.int64),
            "channel": np.minimum(channel, 3).astype(np.int64),
            "amount": np.round(np.exp(log_amount), 2).clip(0.01),
        }
    )
    # The regression target: a noisy function of how often the entity shops in category 0.
    share0 = np.bincount(entity, weights=(category == 0), minlength=n_entities) / lengths
    value = 10 * share0 + rng.normal(0, 0.1, size=n_entities)
    label_frame = pl.DataFrame({"entity_id": np.arange(n_entities, dtype=np.int64), "label": labels, "value": value})
    data = SyntheticTransactions(events, label_frame, transitions, start, category_mean, class_shift, amount_sigma)
    # amounts were rounded to cents: recompute likelihoods on what was written (log of rounded values)
    return data


SYNTHETIC_COLUMNS = dict(
    id_column="entity_id",
    time_column="event_time",
    categorical=["mcc", "channel"],
    numeric=["amount"],
    numeric_transform={"amount": "log_standardize"},
    targets={"label": "binary"},
)
