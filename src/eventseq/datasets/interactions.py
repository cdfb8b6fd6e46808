"""Synthetic e-commerce interactions for a sequential recommender, with the optimal score of each shown item.

Users and items get planted latent factors u ~ N(0, I_k), v ~ N(0, I_k)/sqrt(k) and items a popularity
bias p ~ N(0, 0.5). The affinity of user u for item i is a(u, i) = signal·u·v_i + p_i.

- Standalone positives (request_id null): ~Poisson(positives_per_user) clicks or purchases per user,
  items drawn ∝ softmax(a(u, ·)), so a user's history reveals u.
- Requests: ~Poisson(requests_per_user) per user. A request has a context (source_type) and shows
  m ~ Uniform(items_per_request) items drawn without replacement ∝ exp(p), each logged as a "view".
  Shown item i is carted with probability sigmoid(oracle_score), oracle_score = a(u, i) + b_context +
  intercept, and a carted item is then purchased with probability PURCHASE_AFTER_CART.

Because oracle_score is the true cart logit, ranking the shown items of a request by it is optimal in
expectation; `SyntheticInteractions.oracle` holds it for every (request, shown item).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl

from eventseq.errors import ConfigError

ACTIONS = ("view", "click", "cart", "purchase")
VIEW, CLICK, CART, PURCHASE = range(len(ACTIONS))
CONTEXTS = ("search", "catalog", "recommendations", "main_page")
CONTEXT_SHARE = np.array([0.35, 0.25, 0.25, 0.15])  # how often a request comes from each context
CONTEXT_BIAS = np.array([0.5, -0.5, 0.25, -0.25])  # b_c: searchers know what they want, browsers don't
TARGET_CART_RATE = 0.15  # the intercept aims at this share of shown items being carted
PURCHASE_AFTER_CART = 0.3
PURCHASE_SHARE_OF_POSITIVES = 0.2  # the rest of the standalone positives are clicks
NULL_SOURCE_SHARE = 0.1  # standalone positives whose source was not tracked
SECOND_US = 1_000_000
VIEW_GAP_US = 2 * SECOND_US  # shown items are logged 2 s apart, in display order
FOLLOW_UP_US = 2 * 3600 * SECOND_US  # requests start this long before the end so carts/purchases fit
CHUNK_ELEMENTS = 4_000_000  # cells of a [rows, items] working matrix: ~32 MB of float64


@dataclass
class SyntheticInteractions:
    """A generated interaction log with the generator's planted parameters.

    Attributes:
        log: user_id, item_id (Int64, 1-based), action_type, source_type (String, nullable),
            timestamp (Datetime "us"), request_id (Int64, null outside requests); sorted by time, user.
        oracle: request_id, item_id, oracle_score (the true cart logit), one row per shown item.
        user_factors: [n_users, latent_dim], row u-1 belongs to user_id u.
        item_factors: [n_items, latent_dim], row i-1 belongs to item_id i.
    """

    log: pl.DataFrame
    oracle: pl.DataFrame
    user_factors: np.ndarray
    item_factors: np.ndarray


def _draw_positives(
    user_factors: np.ndarray, item_factors: np.ndarray, item_bias: np.ndarray, signal: float, counts: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Item index of each standalone positive, users in order, drawn ∝ softmax of the user's affinity row."""
    n_items = len(item_bias)
    chunk = max(1, CHUNK_ELEMENTS // n_items)
    items = []
    for start in range(0, len(counts), chunk):
        cdf = signal * user_factors[start : start + chunk] @ item_factors.T + item_bias  # [U, I] affinity ...
        # ... turned into row-wise CDFs in place
        cdf -= cdf.max(axis=1, keepdims=True)
        np.cumsum(np.exp(cdf, out=cdf), axis=1, out=cdf)
        cdf /= cdf[:, -1:]  # every row ends at exactly 1.0 ...
        cdf += np.arange(len(cdf))[:, None]  # ... so row r spans (r, r + 1] and one searchsorted serves all rows
        row = np.repeat(np.arange(len(cdf)), counts[start : start + chunk])
        # Sorted queries make searchsorted walk the table once; a user's draws are exchangeable anyway.
        flat = np.searchsorted(cdf.ravel(), np.sort(row + rng.random(len(row))), side="right")
        items.append(np.minimum(flat - row * n_items, n_items - 1))  # r + u can round up to r + 1
    return np.concatenate(items) if items else np.zeros(0, dtype=np.int64)


def _draw_shown(counts: np.ndarray, weights: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Request index and item index of every shown item, by request then display order.

    Draws with replacement that skip repeats are exactly draws without replacement (∝ weight among
    the items not shown yet), so each request draws a few more candidates than it needs and keeps
    the first counts[r] distinct ones; the rare requests still short draw again.
    """
    if len(counts) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cdf = np.cumsum(weights) / weights.sum()
    cdf[-1] = 1.0
    width = int(counts.max()) + 8  # a few spare draws: repeats are rare unless a request shows most items
    chunk = max(1, CHUNK_ELEMENTS // width)
    requests, items = [], []
    for start in range(0, len(counts), chunk):
        pending = np.arange(start, min(start + chunk, len(counts)))
        candidates = np.zeros((len(pending), 0), dtype=np.int64)
        while len(pending):
            draws = np.searchsorted(cdf, rng.random((len(pending), width)), side="right")
            candidates = np.concatenate([candidates, draws], axis=1)  # [R, C]
            order = np.argsort(candidates, axis=1, kind="stable")  # stable: equal items keep draw order
            ranked = np.take_along_axis(candidates, order, axis=1)
            repeat = np.zeros(ranked.shape, dtype=bool)
            repeat[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
            first = np.empty_like(repeat)
            np.put_along_axis(first, order, ~repeat, axis=1)
            distinct_rank = np.cumsum(first, axis=1)
            done = distinct_rank[:, -1] >= counts[pending]
            rows, cols = np.nonzero(first & (distinct_rank <= counts[pending, None]) & done[:, None])
            requests.append(pending[rows])
            items.append(candidates[rows, cols])
            pending, candidates = pending[~done], candidates[~done]
    request, item = np.concatenate(requests), np.concatenate(items)
    order = np.argsort(request, kind="stable")  # redrawn requests were appended late
    return request[order], item[order]


def _cart_intercept(signal: float) -> float:
    """Intercept that makes about TARGET_CART_RATE of shown items carted.

    Probit approximation: E[sigmoid(X)] ≈ sigmoid(μ / sqrt(1 + πσ²/8)) for X ~ N(μ, σ²). Here u·v has
    variance 1, p variance 0.25, and items shown ∝ exp(p) have mean p = +0.25 (an exponential tilt).
    """
    context_mean = CONTEXT_SHARE @ CONTEXT_BIAS
    variance = signal**2 + 0.25 + CONTEXT_SHARE @ (CONTEXT_BIAS - context_mean) ** 2
    target_logit = np.log(TARGET_CART_RATE / (1 - TARGET_CART_RATE))
    return float(target_logit * np.sqrt(1 + np.pi / 8 * variance) - 0.25 - context_mean)


def _check_arguments(
    n_users, n_items, n_days, latent_dim, requests_per_user, positives_per_user, items_per_request, signal, start
) -> int:
    """Raise ConfigError naming the first bad argument; return start in microseconds since the epoch."""
    for name, value in [("n_users", n_users), ("n_items", n_items), ("n_days", n_days), ("latent_dim", latent_dim)]:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"make_interactions needs {name} to be an integer >= 1 (got {name}={value!r})")
    rates = [("requests_per_user", requests_per_user), ("positives_per_user", positives_per_user), ("signal", signal)]
    for name, value in rates:
        if not isinstance(value, (int, float, np.number)) or not np.isfinite(value) or value < 0:
            raise ConfigError(f"make_interactions needs {name} to be a finite number >= 0 (got {name}={value!r})")
    pair = tuple(items_per_request) if isinstance(items_per_request, (tuple, list)) else ()
    if len(pair) != 2 or not all(isinstance(x, (int, np.integer)) for x in pair) or not 1 <= pair[0] <= pair[1]:
        raise ConfigError(
            f"make_interactions needs items_per_request=(low, high), integers with 1 <= low <= high "
            f"(got items_per_request={items_per_request!r})"
        )
    if pair[1] > n_items:
        raise ConfigError(
            f"make_interactions needs n_items >= items_per_request[1]: a request shows distinct items "
            f"(got n_items={n_items}, items_per_request={items_per_request!r})"
        )
    try:
        start_time = datetime.fromisoformat(start)
    except (TypeError, ValueError) as error:
        message = f"make_interactions needs start as an ISO date like '2024-01-01' (got start={start!r})"
        raise ConfigError(message) from error
    if start_time.tzinfo is not None:
        start_time = start_time.astimezone(timezone.utc).replace(tzinfo=None)
    return (start_time - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def make_interactions(
    n_users: int = 2000,
    n_items: int = 500,
    n_days: int = 120,
    latent_dim: int = 8,
    requests_per_user: float = 12.0,
    positives_per_user: float = 40.0,
    items_per_request: tuple[int, int] = (10, 30),
    signal: float = 2.0,
    start: str = "2024-01-01",
    seed: int = 0,
) -> SyntheticInteractions:
    """Generate a synthetic interaction log with planted factors (see module docstring). Vectorized over users.

    Args:
        n_users: number of users (ids 1..n_users).
        n_items: number of items (ids 1..n_items).
        n_days: events fall in [start, start + n_days).
        latent_dim: dimension k of the user and item factors.
        requests_per_user: mean number of requests (ranked lists shown) per user.
        positives_per_user: mean number of standalone clicks/purchases per user.
        items_per_request: (low, high), inclusive range of the number of items a request shows.
        signal: weight of the personal term u·v in the affinity (0 = popularity only).
        start: ISO date or datetime of the first day (UTC if naive).
        seed: random seed; the same seed gives the same data.

    Returns:
        SyntheticInteractions with the log, the oracle cart logits and the planted factors.

    Raises:
        ConfigError: a count, rate, range, signal or start date that is out of range or malformed.
    """
    start_us = _check_arguments(
        n_users, n_items, n_days, latent_dim, requests_per_user, positives_per_user, items_per_request, signal, start
    )
    span_us = n_days * 86_400 * SECOND_US
    low, high = items_per_request

    rng = np.random.default_rng(seed)
    user_factors = rng.standard_normal((n_users, latent_dim))  # [U, k]
    item_factors = rng.standard_normal((n_items, latent_dim)) / np.sqrt(latent_dim)  # [I, k]: u·v has variance 1
    item_bias = rng.normal(0.0, 0.5, n_items)  # [I] popularity p

    # Standalone positives: what the user clicked or bought outside any logged request.
    positive_counts = rng.poisson(positives_per_user, n_users)
    positive_user = np.repeat(np.arange(n_users), positive_counts)
    positive_item = _draw_positives(user_factors, item_factors, item_bias, signal, positive_counts, rng)
    n_positives = len(positive_user)
    positive_action = np.where(rng.random(n_positives) < PURCHASE_SHARE_OF_POSITIVES, PURCHASE, CLICK)
    positive_source = rng.choice(len(CONTEXTS), n_positives, p=CONTEXT_SHARE)
    positive_source[rng.random(n_positives) < NULL_SOURCE_SHARE] = -1
    positive_time = rng.integers(0, span_us, n_positives)

    # Requests: a context, a time and a list of items shown by popularity.
    request_user = np.repeat(np.arange(n_users), rng.poisson(requests_per_user, n_users))
    n_requests = len(request_user)
    request_context = rng.choice(len(CONTEXTS), n_requests, p=CONTEXT_SHARE)
    request_time = rng.integers(0, span_us - FOLLOW_UP_US, n_requests)
    shown_counts = rng.integers(low, high + 1, n_requests)
    shown_request, shown_item = _draw_shown(shown_counts, np.exp(item_bias), rng)
    request_offset = np.cumsum(shown_counts) - shown_counts  # [R] first shown row of each request
    shown_position = np.arange(len(shown_request)) - np.repeat(request_offset, shown_counts)
    shown_user, shown_context = request_user[shown_request], request_context[shown_request]

    intercept = _cart_intercept(signal)
    personal = np.empty(len(shown_request))  # u·v of each shown item
    step = CHUNK_ELEMENTS // latent_dim + 1  # bounds the [n, k] gathers below
    for chunk in range(0, len(personal), step):
        part = slice(chunk, chunk + step)
        personal[part] = np.einsum("nk,nk->n", user_factors[shown_user[part]], item_factors[shown_item[part]])
    oracle_score = signal * personal + item_bias[shown_item] + CONTEXT_BIAS[shown_context] + intercept
    cart_probability = np.exp(-np.logaddexp(0.0, -oracle_score))  # sigmoid without overflow
    carted = np.flatnonzero(rng.random(len(oracle_score)) < cart_probability)  # indices into shown
    bought = rng.random(len(carted)) < PURCHASE_AFTER_CART  # [n_carts]
    purchased = carted[bought]
    view_time = request_time[shown_request] + shown_position * VIEW_GAP_US
    cart_time = view_time[carted] + rng.integers(5 * SECOND_US, 60 * SECOND_US, len(carted))
    purchase_time = cart_time[bought] + rng.integers(60 * SECOND_US, 1800 * SECOND_US, len(purchased))

    blocks = [  # (user, item, action, source, time, request) of each kind of event; -1 stands for null
        (positive_user, positive_item, positive_action, positive_source, positive_time, -1),
        (shown_user, shown_item, VIEW, shown_context, view_time, shown_request),
        (shown_user[carted], shown_item[carted], CART, shown_context[carted], cart_time, shown_request[carted]),
        (shown_user[purchased], shown_item[purchased], PURCHASE, shown_context[purchased], purchase_time, -1),
    ]
    names = ["user", "item", "action", "source", "time", "request"]
    columns = [np.concatenate([np.broadcast_to(block[j], block[4].shape) for block in blocks]) for j in range(6)]
    raw = pl.DataFrame(dict(zip(names, columns)), schema=dict.fromkeys(names, pl.Int64))
    # Sort the integer columns before the strings exist: much cheaper to move around.
    log = raw.sort(["time", "user"], maintain_order=True).select(
        user_id=pl.col("user") + 1,
        item_id=pl.col("item") + 1,
        action_type=pl.col("action").replace_strict(dict(enumerate(ACTIONS)), return_dtype=pl.String),
        source_type=pl.col("source").replace_strict(dict(enumerate(CONTEXTS)), default=None, return_dtype=pl.String),
        timestamp=(pl.col("time") + start_us).cast(pl.Datetime("us")),
        request_id=pl.when(pl.col("request") >= 0).then(pl.col("request") + 1),
    )
    oracle = pl.DataFrame(
        {"request_id": shown_request + 1, "item_id": shown_item + 1, "oracle_score": oracle_score},
        schema={"request_id": pl.Int64, "item_id": pl.Int64, "oracle_score": pl.Float64},
    )
    return SyntheticInteractions(log, oracle, user_factors, item_factors)
