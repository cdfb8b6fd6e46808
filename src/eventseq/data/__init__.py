"""Data: raw events → sequence table → dataset → batches.

`prepare` and the schema load with the package (Polars, pandas, pyarrow); the torch side (Batch,
SequenceDataset, the sampler) and the splits (scikit-learn) on first use, so that `import eventseq.data`
and `eventseq --help` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from eventseq.data.inputs import read_events
from eventseq.data.encode import encode_events
from eventseq.data.prepare import SequencePreparer, prepare
from eventseq.data.prepare_config import PrepareConfig
from eventseq.data.schema import CategoricalFeature, NumericFeature, Schema, Target, TextFeature
from eventseq.data.store import PreparedData, PrepareReport, load_prepared

# public name -> the module that defines it, imported on first use
_LAZY = {
    "Batch": "eventseq.data.batch",
    "SequenceDataset": "eventseq.data.dataset",
    "LengthBucketSampler": "eventseq.data.sampler",
    "split_by_entity": "eventseq.data.splits",
    "split_by_time": "eventseq.data.splits",
}

__all__ = [
    "Batch", "SequenceDataset", "PrepareConfig", "PreparedData", "PrepareReport", "SequencePreparer",
    "encode_events", "load_prepared", "prepare", "read_events", "LengthBucketSampler",
    "CategoricalFeature", "NumericFeature", "Schema", "Target", "TextFeature", "split_by_entity", "split_by_time",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'eventseq.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
