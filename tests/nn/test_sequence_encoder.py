from __future__ import annotations

import numpy as np
import pytest
import torch

from eventseq.errors import ConfigError
from eventseq.nn import Encoder, EncoderConfig, SequenceEncoderConfig, build_sequence_encoder, pool

TYPES = ["gru", "lstm", "cnn", "transformer"]


def _config(kind: str, **extra) -> SequenceEncoderConfig:
    return SequenceEncoderConfig(type=kind, hidden_size=8, num_heads=2, num_layers=2, **extra)


@pytest.mark.parametrize("kind", TYPES)
def test_output_shape_and_padding_invariance(kind):
    torch.manual_seed(0)
    encoder = build_sequence_encoder(4, _config(kind)).eval()
    x = torch.randn(3, 5, 4)
    lengths = torch.tensor([5, 3, 1])
    x = x * (torch.arange(5)[None, :] < lengths[:, None]).unsqueeze(-1)
    hidden = encoder(x, lengths)
    assert hidden.shape == (3, 5, 8)
    # appending more padding must not change the hidden states of real events
    padded = torch.cat([x, torch.zeros(3, 4, 4)], dim=1)
    longer = encoder(padded, lengths)
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(longer[row, :length], hidden[row, :length], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["transformer", "cnn"])
def test_causal_encoders_do_not_see_the_future(kind):
    torch.manual_seed(0)
    encoder = build_sequence_encoder(4, _config(kind, causal=True)).eval()
    x = torch.randn(1, 6, 4)
    lengths = torch.tensor([6])
    changed = x.clone()
    changed[0, 4:] = torch.randn(2, 4)
    torch.testing.assert_close(encoder(x, lengths)[0, :4], encoder(changed, lengths)[0, :4])


def test_bidirectional_transformer_sees_the_future():
    torch.manual_seed(0)
    encoder = build_sequence_encoder(4, _config("transformer")).eval()
    x = torch.randn(1, 6, 4)
    changed = x.clone()
    changed[0, 5] += 1.0
    assert not torch.allclose(encoder(x, torch.tensor([6]))[0, 0], encoder(changed, torch.tensor([6]))[0, 0])


def test_pooling_on_a_hand_made_case():
    hidden = torch.tensor([[[1.0], [2.0], [9.0]], [[4.0], [0.0], [0.0]]])  # [2, 3, 1]
    lengths = torch.tensor([2, 1])
    assert pool(hidden, lengths, "last").flatten().tolist() == [2.0, 4.0]
    assert pool(hidden, lengths, "mean").flatten().tolist() == [1.5, 4.0]
    assert pool(hidden, lengths, "max").flatten().tolist() == [2.0, 4.0]  # 9.0 is padding
    assert pool(hidden, lengths, "last_mean").tolist() == [[2.0, 1.5], [4.0, 4.0]]  # last, then mean
    assert pool(hidden, lengths, "last+mean").tolist() == [[2.0, 1.5], [4.0, 4.0]]  # last_mean's new name
    assert pool(hidden, lengths, "max+last+mean").tolist() == [[2.0, 2.0, 1.5], [4.0, 4.0, 4.0]]  # in the order named


@pytest.mark.parametrize("pooling, message", [
    ("median", "pooling='median': expected one of"),
    ("last+cls", "'cls' does not combine"),
    ("mean+mean", "a summary is named twice"),
])
def test_unknown_or_impossible_poolings_are_refused(pooling, message):
    with pytest.raises(ConfigError, match=message):
        SequenceEncoderConfig(type="gru", pooling=pooling).validate()


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "last_mean", "last+mean+max", "cls"])
def test_encoder_embeds_batches(small_prepared, small_batch, pooling):
    kind = "transformer" if pooling == "cls" else "gru"
    encoder = Encoder(small_prepared.schema, EncoderConfig(sequence_encoder=_config(kind, pooling=pooling))).eval()
    assert encoder(small_batch).shape == (12, 12, 8)
    embeddings = encoder.embed(small_batch)
    width = {"last_mean": 16, "last+mean+max": 24}.get(pooling, 8)
    assert encoder.embedding_dim == width
    assert embeddings.shape == (12, width) and torch.isfinite(embeddings).all()


def test_rnn_last_pooling_equals_final_state(small_prepared, small_batch):
    torch.manual_seed(0)
    encoder = Encoder(small_prepared.schema, EncoderConfig(sequence_encoder=_config("gru", pooling="last"))).eval()
    events = encoder.event_encoder(small_batch)
    rnn = encoder.sequence_encoder.rnn
    _, final = rnn(torch.nn.utils.rnn.pack_padded_sequence(events, small_batch.lengths, batch_first=True,
                                                            enforce_sorted=False))
    torch.testing.assert_close(encoder.embed(small_batch), final[-1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "bad",
    [dict(type="rnn"), dict(pooling="cls"), dict(type="transformer", hidden_size=10, num_heads=3),
     dict(pooling="median"), dict(type="transformer", positional="spiral"), dict(rnn_packing="sometimes"),
     dict(type="transformer", positional="rotary", hidden_size=12, num_heads=4), dict(conv_kernel=-1)],
)
def test_bad_configs_are_rejected(bad):
    with pytest.raises(ConfigError):
        build_sequence_encoder(4, SequenceEncoderConfig(**bad))


def test_learned_positions_limit():
    encoder = build_sequence_encoder(4, _config("transformer", positional="learned", max_positions=4))
    with pytest.raises(ConfigError, match="max_positions"):
        encoder(torch.randn(1, 6, 4), torch.tensor([6]))
    assert np.isfinite(encoder(torch.randn(1, 4, 4), torch.tensor([4])).detach().numpy()).all()


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_padded_and_packed_rnns_agree(kind):
    torch.manual_seed(0)
    packed = build_sequence_encoder(4, _config(kind, rnn_packing="packed")).eval()
    padded = build_sequence_encoder(4, _config(kind, rnn_packing="padded")).eval()
    padded.load_state_dict(packed.state_dict())
    x = torch.randn(3, 6, 4)
    lengths = torch.tensor([6, 2, 4])
    torch.testing.assert_close(padded(x, lengths), packed(x, lengths), atol=1e-5, rtol=1e-4)
    assert torch.all(padded(x, lengths)[1, 2:] == 0)


TRANSFORMER_VARIANTS = [dict(conv_kernel=3), dict(conv_kernel=2, positional="rotary"), dict(positional="rotary")]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("extra", TRANSFORMER_VARIANTS, ids=["conv3", "conv2-rotary", "rotary"])
def test_transformer_options_keep_padding_out_and_the_future_out_when_causal(extra, causal):
    torch.manual_seed(0)
    encoder = build_sequence_encoder(4, _config("transformer", causal=causal, **extra)).eval()
    x = torch.randn(2, 6, 4)
    lengths = torch.tensor([6, 3])
    hidden = encoder(x, lengths)
    noisy = x.clone()
    noisy[1, 3:] = 100.0  # whatever the padding holds
    torch.testing.assert_close(encoder(noisy, lengths)[1, :3], hidden[1, :3], atol=1e-5, rtol=1e-4)
    changed = x.clone()
    changed[0, 4:] = torch.randn(2, 4)
    seen = not torch.allclose(encoder(changed, lengths)[0, :4], hidden[0, :4])
    assert seen != causal  # a causal encoder's first four events never see events 5-6


def test_rotary_attention_scores_depend_on_the_distance_only():
    from eventseq.nn.sequence_encoder import rotary_tables, rotate

    torch.manual_seed(0)
    query, key = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    rotary = rotary_tables(10, 8, torch.device("cpu"))
    queries = rotate(query.expand(1, 1, 10, 8), rotary)[0, 0]  # the same query at positions 0..9
    keys = rotate(key.expand(1, 1, 10, 8), rotary)[0, 0]
    scores = queries @ keys.T  # [10, 10]
    torch.testing.assert_close(scores[2, 5], scores[6, 9])  # 3 apart
    torch.testing.assert_close(scores[7, 3], scores[4, 0])  # 4 apart, the other way
    assert not torch.allclose(scores[2, 5], scores[2, 6])
    # the pairs rotated are dimensions (2i, 2i+1), as rotary transformers saved before were trained with
    cos, sin = rotary
    even, odd = query[0, 0, 0, 0::2], query[0, 0, 0, 1::2]
    by_hand = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)
    torch.testing.assert_close(queries, by_hand)
    # half precision (bfloat16 autocast on a GPU) is rotated in float32 and given back in its own type
    half = rotate(query.expand(1, 1, 10, 8).bfloat16(), rotary)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float()[0, 0], queries, atol=0.05, rtol=0.02)


def test_without_positions_only_conv_kernel_tells_the_transformer_the_order():
    """Attention alone is blind to order; the depthwise convolution over neighbours is not."""
    torch.manual_seed(0)
    x = torch.randn(1, 6, 4)
    swapped = x[:, [1, 0, 2, 3, 4, 5]]
    lengths = torch.tensor([6])
    for conv_kernel, order_matters in ((0, False), (3, True)):
        encoder = build_sequence_encoder(4, _config("transformer", positional="none", conv_kernel=conv_kernel)).eval()
        pooled = pool(encoder(x, lengths), lengths, "mean")
        pooled_swapped = pool(encoder(swapped, lengths), lengths, "mean")
        assert torch.allclose(pooled, pooled_swapped, atol=1e-5) != order_matters
