from __future__ import annotations

import pytest
import torch

from eventseq.errors import ConfigError
from eventseq.nn import EventEncoder, EventEncoderConfig, MaskedBatchNorm


def test_padding_positions_are_zero(small_prepared, small_batch):
    encoder = EventEncoder(small_prepared.schema, EventEncoderConfig(output_dim=8))
    vectors = encoder(small_batch)  # [B, T, 8]
    assert vectors.shape == (12, 12, 8)
    assert torch.all(vectors[~small_batch.mask] == 0)
    assert torch.any(vectors[small_batch.mask] != 0)


def test_batch_norm_statistics_ignore_padding():
    norm = MaskedBatchNorm(1)
    norm.norm.momentum = 1.0  # running stats = this batch's stats
    values = torch.tensor([[[1.0], [3.0], [0.0], [0.0]], [[5.0], [0.0], [0.0], [0.0]]])  # [2, 4, 1]
    mask = torch.tensor([[True, True, False, False], [True, False, False, False]])
    output = norm(values, mask)
    assert norm.norm.running_mean.item() == pytest.approx(3.0)  # mean of 1, 3, 5 only
    assert torch.all(output[~mask] == 0)


def test_concat_and_sum_output_sizes(small_prepared, small_batch):
    concat = EventEncoder(small_prepared.schema, EventEncoderConfig(embedding_dims={"shop": 5}))
    # 5 (shop) + 2 scalars (amount, time delta)
    assert concat.output_dim == 7 and concat(small_batch).shape[-1] == 7
    summed = EventEncoder(small_prepared.schema, EventEncoderConfig(combine="sum", default_embedding_dim=6))
    assert summed.output_dim == 6 and summed(small_batch).shape[-1] == 6


def test_unknown_embedding_field_is_a_config_error(small_prepared):
    with pytest.raises(ConfigError, match="did you mean 'shop'"):
        EventEncoder(small_prepared.schema, EventEncoderConfig(embedding_dims={"shp": 4}))


def test_ids_beyond_vocabulary_are_reported(small_prepared, small_batch):
    encoder = EventEncoder(small_prepared.schema)
    small_batch.features["shop"][0, 0] = 99
    with pytest.raises(ConfigError, match="different schema"):
        encoder(small_batch)
