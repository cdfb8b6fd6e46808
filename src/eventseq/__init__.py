"""eventseq: deep learning on event sequences (transactions, clickstreams, app logs).

The Python API is the CLI's: `prepare` → `train` → `predict` / `embed`, with `load_model` for
saved models. Submodules: `eventseq.data`, `eventseq.nn`, `eventseq.objectives`,
`eventseq.datasets`.
"""

__version__ = "0.1.0"

from eventseq.data.prepare import PrepareConfig, encode_events, load_prepared, prepare  # noqa: E402
from eventseq.inference import embed, predict  # noqa: E402
from eventseq.saved import load_model, save_model  # noqa: E402
from eventseq.training import TrainConfig, train  # noqa: E402

__all__ = [
    "PrepareConfig", "prepare", "encode_events", "load_prepared", "TrainConfig", "train",
    "predict", "embed", "load_model", "save_model", "__version__",
]
