from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
import torch

from eventseq.data import PrepareConfig
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
    # 5 (shop) + 2 scalars (amount, time delta) + 4 calendar scalars (time of day, day of week)
    assert concat.output_dim == 11 and concat(small_batch).shape[-1] == 11
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


@pytest.fixture
def quantized(small_prepared):
    """The small data again, with `amount` quantized into 4 buckets."""
    from eventseq.data import SequenceDataset, prepare

    table = small_prepared.table.explode(["event_time", "shop", "amount"])
    config = PrepareConfig(id_column="client", time_column="event_time", categorical=["shop"],
                           numeric=["amount"], quantize={"amount": 4})
    events = table.with_columns(pl.col("shop").cast(pl.String))
    prepared = prepare(events, config)
    dataset = SequenceDataset.from_table(prepared.table, prepared.schema)
    return prepared.schema, dataset.collate(np.arange(len(dataset)))


@pytest.mark.parametrize(
    "config, width",
    [
        (EventEncoderConfig(embedding_dims={"shop": 3, "amount": 4}, numeric_encoding={"amount": "bins"}), 3 + 4 + 1 + 4),
        (EventEncoderConfig(embedding_dims={"shop": 3, "amount": 4}, numeric_encoding={"amount": "ple"}), 3 + 4 + 1 + 4),
        (EventEncoderConfig(embedding_dims={"shop": 3, "shop+amount": 6}, combined=[["shop", "amount"]]), 3 + 6 + 2 + 4),
        (EventEncoderConfig(default_embedding_dim=8, combine="sum", numeric_encoding={"amount": "bins"},
                            combined=[["shop", "amount"]]), 8),
    ],
    ids=["bins", "ple", "combined", "sum"],
)  # widths: embeddings + scalars (time delta, unquantized amount) + 4 calendar scalars
def test_quantized_numerics_and_combined_tokens(quantized, config, width):
    schema, batch = quantized
    encoder = EventEncoder(schema, config)
    vectors = encoder(batch)
    assert vectors.shape == (*batch.mask.shape, width) and encoder.output_dim == width
    assert torch.all(vectors[~batch.mask] == 0)
    # moving one event's amount to another bucket changes that event's vector and no other
    changed = batch.features["amount"].clone()
    edges = schema.numeric[0].edges
    changed[11, 0] = edges[0] - 1.0 if changed[11, 0] > edges[len(edges) // 2] else edges[-1] + 1.0
    encoder.eval()
    before = encoder(batch)
    after = encoder(dataclasses.replace(batch, features={**batch.features, "amount": changed}))
    differs = (before != after).any(dim=-1)
    assert differs[11, 0] and differs.sum() == 1


def test_bucket_embedding_is_the_quantile_bucket(quantized):
    schema, batch = quantized
    encoder = EventEncoder(schema, EventEncoderConfig(embedding_dims={"amount": 2}, numeric_encoding={"amount": "bins"},
                                                      time_delta=False, calendar=False))
    table = encoder.token_tables["amount"]
    vectors = encoder(batch)[..., -2:]  # the amount part comes after the shop embedding
    edges = torch.tensor(schema.numeric[0].bucket_edges, dtype=torch.float32)
    bucket = torch.bucketize(batch.features["amount"], edges, right=True) + 1
    assert torch.allclose(vectors[batch.mask], table.weight[bucket[batch.mask]])


def test_bins_need_quantize_in_prepare(small_prepared):
    with pytest.raises(ConfigError, match=r"'amount'.*quantize"):
        EventEncoder(small_prepared.schema, EventEncoderConfig(numeric_encoding={"amount": "bins"}))
    with pytest.raises(ConfigError, match="numeric_encoding.amount"):
        EventEncoder(small_prepared.schema, EventEncoderConfig(numeric_encoding={"amount": "onehot"}))
    with pytest.raises(ConfigError, match="shpo"):
        EventEncoder(small_prepared.schema, EventEncoderConfig(combined=[["shpo", "amount"]]))


def test_calendar_features_are_the_time_of_day_and_the_day_of_the_week():
    from eventseq.nn.event_encoder import calendar_features

    monday_6am = 4 * 86_400 + 6 * 3600  # 1970-01-05 was a Monday
    sunday_6pm = monday_6am - 12 * 3600
    times = torch.tensor([[monday_6am, sunday_6pm, 0]])
    features = calendar_features(times, torch.tensor([[True, True, False]]))  # [1, 3, 4]
    day_sin, day_cos, week_sin, week_cos = features[0, 0]
    assert (day_sin.item(), week_sin.item(), week_cos.item()) == pytest.approx((1.0, 0.0, 1.0), abs=1e-6)
    assert abs(day_cos.item()) < 1e-6
    angle = 2 * np.pi * 6 / 7  # Sunday is day 6
    assert features[0, 1].tolist() == pytest.approx([-1.0, 0.0, np.sin(angle), np.cos(angle)], abs=1e-6)
    assert torch.all(features[0, 2] == 0)  # padding


def test_calendar_adds_four_numeric_inputs(small_prepared, small_batch):
    plain = EventEncoder(small_prepared.schema, EventEncoderConfig(embedding_dims={"shop": 5}, calendar=False))
    calendar = EventEncoder(small_prepared.schema, EventEncoderConfig(embedding_dims={"shop": 5}, calendar=True))
    assert calendar.output_dim == plain.output_dim + 4
    vectors = calendar(small_batch)
    assert vectors.shape[-1] == calendar.output_dim and torch.all(vectors[~small_batch.mask] == 0)


def test_recency_features_are_the_share_of_the_span_elapsed_and_the_time_to_the_end():
    from eventseq.nn.event_encoder import recency_features

    times = torch.tensor([[100, 150, 300, 0], [50, 0, 0, 0]])
    features = recency_features(times, torch.tensor([3, 1]))  # [2, 4, 2]
    assert features[0, :3, 0].tolist() == pytest.approx([0.0, 0.25, 1.0])
    assert features[0, :3, 1].tolist() == pytest.approx([np.log1p(200), np.log1p(150), 0.0])
    assert features[1, 0].tolist() == [0.0, 0.0]  # one event: no span, nothing to go
    assert torch.all(features[0, 3] == 0) and torch.all(features[1, 1:] == 0)  # padding


def test_recency_adds_two_inputs_and_makes_the_encoder_non_causal(small_prepared, small_batch):
    from eventseq.nn import Encoder, EncoderConfig, SequenceEncoderConfig

    plain = EventEncoder(small_prepared.schema, EventEncoderConfig(recency=False))
    recency = EventEncoder(small_prepared.schema, EventEncoderConfig(recency=True))
    assert recency.output_dim == plain.output_dim + 2
    assert EventEncoder(small_prepared.schema, EventEncoderConfig()).output_dim == plain.output_dim  # None: off here
    vectors = recency(small_batch)
    assert vectors.shape[-1] == recency.output_dim and torch.all(vectors[~small_batch.mask] == 0)
    gru = SequenceEncoderConfig(type="gru", hidden_size=8)
    assert Encoder(small_prepared.schema, EncoderConfig(sequence_encoder=gru)).causal
    with_recency = Encoder(small_prepared.schema, EncoderConfig(EventEncoderConfig(recency=True), gru))
    assert not with_recency.causal and with_recency.sequence_causal


def test_training_modules_resolve_recency_by_whether_the_model_must_be_causal(small_prepared):
    from eventseq.nn import EncoderConfig
    from eventseq.objectives.selfsupervised import SelfSupervisedModule
    from eventseq.objectives.supervised import HeadConfig, SupervisedModule

    assert EncoderConfig().resolved(causal=False).event_encoder.recency is True
    assert EncoderConfig().resolved(causal=True).event_encoder.recency is False
    assert EncoderConfig(EventEncoderConfig(recency=False)).resolved(causal=False).event_encoder.recency is False
    schema = small_prepared.schema
    assert SupervisedModule(schema, head_config=HeadConfig(task="binary")).encoder.event_encoder.recency
    assert SelfSupervisedModule(schema, "coles").encoder.event_encoder.recency
    gpt = SelfSupervisedModule(schema, "gpt")
    assert not gpt.encoder.event_encoder.recency and gpt.encoder_config.event_encoder.recency is False  # saved so


def test_a_model_saved_before_recency_existed_loads_without_it():
    from eventseq.nn import EncoderConfig

    old = {"event_encoder": {"calendar": True}, "sequence_encoder": {"type": "gru", "pooling": "last_mean"}}
    config = EncoderConfig.from_saved(old)
    assert config.event_encoder.recency is False and config.sequence_encoder.pooling == "last_mean"
    assert EncoderConfig.from_saved({"event_encoder": {"recency": True}}).event_encoder.recency is True
