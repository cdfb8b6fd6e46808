"""eventseq: deep learning on event sequences (transactions, clickstreams, app logs).

The Python API is the CLI's: `prepare` → `train` → `predict` / `embed` → `evaluate`, with
`load_model` for saved models. Submodules: `eventseq.data`, `eventseq.nn`, `eventseq.objectives`,
`eventseq.datasets`.

`import eventseq` loads nothing heavy: each name below is imported on first use (a module
`__getattr__`, as scikit-learn does), so a script that only prepares data never loads Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "PrepareConfig": "eventseq.data.prepare_config",
    "prepare": "eventseq.data.prepare",
    "encode_events": "eventseq.data.encode",
    "load_prepared": "eventseq.data.store",
    "TrainConfig": "eventseq.training",
    "train": "eventseq.training",
    "predict": "eventseq.inference",
    "embed": "eventseq.inference",
    "EvaluateConfig": "eventseq.evaluation",
    "evaluate": "eventseq.evaluation",
    "load_model": "eventseq.saved",
    "save_model": "eventseq.saved",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'eventseq' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
