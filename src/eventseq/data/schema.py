"""The schema: what each column of a sequence table is, and its fitted state.

Fitted once by `prepare`, saved as JSON next to the data and inside every saved model, so that
inference encodes raw events exactly as training did.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from eventseq.errors import ConfigError, FileFormatError

PADDING_ID = 0  # categorical id reserved for padding positions
UNKNOWN_ID = 1  # categorical id for unseen, rare or null values
FIRST_VALUE_ID = 2

NUMERIC_TRANSFORMS = ("identity", "log", "standardize", "log_standardize")
TARGET_TASKS = ("binary", "multiclass", "multilabel", "regression")
TIME_COLUMN = "event_time"  # name of the time list column in every sequence table
SCHEMA_VERSION = 1


@dataclass
class CategoricalFeature:
    """A categorical event field. `vocabulary[i]` is encoded as id `i + FIRST_VALUE_ID`."""

    name: str
    vocabulary: list[str] = field(default_factory=list)
    kind: str = "categorical"

    @property
    def num_embeddings(self) -> int:
        """Table size for an embedding: padding + unknown + every vocabulary value."""
        return len(self.vocabulary) + FIRST_VALUE_ID


@dataclass
class NumericFeature:
    """A numeric event field with its transform and fitted mean/std (used by standardize)."""

    name: str
    transform: str = "identity"
    mean: float = 0.0
    std: float = 1.0
    edges: list[float] = field(default_factory=list)
    kind: str = "numeric"

    @property
    def bucket_edges(self) -> list[float]:
        """The inner quantile edges: value v falls in bucket `#{edges <= v}`, 0 .. len(edges).

        `edges` holds the fitted quantiles 0, 1/n, .., 1 of the transformed value (prepare's
        `quantize`), deduplicated; the outer two bound piecewise-linear encoding.
        """
        return self.edges[1:-1]

    @property
    def num_buckets(self) -> int:
        return max(len(self.edges) - 1, 0)


@dataclass
class TextFeature:
    """A free-text event field (merchant name, product title) encoded by a sentence encoder.

    The sequence table holds per-dataset text ids (0 padding, 1 missing text); the vectors are in
    the dataset's text table (see eventseq.data.text). `encoder` names an entry of
    `eventseq.data.text.TEXT_ENCODERS`, so inference can encode new texts the same way.
    """

    name: str
    encoder: str
    dim: int  # size of the encoder's vectors
    kind: str = "text"


@dataclass
class Target:
    """A per-entity target. `classes` maps encoded index -> original value (classification)."""

    name: str
    task: str
    classes: list[Any] | None = None


@dataclass
class EventBpe:
    """Event byte-pair encoding fitted by `prepare` (data/bpe.py).

    Each event's base token combines the values of `fields` (categorical ids, quantile buckets of
    numerics); merge k turns the adjacent pair `merges[k]` into token `base_size + k`.
    `vocabulary[i]` is the token encoded as categorical id `i + FIRST_VALUE_ID` in the
    `event_token` column (tokens never seen in fitting are unknown).
    `features` is the full fitted feature list of the raw events, so that inference can encode
    raw events before applying the merges.
    """

    fields: list[str]
    merges: list[list[int]]
    features: list[CategoricalFeature | NumericFeature]
    base_size: int
    vocabulary: list[int] = field(default_factory=list)


@dataclass
class Schema:
    """Fitted description of a sequence table; see module docstring."""

    id_column: str
    time_column: str  # name of the time column in the raw event table
    time_kind: str  # "int" (integers in time_unit) or "datetime"
    features: list[CategoricalFeature | NumericFeature | TextFeature]
    targets: list[Target] = field(default_factory=list)
    invalid_numeric: str = "error"
    fill_value: float = 0.0
    bpe: EventBpe | None = None
    source_column: str | None = None  # several sources merged into one stream (data/sources.py)
    sources: dict[str, list[str]] = field(default_factory=dict)  # source -> the features it has
    time_unit: str = "s"  # unit of integer raw times (data/times.py); they are stored as seconds
    version: int = SCHEMA_VERSION

    @property
    def categorical(self) -> list[CategoricalFeature]:
        return [f for f in self.features if isinstance(f, CategoricalFeature)]

    @property
    def numeric(self) -> list[NumericFeature]:
        return [f for f in self.features if isinstance(f, NumericFeature)]

    @property
    def text(self) -> list[TextFeature]:
        return [f for f in self.features if isinstance(f, TextFeature)]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def target(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        from eventseq.errors import did_you_mean

        known = [t.name for t in self.targets]
        raise ConfigError(
            f"target '{name}' is not in the schema (targets: {known}){did_you_mean(name, known)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def fingerprint(self) -> str:
        """Short hash of the encoding state: equal fingerprints encode raw data identically.

        Fitted floats (means, stds, quantile edges) count to 10 significant digits: two engines
        summing in another order (Polars, Spark) differ in the last bits of a mean, which changes
        no float32 value of the table, and must not make the same data look differently encoded.
        """
        payload = _rounded(self.to_dict())
        payload.pop("targets")
        if payload.get("time_unit") == "s":  # the default: schemas fitted before time_unit keep their hash
            payload.pop("time_unit")
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Schema:
        try:
            features = _features_from_dicts(payload["features"])
            targets = [Target(**t) for t in payload.get("targets", [])]
            bpe = None
            if payload.get("bpe") is not None:
                bpe_payload = dict(payload["bpe"])
                bpe_payload["features"] = _features_from_dicts(bpe_payload["features"])
                bpe = EventBpe(**bpe_payload)
            rest = {k: v for k, v in payload.items() if k not in ("features", "targets", "bpe")}
            return cls(features=features, targets=targets, bpe=bpe, **rest)
        except (KeyError, TypeError) as error:
            raise FileFormatError(f"not an eventseq schema: {error}") from None

    @classmethod
    def from_json(cls, text: str) -> Schema:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as error:
            raise FileFormatError(f"schema is not valid JSON: {error}") from None


def _rounded(value: Any) -> Any:
    """`value` with every float rounded to 10 significant digits (nested dicts and lists)."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _features_from_dicts(items: list[dict[str, Any]]) -> list[CategoricalFeature | NumericFeature | TextFeature]:
    features: list[CategoricalFeature | NumericFeature | TextFeature] = []
    for item in items:
        item = dict(item)
        kind = item.pop("kind")
        if kind == "categorical":
            features.append(CategoricalFeature(**item))
        elif kind == "numeric":
            features.append(NumericFeature(**item))
        elif kind == "text":
            features.append(TextFeature(**item))
        else:
            raise FileFormatError(f"schema feature '{item.get('name')}' has unknown kind '{kind}'")
    return features
