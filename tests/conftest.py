"""Shared small, hand-made fixtures. Every value is chosen so expected outputs can be written by hand."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import torch

from eventseq.data import PrepareConfig, PreparedData, prepare
from eventseq.datasets.synthetic import SYNTHETIC_COLUMNS, make_transactions
from eventseq.training import TrainConfig


def pytest_configure(config):
    # Tiny models gain nothing from threads, and OpenMP spin-waits slow them badly on a busy CPU.
    torch.set_num_threads(1)

# Input order matters: rows 1/4 (client 1, ts 20) and rows 0/3 (client 2, ts 30) are time ties,
# which prepare must keep in input order. Category frequencies: food 3, travel 2, cash 1, rare 1,
# null 1, so the vocabulary is [food, travel, cash, rare] -> ids 2, 3, 4, 5.
TINY_EVENT_ROWS = {
    "client_id": [2, 1, 1, 2, 1, 3, 3, 2],
    "ts": [30, 20, 10, 30, 20, 5, 15, 10],
    "mcc": ["food", "travel", "food", "cash", "food", None, "travel", "rare"],
    "amount": [10.0, -3.0, 5.0, 0.0, 2.5, 100.0, 1.0, 7.0],
}


@pytest.fixture
def tiny_events() -> pd.DataFrame:
    """Eight events of three clients (pandas): id, int time, string categorical, float numeric."""
    return pd.DataFrame(TINY_EVENT_ROWS)


@pytest.fixture
def tiny_events_pl() -> pl.DataFrame:
    """The same eight events as a Polars DataFrame."""
    return pl.DataFrame(TINY_EVENT_ROWS)


@pytest.fixture
def tiny_labels() -> pd.DataFrame:
    """One row per client of `tiny_events`: a binary, a multiclass and a regression target."""
    return pd.DataFrame(
        {
            "client_id": [1, 2, 3],
            "churned": [1, 0, 1],
            "segment": ["b", "c", "a"],
            "ltv": [1.5, 2.0, 3.25],
        }
    )


@pytest.fixture
def tiny_config() -> PrepareConfig:
    """The column declaration of `tiny_events` (a fresh object per test)."""
    return PrepareConfig(id_column="client_id", time_column="ts", categorical=["mcc"], numeric=["amount"])


@pytest.fixture
def tiny_prepared(tiny_events: pd.DataFrame, tiny_labels: pd.DataFrame, tiny_config: PrepareConfig) -> PreparedData:
    """`tiny_events` prepared with the binary `churned` target attached."""
    tiny_config.targets = {"churned": "binary"}
    return prepare(tiny_events, tiny_config, labels=tiny_labels)


# ----------------------------------------------------------------- end-to-end fixtures (session-wide)


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
    config.cv.below = 0  # one network on one split; the cross-validated way has tests of its own
    for key, value in changes.items():
        setattr(config, key, value)
    return config


@pytest.fixture(scope="session")
def make_train_config():
    """`make_train_config(prepared_dir, output, **changes)` → a tiny, fast TrainConfig."""
    return tiny_train_config


@pytest.fixture(scope="session")
def trained(prepared_dir, tmp_path_factory):
    from eventseq.training import train

    return train(tiny_train_config(prepared_dir, tmp_path_factory.mktemp("run")))


@pytest.fixture(scope="session")
def causal_trained(prepared_dir, tmp_path_factory):
    """The same tiny GRU run without the recency inputs: causal, as level=event embeddings need."""
    from eventseq.training import train

    config = tiny_train_config(prepared_dir, tmp_path_factory.mktemp("causal_run"))
    config.model.event_encoder.recency = False
    return train(config)


@pytest.fixture(scope="session")
def pretrained(prepared_dir, tmp_path_factory):
    """A tiny CoLES run on `prepared_dir` (2 epochs, hidden size 8)."""
    from eventseq.training import PretrainConfig, pretrain

    config = PretrainConfig(output=str(tmp_path_factory.mktemp("coles")))
    config.data.path = str(prepared_dir)
    config.data.batch_size = 32
    config.model.sequence_encoder.hidden_size = 8
    config.coles.views.min_len, config.coles.views.max_len, config.coles.views.split_count = 3, 10, 3
    config.trainer.max_epochs = 2
    config.trainer.progress_bar = False
    return pretrain(config)


# ----------------------------------------------------------------- sharded sequence tables


def write_shards(prepared_dir: Path, output: Path, parts: int | list[int], row_group_size: int | None = None,
                 id_copy: bool = True) -> Path:
    """Split `prepared_dir`'s sequence table into `output/data.parquet/part-*.parquet` (+ schema.json),
    the layout of a sharded prepare: `parts` equal slices, or slices of the given sizes.

    `id_copy` adds an `id_copy` column (the entity id) that tests attach as a target, so every batch
    says which entities it holds.
    """
    import shutil

    import pyarrow.parquet as pq

    table = pl.read_parquet(prepared_dir / "data.parquet")
    if id_copy:
        table = table.with_columns(pl.col("entity_id").alias("id_copy"))
    sizes = parts if isinstance(parts, list) else [len(chunk) for chunk in
                                                    np.array_split(np.arange(table.height), parts)]
    assert sum(sizes) == table.height
    directory = output / "data.parquet"
    directory.mkdir(parents=True)
    shutil.copy(prepared_dir / "schema.json", output / "schema.json")
    start = 0
    for number, size in enumerate(sizes):
        pq.write_table(table.slice(start, size).to_arrow(), directory / f"part-{number:05d}.parquet",
                       row_group_size=row_group_size)
        start += size
    return output


@pytest.fixture(scope="session")
def sharded_dir(prepared_dir, tmp_path_factory) -> Path:
    """The 240 synthetic entities of `prepared_dir` in 4 part files of 60."""
    return write_shards(prepared_dir, tmp_path_factory.mktemp("sharded"), 4)


@pytest.fixture(scope="session")
def make_shards():
    """`make_shards(prepared_dir, output, parts, row_group_size=None)` → a sharded prepare directory."""
    return write_shards

# ----------------------------------------------------------------- text fields (eventseq.data.text)


class CountingTextEncoder:
    """Deterministic stand-in sentence encoder (no model, no download) that records what it encodes.

    A text's vector is the first `dim` bytes of its SHA-256 scaled to [0, 1]: distinct texts get
    distinct vectors, the same text always the same one.
    """

    name = "test-counting"
    dim = 6

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    @property
    def encoded(self) -> list[str]:
        return [text for call in self.calls for text in call]

    def vector(self, text: str) -> np.ndarray:
        import hashlib

        return np.frombuffer(hashlib.sha256(text.encode()).digest()[: self.dim], dtype=np.uint8) / 255.0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([self.vector(text) for text in texts], dtype=np.float32).reshape(len(texts), self.dim)


def _register_counting_encoder(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> CountingTextEncoder:
    from eventseq.data import text

    # the registry is restored when monkeypatch undoes, so no test sees another test's encoder
    monkeypatch.setattr(text, "TEXT_ENCODERS", dict(text.TEXT_ENCODERS))
    monkeypatch.setattr(text, "_loaded", {})
    monkeypatch.setenv(text.CACHE_ENV, str(cache_dir))
    encoder = CountingTextEncoder()
    text.register_text_encoder(encoder)
    return encoder


@pytest.fixture
def text_encoder(monkeypatch, tmp_path) -> CountingTextEncoder:
    """A fresh CountingTextEncoder registered as 'test-counting'; the text cache in tmp_path/text_cache."""
    return _register_counting_encoder(monkeypatch, tmp_path / "text_cache")


@pytest.fixture(scope="module")
def module_text_encoder(tmp_path_factory):
    """The same for a whole test module (for fixtures that train a model once)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield _register_counting_encoder(monkeypatch, tmp_path_factory.mktemp("text_cache"))


# ----------------------------------------------------------------------------- the documentation's examples
DOCS = Path(__file__).resolve().parents[1] / "docs"


def _page_path(page: str) -> Path:
    """docs/<page>, or the README for "README.md"."""
    return DOCS.parent / page if page == "README.md" else DOCS / page


def _python_blocks(page: str) -> list[tuple[str, str]]:
    """(heading, code) of every ```python block of `page`, under the nearest heading above it
    (headings inside code blocks do not count)."""
    blocks, heading, code, language = [], "", None, None
    for line in _page_path(page).read_text().splitlines():
        if code is None and line.startswith("```"):
            language, code = line[3:].strip(), []
        elif code is not None and line.startswith("```"):
            if language == "python":
                blocks.append((heading, "\n".join(code) + "\n"))
            code = None
        elif code is not None:
            code.append(line)
        elif re.match(r"^#{1,4} ", line):
            heading = line
    return blocks


def _python_block(page: str, heading: str) -> str:
    """The first Python example of `page` under `heading` (the heading line as written, e.g. "## Splits")."""
    for found, code in _python_blocks(page):
        if found == heading:
            return code
    raise AssertionError(f"{page} has no ```python block under {heading!r}")


@pytest.fixture
def python_block():
    """`python_block(page, heading)`: the first ```python block of docs/<page> (or README.md) under `heading`."""
    return _python_block


@pytest.fixture
def python_blocks():
    """`python_blocks(page)`: (heading, code) of every ```python block of docs/<page> (or README.md)."""
    return _python_blocks

