"""EventEncoder with text fields: sizes, padding, and that a text's vector reaches only its events."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from eventseq.data import PrepareConfig, SequenceDataset, prepare
from eventseq.errors import ConfigError
from eventseq.nn import EventEncoder, EventEncoderConfig

# three clients; "Book Shop" occurs once (client 3's only event), "Coffee Bar" twice
EVENTS = {
    "client": [1, 1, 1, 2, 2, 3],
    "ts": [10, 20, 30, 10, 20, 10],
    "shop": ["a", "b", "a", "b", "a", "b"],
    "merchant": ["Coffee Bar", "Taxi", None, "Coffee Bar", "Taxi", "Book Shop"],
    "amount": [3.0, 12.0, 1.0, 2.5, 4.0, 20.0],
}


@pytest.fixture
def prepared(text_encoder):
    config = PrepareConfig(id_column="client", time_column="ts", categorical=["shop"], numeric=["amount"],
                           text=["merchant"], text_encoder="test-counting")
    return prepare(pl.DataFrame(EVENTS), config)


@pytest.fixture
def dataset(prepared):
    return SequenceDataset.from_table(prepared.table, prepared.schema, texts=prepared.texts)


def _encode(encoder: EventEncoder, dataset: SequenceDataset) -> torch.Tensor:
    with torch.no_grad():
        return encoder.eval()(dataset.collate(np.arange(len(dataset))))  # [B, T, D]


def test_changing_one_texts_vector_changes_only_its_events(prepared, dataset):
    torch.manual_seed(0)
    encoder = EventEncoder(prepared.schema, EventEncoderConfig(output_dim=8))
    before = _encode(encoder, dataset)
    book_shop = 2  # the first text in sorted order
    dataset.text_vectors["merchant"][book_shop] += 1.0
    after = _encode(encoder, dataset)
    changed = (before != after).any(dim=-1)  # [B, T]
    assert changed.tolist() == [[False, False, False], [False, False, False], [True, False, False]]


def test_a_text_used_twice_changes_both_events(prepared, dataset):
    encoder = EventEncoder(prepared.schema, EventEncoderConfig(output_dim=8))
    before = _encode(encoder, dataset)
    dataset.text_vectors["merchant"][3] -= 0.5  # Coffee Bar: client 1 event 0, client 2 event 0
    changed = (before != _encode(encoder, dataset)).any(dim=-1)
    assert changed.nonzero().tolist() == [[0, 0], [1, 0]]


def test_padding_is_zero_and_a_missing_text_differs_from_a_present_one(prepared, dataset):
    encoder = EventEncoder(prepared.schema, EventEncoderConfig(embedding_dims={"merchant": 4}, time_delta=False, calendar=False))
    vectors = _encode(encoder, dataset)
    batch = dataset.collate(np.arange(3))
    assert torch.all(vectors[~batch.mask] == 0)
    text_part = vectors[..., -4:]  # concat order: shop, amount, then the text projection
    bias = encoder.text_projections["merchant"].bias.detach()
    torch.testing.assert_close(text_part[0, 2], bias)  # client 1's null merchant: the zero vector, projected
    assert not torch.allclose(text_part[0, 0], bias)


def test_sizes_with_concat_sum_and_field_transformer(prepared, dataset):
    batch = dataset.collate(np.arange(3))
    concat = EventEncoder(prepared.schema, EventEncoderConfig(embedding_dims={"shop": 3, "merchant": 5}))
    # 3 (shop) + 2 scalars (amount, time delta) + 4 calendar scalars + 5 (merchant)
    assert concat.output_dim == 14 and concat(batch).shape == (3, 3, 14)
    assert concat.text_projections["merchant"].in_features == prepared.schema.text[0].dim
    default = EventEncoder(prepared.schema, EventEncoderConfig(embedding_dims={"shop": 3}))
    assert default.text_projections["merchant"].out_features == 32
    summed = EventEncoder(prepared.schema, EventEncoderConfig(combine="sum", default_embedding_dim=6))
    assert summed(batch).shape == (3, 3, 6)
    fields = EventEncoder(prepared.schema, EventEncoderConfig(combine="field_transformer", default_embedding_dim=4))
    assert fields.field_names == ["shop", "amount", "time_delta", "day_sin", "day_cos", "week_sin", "week_cos",
                                  "merchant"]
    field_mask = torch.zeros(3, 3, fields.field_count, dtype=torch.bool)
    assert fields(batch, field_mask).shape == (3, 3, 4)


def test_a_batch_without_text_vectors_is_a_config_error(prepared, dataset):
    batch = dataset.collate(np.arange(3))
    batch.text_vectors.clear()
    with pytest.raises(ConfigError, match="no text vectors for text field 'merchant'"):
        EventEncoder(prepared.schema)(batch)


def test_embedding_dims_may_name_a_text_field_but_not_an_unknown_one(prepared):
    with pytest.raises(ConfigError, match="did you mean 'merchant'"):
        EventEncoder(prepared.schema, EventEncoderConfig(embedding_dims={"merchnt": 4}))
