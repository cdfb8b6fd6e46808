"""The default supervised model: the network stacked with gradient boosting over per-entity aggregates.

With a few hundred entities a sequence network can lose to LightGBM over classical aggregates (event
counts, category fractions, numeric statistics: `downstream.AggregateFeatures`); with many it wins.
`eventseq train` therefore fits both and stacks them, so the model a user gets follows the better one
on their data instead of leaving it to chance:

- **aggregates part**: `AggregateFeatures` fitted on the train + valid entities, LightGBM (the
  `downstream.DEFAULT_PARAMS["lightgbm"]` settings) over them, fitted on train + valid. Its scores
  for train + valid are out of fold (`folds` models, each fitted without the fold).
- **network part**: the trained network (early-stopped on the validation entities), or on small data
  the average of one network per fold, whose out-of-fold outputs cover train + valid (train's cv.below).
- **stack**: per output k, `z_k = a · network_k + b · aggregates_k + c_k` with `a, b >= 0`, where
  each part's output is a logit (binary, multilabel), a log-probability (multiclass) or a value
  (regression); fitted by the task's own loss (log loss, cross-entropy, squared error) on the
  entities whose network outputs are out of sample: the validation part, or all of train + valid
  when the network was cross-validated. Its outputs are calibrated probabilities. Two weights and a
  bias per output cannot overfit a hundred entities the way a second LightGBM would.

The test entities are used by neither part nor the stack: metrics.json reports each part and the
stack on them ("network 0.63, aggregates 0.65, combined 0.68").

Saved inside the model directory as `combined.json` (the aggregates' fitted state, the stack's
weights, the parts' scores) and `lightgbm-<k>.txt` (LightGBM's own text format): nothing is pickled.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from eventseq.data.schema import Schema
from eventseq.data.splits import entity_folds
from eventseq.errors import ConfigError, FileFormatError

COMBINED_FILE = "combined.json"
BOOSTER_FILE = "lightgbm-{}.txt"  # one booster per output column; one for all classes of a multiclass task
BOOSTER_PATTERN = "lightgbm-*.txt"
FORMAT_VERSION = 1
MIN_VALID_ENTITIES = 10  # fewer validation entities than this: no stack is fitted (the network alone)
_EPS = 1e-7


def _booster_count(task: str, outputs: int) -> int:
    return 1 if task in ("binary", "multiclass") else outputs


def _lightgbm_params(task: str, outputs: int, seed: int) -> tuple[dict[str, Any], int]:
    """LightGBM's parameters (downstream's defaults: one place for them) and its number of rounds."""
    from eventseq.downstream import DEFAULT_PARAMS

    params = dict(DEFAULT_PARAMS["lightgbm"])
    rounds = int(params.pop("n_estimators"))
    objective = {"binary": "binary", "multilabel": "binary", "multiclass": "multiclass", "regression": "regression"}
    params.update(objective=objective[task], seed=seed)
    if task == "multiclass":
        params["num_class"] = outputs
    return params, rounds


def _fit_boosters(X: np.ndarray, y: np.ndarray, task: str, outputs: int, seed: int) -> list[Any]:
    import lightgbm

    params, rounds = _lightgbm_params(task, outputs, seed)
    columns = y.reshape(len(y), -1)
    return [lightgbm.train(params, lightgbm.Dataset(X, columns[:, k] if task in ("multilabel", "regression")
                                                    else y.reshape(-1)), num_boost_round=rounds)
            for k in range(_booster_count(task, outputs))]


def _booster_outputs(boosters: list[Any], X: np.ndarray, task: str) -> np.ndarray:
    """[N, K] logits (binary, multilabel), log-probabilities (multiclass) or values (regression)."""
    raw = np.column_stack([np.asarray(booster.predict(X, raw_score=True)).reshape(len(X), -1)
                           for booster in boosters])
    if task == "multiclass":
        raw = raw - raw.max(axis=1, keepdims=True)
        raw = raw - np.log(np.exp(raw).sum(axis=1, keepdims=True))
    return raw


def network_scale(task: str, values: np.ndarray) -> np.ndarray:
    """A network's predict outputs (probabilities or values) [N, K] on the stack's scale (logits, log-probabilities)."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if task in ("binary", "multilabel"):
        p = np.clip(values, _EPS, 1 - _EPS)
        return np.log(p) - np.log1p(-p)
    if task == "multiclass":
        return np.log(np.clip(values, _EPS, 1.0))
    return values


def _link(task: str, z: np.ndarray) -> np.ndarray:
    """Stack outputs → probabilities (classification) or values."""
    if task in ("binary", "multilabel"):
        return 1.0 / (1.0 + np.exp(-z))
    if task == "multiclass":
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    return z


def _targets_matrix(task: str, y: np.ndarray, outputs: int) -> np.ndarray:
    """y as [N, K]: one-hot classes (multiclass), else the columns."""
    if task == "multiclass":
        return np.eye(outputs)[np.asarray(y, dtype=np.int64).reshape(-1)]
    return np.asarray(y, dtype=np.float64).reshape(len(y), -1)


@dataclass
class Stack:
    """`z = a · network + b · aggregates + bias` per output (a, b >= 0), then the task's link."""

    task: str
    weights: list[float]  # [a, b]
    bias: list[float]  # one per output

    @classmethod
    def fit(cls, task: str, network: np.ndarray, aggregates: np.ndarray, y: np.ndarray) -> Stack:
        """Fit on one set of entities by the task's loss; `network`, `aggregates` [N, K] on the stack's scale."""
        from scipy.optimize import minimize

        outputs = network.shape[1]
        Y = _targets_matrix(task, y, outputs)
        n = len(Y)
        if task == "regression":  # least squares, per-output centring takes the bias
            mean_y, mean_n, mean_a = Y.mean(0), network.mean(0), aggregates.mean(0)
            A = np.column_stack([(network - mean_n).reshape(-1), (aggregates - mean_a).reshape(-1)])
            from scipy.optimize import nnls

            (a, b), _ = nnls(A, (Y - mean_y).reshape(-1))
            return cls(task, [float(a), float(b)], [float(v) for v in mean_y - a * mean_n - b * mean_a])

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            a, b, c = theta[0], theta[1], theta[2:]
            z = a * network + b * aggregates + c
            if task == "multiclass":
                shifted = z - z.max(axis=1, keepdims=True)
                log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
                value = -float((Y * log_p).sum()) / n
                residual = np.exp(log_p) - Y
            else:  # binary / multilabel: log loss summed over the outputs
                value = float((np.logaddexp(0.0, z) - Y * z).sum()) / n
                residual = 1.0 / (1.0 + np.exp(-z)) - Y
            gradient = np.concatenate([[(residual * network).sum() / n, (residual * aggregates).sum() / n],
                                       residual.sum(axis=0) / n])
            return value, gradient

        start = np.concatenate([[0.5, 0.5], np.zeros(outputs)])
        bounds = [(0.0, None), (0.0, None)] + [(None, None)] * outputs
        theta = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds).x
        return cls(task, [float(theta[0]), float(theta[1])], [float(v) for v in theta[2:]])

    def outputs(self, network: np.ndarray, aggregates: np.ndarray) -> np.ndarray:
        """Probabilities (classification) or values [N, K] from the parts on the stack's scale."""
        a, b = self.weights
        return _link(self.task, a * network + b * aggregates + np.asarray(self.bias))


def scores(task: str, y: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """The task's metrics of probabilities / values [N, K], named as training logs them (auroc, accuracy, f1; rmse, mae)."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    outputs = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    result: dict[str, float] = {}
    if task == "regression":
        error = outputs - np.asarray(y, dtype=np.float64).reshape(outputs.shape)
        return {"rmse": float(np.sqrt(np.mean(error ** 2))), "mae": float(np.mean(np.abs(error)))}
    if task == "binary":
        y = np.asarray(y).reshape(-1).astype(np.int64)
        predicted = (outputs[:, 0] >= 0.5).astype(np.int64)
        if len(np.unique(y)) == 2:
            result["auroc"] = float(roc_auc_score(y, outputs[:, 0]))
        result["accuracy"] = float(accuracy_score(y, predicted))
        result["f1"] = float(f1_score(y, predicted, zero_division=0))
    elif task == "multiclass":
        y = np.asarray(y).reshape(-1).astype(np.int64)
        predicted = outputs.argmax(axis=1)
        result["accuracy"] = float(accuracy_score(y, predicted))
        result["f1"] = float(f1_score(y, predicted, average="macro", labels=np.arange(outputs.shape[1]),
                                      zero_division=0))
        if len(np.unique(y)) == outputs.shape[1]:
            result["auroc"] = float(roc_auc_score(y, outputs, multi_class="ovr", average="macro"))
    else:  # multilabel
        y = np.asarray(y).reshape(outputs.shape).astype(np.int64)
        predicted = (outputs >= 0.5).astype(np.int64)
        usable = [k for k in range(y.shape[1]) if len(np.unique(y[:, k])) == 2]
        if usable:
            result["auroc"] = float(np.mean([roc_auc_score(y[:, k], outputs[:, k]) for k in usable]))
        result["accuracy"] = float(np.mean(predicted == y))
        result["f1"] = float(f1_score(y, predicted, average="macro", zero_division=0))
    return result


@dataclass
class CombinedModel:
    """The aggregates part (fitted feature state + LightGBM boosters) and the stack over it and the network."""

    task: str
    outputs: int
    aggregates: dict[str, Any]  # AggregateFeatures' settings and fitted categories
    stack: Stack
    boosters: list[Any] = field(repr=False)
    parts: dict[str, dict[str, float]] = field(default_factory=dict)  # each part's scores, for the record

    def _features(self, table: pl.DataFrame, schema: Schema) -> np.ndarray:
        from eventseq.downstream import AggregateFeatures

        features = AggregateFeatures(schema, self.aggregates["max_categories"], self.aggregates["raw_numeric"])
        features.categories_ = {name: list(ids) for name, ids in self.aggregates["categories"].items()}
        frame = features.transform(table)
        return frame.drop(schema.id_column).cast(pl.Float64).to_numpy()

    def aggregate_outputs(self, table: pl.DataFrame, schema: Schema) -> np.ndarray:
        """The aggregates part's outputs [N, K] (stack's scale) for the entities of a sequence table, in its order."""
        return _booster_outputs(self.boosters, self._features(table, schema), self.task)

    def predict(self, table: pl.DataFrame, schema: Schema, network_outputs: np.ndarray) -> np.ndarray:
        """The combined probabilities / values [N, K] of the entities of `table` (a sequence table, in its
        order), given the network's outputs for them (`predict_outputs`: probabilities or values)."""
        network = network_scale(self.task, network_outputs)
        return self.stack.outputs(network, self.aggregate_outputs(table, schema))

    def save(self, directory: str | os.PathLike) -> None:
        """`combined.json` and the boosters' text files into `directory` (a model directory being written)."""
        directory = Path(directory)
        for k, booster in enumerate(self.boosters):
            booster.save_model(str(directory / BOOSTER_FILE.format(k)))
        payload = {"format": FORMAT_VERSION, "task": self.task, "outputs": self.outputs, "aggregates": self.aggregates,
                   "stack": {"weights": self.stack.weights, "bias": self.stack.bias}, "parts": self.parts,
                   "boosters": len(self.boosters)}
        (directory / COMBINED_FILE).write_text(json.dumps(payload, indent=2))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> CombinedModel:
        """Read what `save` wrote (LightGBM's text format, JSON: nothing unpickled).

        Raises:
            FileFormatError: a file missing, unreadable or inconsistent, named.
        """
        import lightgbm

        directory = Path(directory)
        path = directory / COMBINED_FILE
        try:
            payload = json.loads(path.read_text())
            task, outputs = payload["task"], int(payload["outputs"])
            stack = Stack(task, [float(w) for w in payload["stack"]["weights"]],
                          [float(b) for b in payload["stack"]["bias"]])
            aggregates = payload["aggregates"]
            count = int(payload["boosters"])
            if len(stack.weights) != 2 or len(stack.bias) != outputs or count != _booster_count(task, outputs) or \
                    not all(math.isfinite(v) for v in stack.weights + stack.bias):
                raise ValueError("the stack's weights, bias or booster count do not fit the task")
            missing = [key for key in ("max_categories", "raw_numeric", "categories") if key not in aggregates]
            if missing:
                raise KeyError(f"aggregates.{missing[0]}")
        except FileNotFoundError:
            raise FileFormatError(f"{path} not found: the model was saved combined, its aggregates part is missing"
                                  ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise FileFormatError(f"{path} does not describe a combined model: {error}") from None
        boosters = []
        for k in range(count):
            booster_path = directory / BOOSTER_FILE.format(k)
            if not booster_path.is_file():
                raise FileFormatError(f"{booster_path} not found: the combined model's aggregates part is incomplete")
            try:
                boosters.append(lightgbm.Booster(model_file=str(booster_path)))
            except lightgbm.basic.LightGBMError as error:
                raise FileFormatError(f"cannot read {booster_path}: corrupt LightGBM model ({error})") from None
        return cls(task, outputs, aggregates, stack, boosters, payload.get("parts", {}))


def why_not_combined(task: str, y_valid: np.ndarray, outputs: int) -> str | None:
    """Why no stack can be fitted on these validation targets (None: it can)."""
    if len(y_valid) < MIN_VALID_ENTITIES:
        return f"{len(y_valid)} validation entities, fewer than {MIN_VALID_ENTITIES}"
    if task in ("binary", "multiclass") and len(np.unique(np.asarray(y_valid).reshape(-1))) < 2:
        return "the validation entities hold one class"
    return None


def fit_combined(
    table: pl.DataFrame,
    schema: Schema,
    task: str,
    y: np.ndarray,
    network_outputs: np.ndarray,
    parts: dict[str, np.ndarray],
    folds: int | list[tuple[np.ndarray, np.ndarray]] = 5,
    max_categories: int | None = 50,
    seed: int = 0,
    stack_rows: np.ndarray | None = None,
) -> CombinedModel:
    """Fit the aggregates part and the stack.

    Args:
        table: the sequence table, one row per entity (the prepared table).
        schema: its schema.
        task: binary, multiclass, multilabel or regression.
        y: the targets per row of `table`: class indices (binary, multiclass) [N], or [N, K].
        network_outputs: the trained network's `predict_outputs` per row of `table` [N, K]
            (only the stack's and the test rows are read).
        parts: row positions of "train", "valid" and "test" (test may be empty).
        folds: folds of the aggregates part's out-of-fold outputs over train + valid: a number, or the
            folds themselves as (trained on, left out) positions into train + valid (in that order),
            the same as the network's when it was cross-validated.
        max_categories: AggregateFeatures' count / fraction columns per categorical feature.
        seed: LightGBM's seed and the folds'.
        stack_rows: the rows the stack is fitted on, those whose network outputs are out of sample:
            the validation part (None), or all of train + valid when the network outputs are out of fold.

    Returns:
        The fitted CombinedModel; `parts` holds each part's scores on the stack's rows ("val_"; the
        stack's own score there is in-sample: it is fitted there) and on the test entities.
    """
    from eventseq.downstream import AggregateFeatures

    outputs = int(np.asarray(network_outputs).reshape(len(network_outputs), -1).shape[1])
    train, valid, test = (np.asarray(parts.get(name, []), dtype=np.int64) for name in ("train", "valid", "test"))
    fit_rows = np.concatenate([train, valid])
    stack_rows = valid if stack_rows is None else np.asarray(stack_rows, dtype=np.int64)
    position = np.full(len(table), -1, dtype=np.int64)  # row of the table -> its place in fit_rows
    position[fit_rows] = np.arange(len(fit_rows))
    if (position[stack_rows] < 0).any():
        raise ValueError("fit_combined: stack_rows must be train or valid rows")
    reason = why_not_combined(task, y[stack_rows], outputs)
    if reason is not None:
        raise ConfigError(f"cannot combine the network with the aggregates: {reason}")
    features = AggregateFeatures(schema, max_categories).fit(table[fit_rows])
    X = features.transform(table).drop(schema.id_column).cast(pl.Float64).to_numpy()
    # out of fold: each train + valid entity scored by a booster fitted without it
    out_of_fold = np.zeros((len(fit_rows), outputs))
    stratify = y[fit_rows] if task in ("binary", "multiclass") else None
    cuts = entity_folds(len(fit_rows), folds, seed, stratify) if isinstance(folds, int) else folds
    for inside, outside in cuts:
        boosters = _fit_boosters(X[fit_rows[inside]], y[fit_rows[inside]], task, outputs, seed)
        out_of_fold[outside] = _booster_outputs(boosters, X[fit_rows[outside]], task)
    aggregates_valid = out_of_fold[position[stack_rows]]
    network = network_scale(task, network_outputs)
    stack = Stack.fit(task, network[stack_rows], aggregates_valid, y[stack_rows])
    boosters = _fit_boosters(X[fit_rows], y[fit_rows], task, outputs, seed)
    state = {"max_categories": max_categories, "raw_numeric": features.raw_numeric,
             "categories": {name: [int(i) for i in ids] for name, ids in features.categories_.items()}}
    model = CombinedModel(task, outputs, state, stack, boosters)
    record: dict[str, dict[str, float]] = {}
    for part, rows, aggregates in (("valid", stack_rows, aggregates_valid), ("test", test, None)):
        if not len(rows):
            continue
        if aggregates is None:
            aggregates = _booster_outputs(boosters, X[rows], task)
        for name, values in (("network", _link(task, network[rows])), ("aggregates", _link(task, aggregates)),
                             ("combined", stack.outputs(network[rows], aggregates))):
            for metric, value in scores(task, y[rows], values).items():
                record.setdefault(name, {})[f"{'val' if part == 'valid' else part}_{metric}"] = value
    model.parts = record
    return model
