"""Shared helpers for the end-to-end tests: tiny synthetic data, prepared once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventseq.data import PrepareConfig, prepare
from eventseq.datasets.synthetic import SYNTHETIC_COLUMNS, make_transactions
from eventseq.training import TrainConfig


@pytest.fixture(scope="session")
def synthetic():
    return make_transactions(240, min_length=5, max_length=30, seed=3)


@pytest.fixture(scope="session")
def raw_dir(synthetic, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("raw")
    synthetic.events.write_parquet(directory / "events.parquet")
    synthetic.labels.write_parquet(directory / "labels.parquet")
    return directory


@pytest.fixture(scope="session")
def prepared_dir(synthetic, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("prepared")
    prepare(synthetic.events, PrepareConfig(**SYNTHETIC_COLUMNS), labels=synthetic.labels, output=directory)
    return directory


def tiny_train_config(prepared_dir: Path, output: Path, **changes) -> TrainConfig:
    config = TrainConfig(output=str(output))
    config.data.path = str(prepared_dir)
    config.data.batch_size = 32
    config.model.sequence_encoder.hidden_size = 8
    config.trainer.max_epochs = 2
    config.trainer.progress_bar = False
    for key, value in changes.items():
        setattr(config, key, value)
    return config


@pytest.fixture(scope="session")
def trained(prepared_dir, tmp_path_factory):
    from eventseq.training import train

    return train(tiny_train_config(prepared_dir, tmp_path_factory.mktemp("run")))
