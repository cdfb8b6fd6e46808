"""Classical baselines for next-event prediction, and the metric every next-event model is scored by.

The task (local, per event): for every entity of a dataset (its most recent `max_len` events when
the dataset truncates) and every position t >= 1, predict event t from events 0..t-1 of the same
entity: the value of each categorical field, and the time gap event_time[t] - event_time[t-1] in
seconds. `next_event_targets` lists those targets; `next_event_metrics` scores top-k predictions
(accuracy@k per field) and predicted gaps (MAE in seconds and in log1p-seconds). A neural model is
scored by the same two functions, with its predictions in the order of `next_event_targets`.

Baselines follow scikit-learn's contract (parameters in `__init__`, learning in `fit`, pure
`predict`), and `predict(dataset)` returns `(topk, predicted_delta)`, aligned with
`next_event_targets(dataset)`:

- `MostFrequentBaseline`: the globally most frequent next values; the median training gap.
- `MarkovBaseline`: per-field n-gram counts of the next value given the previous `order` values,
  backing off to shorter contexts and the global frequencies; the median training gap given the
  previous event's value of the first field.
- `InterEventTimeBaseline`: no categorical prediction; the entity's own median (or mean) past gap.

`evaluate_baselines(train, test)` fits them all and returns one table. Everything on data is
vectorized NumPy; the only Python loops are over fields, n-gram orders and memory-sized chunks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl
from sklearn.exceptions import NotFittedError

from eventseq.data.dataset import SequenceDataset
from eventseq.data.schema import PADDING_ID, TIME_COLUMN, Schema
from eventseq.errors import ConfigError, DataError, did_you_mean

STATISTICS = ("median", "mean")
# cells of the [targets, past gaps] matrix that InterEventTimeBaseline sorts at once (~32 MiB float64)
_CHUNK_CELLS = 1 << 22


# ----------------------------------------------------------------------------- targets and metric


@dataclass
class NextEventTargets:
    """Every next-event target of a dataset, as flat arrays in (entity, position) order.

    Attributes:
        entity: dataset position of the entity (0..len(dataset)-1) of each target, [N] int64.
        position: t, the index of the predicted event within the (truncated) sequence, >= 1, [N].
        event_index: flat index of event t into `dataset.columns` arrays, [N] int64.
        values: true categorical value (id) at t per categorical field, each [N] int64.
        previous: value at t-1 per categorical field, each [N] int64.
        delta: true seconds since the previous event, event_time[t] - event_time[t-1], [N] float64.
        previous_delta: the gap before t-1 (event_time[t-1] - event_time[t-2]), NaN where t == 1, [N].
    """

    entity: np.ndarray
    position: np.ndarray
    event_index: np.ndarray
    values: dict[str, np.ndarray]
    previous: dict[str, np.ndarray]
    delta: np.ndarray
    previous_delta: np.ndarray

    def __len__(self) -> int:
        return len(self.entity)


def next_event_targets(dataset: SequenceDataset) -> NextEventTargets:
    """List the next-event targets of every entity of `dataset`: all positions t >= 1.

    Entities are the dataset's rows (a subset keeps its own order); when the dataset has `max_len`,
    only the most recent `max_len` events of an entity count, and t is counted from the first kept
    event. An entity with a single event has no target.

    Args:
        dataset: the sequences; event times must not decrease within an entity.

    Returns:
        NextEventTargets, ordered by entity position, then by t.

    Raises:
        DataError: event times decrease within an entity (named by id and position).
    """
    lengths = dataset.lengths  # [E] after truncation
    ends = dataset.offsets[dataset.rows + 1]
    starts = ends - lengths  # the most recent events, as collate keeps them
    counts = np.maximum(lengths - 1, 0)  # targets per entity
    entity = np.repeat(np.arange(len(dataset), dtype=np.int64), counts)  # [N]
    first_target = np.cumsum(counts) - counts  # index of each entity's first target
    position = np.arange(len(entity), dtype=np.int64) - first_target[entity] + 1
    event_index = starts[entity] + position

    event_time = dataset.columns[TIME_COLUMN]
    delta = (event_time[event_index] - event_time[event_index - 1]).astype(np.float64)
    if np.any(delta < 0):
        where = int(np.nonzero(delta < 0)[0][0])
        entity_id = dataset.entity_ids(entity[where : where + 1])[0]
        entity_id = entity_id.item() if isinstance(entity_id, np.generic) else entity_id
        raise DataError(
            f"event times decrease for entity {entity_id!r} at position {int(position[where])} "
            f"({int(event_time[event_index[where] - 1])} then {int(event_time[event_index[where]])}); "
            "sort events by time within each entity (prepare does)"
        )
    has_previous_gap = position >= 2
    before = np.where(has_previous_gap, event_index - 2, event_index - 1)  # any valid index where masked
    previous_delta = np.where(
        has_previous_gap, (event_time[event_index - 1] - event_time[before]).astype(np.float64), np.nan
    )
    values, previous = {}, {}
    for feature in dataset.schema.categorical:
        column = dataset.columns[feature.name]
        values[feature.name] = column[event_index].astype(np.int64)
        previous[feature.name] = column[event_index - 1].astype(np.int64)
    return NextEventTargets(entity, position, event_index, values, previous, delta, previous_delta)


def _check_ks(ks: Sequence[int]) -> list[int]:
    ks = list(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ConfigError(f"ks={ks}: expected a non-empty list of positive integers, e.g. (1, 5)")
    return [int(k) for k in ks]


def next_event_metrics(
    topk: Mapping[str, np.ndarray],
    targets: NextEventTargets,
    predicted_delta: np.ndarray | None = None,
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Score next-event predictions: accuracy@k per categorical field and the error of the time gap.

    Args:
        topk: field -> [N, >= max(ks)] predicted ids, best first, rows in the order of `targets`
            (an empty mapping scores no field).
        targets: from `next_event_targets` on the evaluated dataset.
        predicted_delta: predicted seconds until the next event, [N], >= 0; None skips the time metrics.
        ks: the k of accuracy@k.

    Returns:
        `{field}_acc@{k}`: share of targets whose true value is in the first k predicted ids;
        `time_mae_seconds`: mean |predicted - true| gap; `time_mae_log`: mean
        |log1p(predicted) - log1p(true)| (both only when `predicted_delta` is given).

    Raises:
        DataError: no targets; a field that `targets` lacks; an array whose length is not the number
            of targets; topk with fewer than k columns; negative or non-finite predicted gaps.
        ConfigError: ks not positive integers.
    """
    ks = _check_ks(ks)
    count = len(targets)
    if count == 0:
        raise DataError("no next-event targets to score: every entity has a single event")
    metrics: dict[str, float] = {}
    for field, predicted in topk.items():
        if field not in targets.values:
            known = list(targets.values)
            raise DataError(
                f"topk field '{field}' is not a categorical field of the targets{did_you_mean(field, known)}; "
                f"fields: {known}"
            )
        predicted = np.asarray(predicted)
        if predicted.ndim != 2 or predicted.shape[0] != count:
            raise DataError(
                f"topk['{field}'] has shape {predicted.shape}: expected [{count}, k] (one row per target)"
            )
        truth = targets.values[field]
        for k in ks:
            if predicted.shape[1] < k:
                raise DataError(
                    f"topk['{field}'] has {predicted.shape[1]} columns: accuracy@{k} needs at least {k}"
                )
            hits = np.any(predicted[:, :k] == truth[:, None], axis=1)
            metrics[f"{field}_acc@{k}"] = float(hits.mean())
    if predicted_delta is not None:
        predicted_delta = np.asarray(predicted_delta, dtype=np.float64)
        if predicted_delta.shape != (count,):
            raise DataError(
                f"predicted_delta has shape {predicted_delta.shape}: expected ({count},) (one gap per target)"
            )
        bad = ~np.isfinite(predicted_delta) | (predicted_delta < 0)
        if bad.any():
            where = int(np.nonzero(bad)[0][0])
            raise DataError(
                f"predicted_delta has {int(bad.sum())} negative or non-finite values (first: {predicted_delta[where]} "
                f"at target {where}); gaps are seconds >= 0"
            )
        metrics["time_mae_seconds"] = float(np.abs(predicted_delta - targets.delta).mean())
        metrics["time_mae_log"] = float(np.abs(np.log1p(predicted_delta) - np.log1p(targets.delta)).mean())
    return metrics


# ----------------------------------------------------------------------------- shared pieces


class NextEventPredictor(Protocol):
    """What `evaluate_baselines` needs from a model: fit on a dataset, predict its next events."""

    def fit(self, train_dataset: SequenceDataset) -> NextEventPredictor: ...

    def predict(self, dataset: SequenceDataset) -> tuple[dict[str, np.ndarray], np.ndarray | None]: ...


def _check_positive_int(value: object, name: str, owner: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{owner}({name}={value!r}): {name} must be a positive integer")


def _resolve_fields(fields: Sequence[str] | None, schema: Schema, owner: str) -> list[str]:
    """The categorical fields to predict (all when None); an unknown name is a ConfigError."""
    known = [feature.name for feature in schema.categorical]
    if fields is None:
        return known
    if isinstance(fields, str):
        fields = [fields]
    for field in fields:
        if field not in known:
            raise ConfigError(
                f"{owner}: field '{field}' is not a categorical field of the schema"
                f"{did_you_mean(field, known)}; categorical fields: {known}"
            )
    return list(fields)


def _check_fitted(model: object, attribute: str) -> None:
    if not hasattr(model, attribute):
        name = type(model).__name__
        raise NotFittedError(f"{name} is not fitted yet: call {name}(...).fit(train_dataset) before predict")


def _training_targets(train_dataset: SequenceDataset, owner: str) -> NextEventTargets:
    targets = next_event_targets(train_dataset)
    if len(targets) == 0:
        raise DataError(
            f"{owner}.fit: the training dataset has no next-event targets "
            f"({len(train_dataset)} entities, each with a single event)"
        )
    return targets


def _rank_successors(
    contexts: np.ndarray, successors: np.ndarray, base: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k successors of each context by count (ties: smaller id first).

    Args:
        contexts: int64 code of the context of each observation, [M].
        successors: the value that followed, [M], each < base.
        base: exclusive upper bound of the values.
        k: successors kept per context.

    Returns:
        (sorted unique contexts [C], table [C, k] of successor ids, best first, 0-padded).
    """
    real = successors != PADDING_ID  # padding is never a value to predict
    unique_contexts, context_index = np.unique(contexts[real], return_inverse=True)
    pairs, counts = np.unique(context_index.reshape(-1) * base + successors[real], return_counts=True)
    pair_context, pair_value = pairs // base, pairs % base
    order = np.lexsort((pair_value, -counts, pair_context))  # by context, count desc, id asc
    pair_context, pair_value = pair_context[order], pair_value[order]
    rank = np.arange(len(pairs)) - np.searchsorted(pair_context, pair_context, side="left")
    keep = rank < k
    table = np.full((len(unique_contexts), k), PADDING_ID, dtype=np.int64)
    table[pair_context[keep], rank[keep]] = pair_value[keep]
    return unique_contexts, table


def _global_topk(values: np.ndarray, base: int, k: int) -> np.ndarray:
    """The k most frequent non-padding values (ties: smaller id first), 0-padded. Returns [k]."""
    _, table = _rank_successors(np.zeros_like(values), values, base, k)
    return table[0] if len(table) else np.full(k, PADDING_ID, dtype=np.int64)


def _lookup(unique_contexts: np.ndarray, table: np.ndarray, codes: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Rows of `table` for `codes` ([N]); all-padding rows where unusable or unseen. Returns [N, k]."""
    if len(unique_contexts) == 0:  # e.g. no training sequence long enough for this order
        return np.full((len(codes), table.shape[1]), PADDING_ID, dtype=np.int64)
    slot = np.minimum(np.searchsorted(unique_contexts, codes), len(unique_contexts) - 1)
    found = usable & (unique_contexts[slot] == codes)
    return np.where(found[:, None], table[slot], PADDING_ID)


def _merge_candidates(blocks: list[np.ndarray], k: int) -> np.ndarray:
    """Concatenate candidate blocks ([N, k_i] each, in priority order), drop padding and repeated ids
    (keeping the first occurrence), and keep the first k per row. Returns [N, k], 0-padded."""
    candidates = np.concatenate(blocks, axis=1)  # [N, W]
    order = np.argsort(candidates, axis=1, kind="stable")  # equal ids stay in priority order
    ordered = np.take_along_axis(candidates, order, axis=1)
    first = np.ones(ordered.shape, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    keep = np.empty_like(first)
    np.put_along_axis(keep, order, first, axis=1)
    keep &= candidates != PADDING_ID
    compact = np.argsort(~keep, axis=1, kind="stable")  # kept ids first, in priority order
    merged = np.take_along_axis(np.where(keep, candidates, PADDING_ID), compact, axis=1)[:, :k]
    if merged.shape[1] < k:
        merged = np.pad(merged, ((0, 0), (0, k - merged.shape[1])), constant_values=PADDING_ID)
    return merged


def _group_medians(groups: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median of `values` per group id. Returns (sorted unique groups, medians)."""
    order = np.lexsort((values, groups))
    groups, values = groups[order], values[order]
    unique_groups, starts, sizes = np.unique(groups, return_index=True, return_counts=True)
    lower = values[starts + (sizes - 1) // 2]
    upper = values[starts + sizes // 2]
    return unique_groups, (lower + upper) / 2


# ----------------------------------------------------------------------------- baselines


class MostFrequentBaseline:
    """Predict the globally most frequent next values and the median gap, the same for every event.

    Frequencies are counted over the training targets (events at t >= 1, i.e. the values that are
    ever predicted). Padding (0) is never predicted; the unknown id (1, rare or unseen values) is
    an ordinary value here: it is predicted when it is among the k most frequent targets, since a
    true next value can be unknown and then counts as a hit. With fewer than k distinct values in
    training, the remaining columns hold 0, which never matches a target.

    Args:
        k: predicted ids per field and target.
        fields: categorical fields to predict; None = every categorical field of the schema.

    Fitted attributes:
        fields_: the predicted fields; topk_: field -> [k] ids, best first; median_delta_: seconds.
    """

    def __init__(self, k: int = 5, fields: Sequence[str] | None = None) -> None:
        self.k = k
        self.fields = fields

    def fit(self, train_dataset: SequenceDataset) -> MostFrequentBaseline:
        """Count next values per field and take the median gap on `train_dataset`.

        Raises:
            ConfigError: k not a positive integer, or a field that is not categorical in the schema.
            DataError: no training targets (every entity has a single event).
        """
        _check_positive_int(self.k, "k", type(self).__name__)
        fields = _resolve_fields(self.fields, train_dataset.schema, type(self).__name__)
        targets = _training_targets(train_dataset, type(self).__name__)
        self.topk_ = {}
        for field in fields:
            values = targets.values[field]
            self.topk_[field] = _global_topk(values, int(values.max()) + 1, self.k)
        self.fields_ = fields
        self.median_delta_ = float(np.median(targets.delta))
        return self

    def predict(self, dataset: SequenceDataset) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Predict every next-event target of `dataset`.

        Returns:
            (topk: field -> [N, k] ids, predicted_delta: [N] seconds), rows in the order of
            `next_event_targets(dataset)`.

        Raises:
            NotFittedError: predict before fit. ConfigError: a fitted field the dataset's schema lacks.
        """
        _check_fitted(self, "topk_")
        _resolve_fields(self.fields_, dataset.schema, type(self).__name__)
        count = len(next_event_targets(dataset))
        topk = {field: np.tile(ids, (count, 1)) for field, ids in self.topk_.items()}
        return topk, np.full(count, self.median_delta_)


class MarkovBaseline:
    """n-gram (Markov) model per field: rank next values by how often they followed the same context.

    The context of target t in a field is the previous `order` values of that field (events
    t-order..t-1). The top-k list is filled from the longest context first, then from shorter
    contexts (order-1, ..., 1 previous values) and finally from the global frequencies, skipping
    ids already listed: an unseen context, or one with fewer than k distinct successors, backs off.
    Positions with t < order use the longest context they have. Ties: smaller id first. Padding (0)
    is never predicted; the unknown id (1) is an ordinary value, as in MostFrequentBaseline.

    Time: the median training gap given the previous event's value of the first predicted field
    (a first-order "semi-Markov" gap), or the global median gap for a value unseen in training.
    It conditions on the state like the categorical model; the entity's own history of gaps is
    InterEventTimeBaseline's.

    Args:
        order: context length n (1 = first-order Markov chain).
        k: predicted ids per field and target.
        fields: categorical fields to predict; None = every categorical field of the schema.

    Fitted attributes:
        fields_; global_topk_: field -> [k]; contexts_: field -> per order n (1..order) a pair
        (sorted context codes [C], successor table [C, k]); bases_: field -> code base;
        median_delta_; delta_groups_, delta_medians_: previous value -> median gap.
    """

    def __init__(self, order: int = 1, k: int = 5, fields: Sequence[str] | None = None) -> None:
        self.order = order
        self.k = k
        self.fields = fields

    @staticmethod
    def _contexts(
        column: np.ndarray, targets: NextEventTargets, length: int, base: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Code of the previous `length` values of each target: sum_j value[t-j] * base**(j-1).

        Returns:
            (codes [N] int64, usable [N]: t >= length and every context value < base).
        """
        usable = targets.position >= length
        codes = np.zeros(len(targets), dtype=np.int64)
        for back in range(length, 0, -1):  # Horner's rule, oldest value first
            value = column[np.where(usable, targets.event_index - back, targets.event_index)].astype(np.int64)
            usable &= value < base
            codes = codes * base + np.where(usable, value, 0)
        return codes, usable

    def fit(self, train_dataset: SequenceDataset) -> MarkovBaseline:
        """Count (context, next value) pairs per field and order, and gap medians, on `train_dataset`.

        Raises:
            ConfigError: order or k not a positive integer; a field that is not categorical in the
                schema; a vocabulary too large for `order` (context codes would overflow int64).
            DataError: no training targets (every entity has a single event).
        """
        owner = type(self).__name__
        _check_positive_int(self.order, "order", owner)
        _check_positive_int(self.k, "k", owner)
        fields = _resolve_fields(self.fields, train_dataset.schema, owner)
        targets = _training_targets(train_dataset, owner)
        sizes = {feature.name: feature.num_embeddings for feature in train_dataset.schema.categorical}
        self.global_topk_, self.contexts_, self.bases_ = {}, {}, {}
        for field in fields:
            column = train_dataset.columns[field]
            values = targets.values[field]
            # ids above the schema's vocabulary can only come from hand-made data; the base covers them
            base = max(sizes[field], int(values.max()) + 1, int(targets.previous[field].max()) + 1)
            if base ** self.order >= 2**63:
                raise ConfigError(
                    f"{owner}(order={self.order}): field '{field}' has {base} ids, so contexts of "
                    f"{self.order} values do not fit an int64 code; use a smaller order"
                )
            self.global_topk_[field] = _global_topk(values, base, self.k)
            self.contexts_[field] = {}
            for length in range(1, self.order + 1):
                codes, usable = self._contexts(column, targets, length, base)
                self.contexts_[field][length] = _rank_successors(codes[usable], values[usable], base, self.k)
            self.bases_[field] = base
        self.fields_ = fields
        self.median_delta_ = float(np.median(targets.delta))
        if fields:
            self.delta_groups_, self.delta_medians_ = _group_medians(targets.previous[fields[0]], targets.delta)
        else:
            self.delta_groups_, self.delta_medians_ = np.zeros(0, np.int64), np.zeros(0)
        return self

    def predict(self, dataset: SequenceDataset) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Predict every next-event target of `dataset` from its own preceding events.

        Returns:
            (topk: field -> [N, k] ids, predicted_delta: [N] seconds), rows in the order of
            `next_event_targets(dataset)`.

        Raises:
            NotFittedError: predict before fit. ConfigError: a fitted field the dataset's schema lacks.
        """
        _check_fitted(self, "contexts_")
        _resolve_fields(self.fields_, dataset.schema, type(self).__name__)
        targets = next_event_targets(dataset)
        count = len(targets)
        topk = {}
        for field in self.fields_:
            column, base = dataset.columns[field], self.bases_[field]
            blocks = []
            for length in range(self.order, 0, -1):  # longest context first
                codes, usable = self._contexts(column, targets, length, base)
                blocks.append(_lookup(*self.contexts_[field][length], codes, usable))
            blocks.append(np.tile(self.global_topk_[field], (count, 1)))
            topk[field] = _merge_candidates(blocks, self.k)
        predicted_delta = np.full(count, self.median_delta_)
        if self.fields_ and len(self.delta_groups_):
            previous = targets.previous[self.fields_[0]]
            slot = np.minimum(np.searchsorted(self.delta_groups_, previous), len(self.delta_groups_) - 1)
            seen = self.delta_groups_[slot] == previous
            predicted_delta[seen] = self.delta_medians_[slot[seen]]
        return topk, predicted_delta


class InterEventTimeBaseline:
    """Predict the next gap as the entity's own median (or mean) of its past gaps; no categorical field.

    For target t the past gaps are event_time[j] - event_time[j-1] for 1 <= j <= t-1 (the gap being
    predicted is not used), optionally only the `window` most recent of them. A target without a
    past gap (t == 1) gets the same statistic over all training gaps. The mean uses cumulative sums;
    the median sorts a [targets, past gaps] matrix in memory-bounded chunks (work ~ the sum of
    squared sequence lengths / 2; set `window` to bound it on long sequences).

    Args:
        statistic: "median" or "mean".
        window: use at most this many most recent past gaps; None = all of them.

    Fitted attributes:
        fallback_delta_: the statistic over all training gaps, in seconds.
    """

    def __init__(self, statistic: str = "median", window: int | None = None) -> None:
        self.statistic = statistic
        self.window = window

    def fit(self, train_dataset: SequenceDataset) -> InterEventTimeBaseline:
        """Learn the fallback gap (for targets without a past gap) on `train_dataset`.

        Raises:
            ConfigError: statistic not in ("median", "mean") or window not a positive integer.
            DataError: no training targets (every entity has a single event).
        """
        owner = type(self).__name__
        if self.statistic not in STATISTICS:
            raise ConfigError(
                f"{owner}(statistic={self.statistic!r}): expected one of {list(STATISTICS)}"
                f"{did_you_mean(str(self.statistic), STATISTICS)}"
            )
        if self.window is not None:
            _check_positive_int(self.window, "window", owner)
        targets = _training_targets(train_dataset, owner)
        statistic = np.median if self.statistic == "median" else np.mean
        self.fallback_delta_ = float(statistic(targets.delta))
        return self

    def predict(self, dataset: SequenceDataset) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Predict the gap of every next-event target of `dataset` from the entity's earlier gaps.

        Returns:
            ({} (no categorical prediction), predicted_delta: [N] seconds), rows in the order of
            `next_event_targets(dataset)`.

        Raises:
            NotFittedError: predict before fit.
        """
        _check_fitted(self, "fallback_delta_")
        targets = next_event_targets(dataset)
        # targets of an entity are contiguous and ordered by t, and target j carries gap j, so the
        # past gaps of target i are targets i - past_count .. i - 1
        past_count = targets.position - 1
        if self.window is not None:
            past_count = np.minimum(past_count, self.window)
        predicted = np.full(len(targets), self.fallback_delta_)
        has_past = past_count > 0
        if self.statistic == "mean":
            running = np.concatenate([[0.0], np.cumsum(targets.delta)])  # running[i] = sum of gaps 0..i-1
            index = np.arange(len(targets))
            sums = running[index] - running[index - past_count]
            predicted[has_past] = sums[has_past] / past_count[has_past]
            return {}, predicted
        # median: rows sorted by past_count so that each chunk's matrix is only as wide as it needs
        order = np.nonzero(has_past)[0]
        order = order[np.argsort(past_count[order], kind="stable")]
        if len(order) == 0:
            return {}, predicted
        rows_per_chunk = max(1, _CHUNK_CELLS // int(past_count[order[-1]]))
        for chunk_start in range(0, len(order), rows_per_chunk):
            rows = order[chunk_start : chunk_start + rows_per_chunk]
            counts = past_count[rows]
            width = int(counts[-1])
            steps = np.arange(width)
            valid = steps[None, :] < counts[:, None]  # [R, W]
            gather = np.where(valid, rows[:, None] - counts[:, None] + steps[None, :], 0)
            gaps = np.sort(np.where(valid, targets.delta[gather], np.inf), axis=1)  # padding sorts last
            lower = np.take_along_axis(gaps, ((counts - 1) // 2)[:, None], axis=1)[:, 0]
            upper = np.take_along_axis(gaps, (counts // 2)[:, None], axis=1)[:, 0]
            predicted[rows] = (lower + upper) / 2
        return {}, predicted


# ----------------------------------------------------------------------------- one table


def default_baselines(k: int = 5) -> dict[str, NextEventPredictor]:
    """The baselines `evaluate_baselines` runs by default, by display name (unfitted, top-k of k)."""
    return {
        "most frequent": MostFrequentBaseline(k=k),
        "markov order 1": MarkovBaseline(order=1, k=k),
        "markov order 2": MarkovBaseline(order=2, k=k),
        "inter-event time (median)": InterEventTimeBaseline(statistic="median"),
    }


def evaluate_baselines(
    train: SequenceDataset,
    test: SequenceDataset,
    ks: Sequence[int] = (1, 5),
    baselines: Mapping[str, NextEventPredictor] | None = None,
) -> pl.DataFrame:
    """Fit each baseline on `train` and score its next-event predictions on `test`.

    Args:
        train: dataset the baselines learn from.
        test: dataset scored (its own preceding events are the context of each target).
        ks: the k of accuracy@k.
        baselines: name -> unfitted model with `fit(dataset)` and `predict(dataset) -> (topk,
            predicted_delta)`; None = `default_baselines(max(ks))`.

    Returns:
        One row per baseline: `baseline`, `{field}_acc@{k}` for every categorical field of the
        schema and every k (null where a baseline predicts no such field), `time_mae_seconds`,
        `time_mae_log` (null where it predicts no gap).

    Raises:
        ConfigError: bad ks or baseline parameters. DataError: no targets in train or test, or
            predictions that do not match the targets (see `next_event_metrics`).
    """
    ks = _check_ks(ks)
    baselines = default_baselines(max(ks)) if baselines is None else baselines
    targets = next_event_targets(test)
    columns = [f"{feature.name}_acc@{k}" for feature in test.schema.categorical for k in ks]
    columns += ["time_mae_seconds", "time_mae_log"]
    rows = []
    for name, model in baselines.items():
        topk, predicted_delta = model.fit(train).predict(test)
        rows.append(next_event_metrics(topk, targets, predicted_delta, ks))
    data = {"baseline": list(baselines)}
    for column in columns:
        data[column] = [row.get(column) for row in rows]
    return pl.DataFrame(data, schema={"baseline": pl.String, **{column: pl.Float64 for column in columns}})
