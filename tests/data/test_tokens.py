"""Tests for eventseq.data.tokens: quantile buckets, combined tokens, piecewise-linear encoding."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from eventseq.data.schema import CategoricalFeature, NumericFeature
from eventseq.data.tokens import combine_digits, field_digits, field_size, piecewise_linear, quantile_edges
from eventseq.errors import ConfigError


def test_quantile_edges_and_buckets():
    frame = pl.DataFrame({"x": np.arange(1.0, 101.0)})
    edges = quantile_edges(frame, pl.col("x"), 4)
    assert edges == pytest.approx([1.0, 25.75, 50.5, 75.25, 100.0])
    feature = NumericFeature(name="x", edges=edges)
    assert field_size(feature) == 4
    values = np.array([-5.0, 1.0, 25.75, 26.0, 60.0, 100.0, 1e9])
    # bucket = number of inner edges <= value: below the range -> 0, above -> the last bucket
    assert field_digits(feature, values).tolist() == [0, 0, 1, 1, 2, 3, 3]
    # torch (the EventEncoder) and NumPy (event BPE) agree
    assert field_digits(feature, torch.tensor(values)).tolist() == [0, 0, 1, 1, 2, 3, 3]


def test_quantile_edges_ignore_non_finite_and_collapse_ties():
    frame = pl.DataFrame({"x": [1.0] * 9 + [float("nan"), float("inf"), 2.0]})
    assert quantile_edges(frame, pl.col("x"), 4) == [1.0, 2.0]
    assert quantile_edges(pl.DataFrame({"x": [3.0, 3.0]}), pl.col("x"), 8) == []


def test_unquantized_numeric_cannot_be_a_token():
    with pytest.raises(ConfigError, match=r"'amount'.*quantize"):
        field_size(NumericFeature(name="amount"))


def test_categorical_digits_and_mixed_radix():
    shop = CategoricalFeature(name="shop", vocabulary=["a", "b"])  # ids 1 (unknown), 2, 3 -> digits 0, 1, 2
    amount = NumericFeature(name="amount", edges=[0.0, 10.0, 20.0])  # 2 buckets
    assert field_size(shop) == 3
    shop_digits = field_digits(shop, np.array([1, 2, 3, 3]))
    amount_digits = field_digits(amount, np.array([5.0, 5.0, 5.0, 15.0]))
    assert shop_digits.tolist() == [0, 1, 2, 2]
    assert combine_digits([shop_digits, amount_digits], [3, 2]).tolist() == [0, 2, 4, 5]


def test_piecewise_linear_keeps_the_value():
    feature = NumericFeature(name="x", edges=[0.0, 1.0, 3.0, 4.0])
    encoded = piecewise_linear(feature, torch.tensor([-1.0, 0.5, 2.0, 9.0]))
    expected = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1.0, 0.5, 0.0], [1.0, 1.0, 1.0]])
    assert torch.allclose(encoded, expected)
