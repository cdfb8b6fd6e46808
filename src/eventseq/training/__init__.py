"""Training: supervised (`train`) and self-supervised (`pretrain`) runs, and the Lightning wiring they share.

- `training/config.py`: `TrainConfig`, `PretrainConfig` and their sections (data, trainer, auto, combine, cv);
- `training/runs.py`: `train`, `pretrain` (also `encoder=auto` and data.streaming);
- `training/trainer.py`: loaders, loggers, the Trainer, `fit_module`, `finish_run` (the recommender's
  runs use them too);
- `training/callbacks.py`: checkpoints, epoch lines, the NaN guard, signals, bit-identical resume.
"""

from __future__ import annotations

from eventseq.training.callbacks import RunInterrupted, TrainingDiverged
from eventseq.training.config import (
    AutoSection,
    CombineSection,
    CrossValidationSection,
    DataSection,
    PretrainAutoSection,
    PretrainConfig,
    PretrainSettings,
    TrainConfig,
    TrainerSection,
    TrainResult,
)
from eventseq.training.runs import pretrain, train

__all__ = [
    "AutoSection", "CombineSection", "CrossValidationSection", "DataSection", "PretrainAutoSection", "PretrainConfig", "PretrainSettings",
    "TrainConfig", "TrainerSection", "TrainResult", "RunInterrupted", "TrainingDiverged",
    "pretrain", "train",
]
