from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from eventseq.data import PrepareConfig, SequenceDataset, prepare


@pytest.fixture
def small_prepared():
    """12 entities with 1..12 events each: a categorical, a numeric, int times."""
    rng = np.random.default_rng(0)
    lengths = np.arange(1, 13)
    entity = np.repeat(np.arange(12), lengths)
    events = pl.DataFrame(
        {
            "client": entity,
            "time": np.concatenate([np.sort(rng.integers(0, 10_000, n)) for n in lengths]),
            "shop": rng.choice(["a", "b", "c", "d"], size=len(entity)),
            "amount": rng.normal(50, 20, size=len(entity)),
        }
    )
    labels = pl.DataFrame({"client": np.arange(12), "label": np.arange(12) % 2})
    config = PrepareConfig(
        id_column="client", time_column="time", categorical=["shop"], numeric=["amount"], targets={"label": "binary"}
    )
    return prepare(events, config, labels=labels)


@pytest.fixture
def small_batch(small_prepared):
    dataset = SequenceDataset.from_table(small_prepared.table, small_prepared.schema, target="label")
    return dataset.collate(np.arange(len(dataset)))
