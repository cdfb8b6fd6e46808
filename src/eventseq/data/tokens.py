"""Discrete event values: quantile buckets of numerics and combined-event tokens.

One definition shared by the EventEncoder (torch, per batch) and event BPE (NumPy, per table), so
that "the bucket of an amount" or "the token of (mcc, amount bucket)" means the same everywhere:

- a categorical field's digit is its id - 1 (unknown = 0, vocabulary values 1..), size
  `num_embeddings - 1` (padding id 0 never reaches here);
- a quantized numeric field's digit is its bucket `#{inner edges <= value}`, size `num_buckets`;
- a combination of fields is the mixed-radix number of their digits, size the product of sizes.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import polars as pl
import torch

from eventseq.data.schema import CategoricalFeature, NumericFeature
from eventseq.errors import ConfigError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def quantile_expressions(values: pl.Expr, bins: int, prefix: str = "") -> list[pl.Expr]:
    """Quantiles 0, 1/bins, .., 1 of the finite `values`, named `prefix0` .. `prefix{bins}`."""
    finite = values.filter(values.is_finite())
    return [finite.quantile(i / bins, interpolation="linear").alias(f"{prefix}{i}") for i in range(bins + 1)]


def quantile_edges(frame: pl.DataFrame, values: pl.Expr, bins: int) -> list[float]:
    """Quantiles 0, 1/bins, .., 1 of the finite `values` (deduplicated: heavy ties give fewer buckets)."""
    quantiles = frame.select(quantile_expressions(values, bins)).row(0)
    edges = sorted({float(q) for q in quantiles if q is not None})
    return edges if len(edges) >= 2 else []


def field_size(feature: CategoricalFeature | NumericFeature) -> int:
    """Number of distinct digits of a field (see module docstring)."""
    if isinstance(feature, CategoricalFeature):
        return feature.num_embeddings - 1
    if not feature.edges:
        raise ConfigError(
            f"numeric field '{feature.name}' has no quantile buckets: prepare it with "
            f"quantize={{{feature.name}: 16}} to use it as a token (bins, combined tokens, event BPE)"
        )
    return feature.num_buckets


def field_digits(feature: CategoricalFeature | NumericFeature, values: ArrayT) -> ArrayT:
    """Digits of one field's values (NumPy array or torch tensor, any shape)."""
    if isinstance(feature, CategoricalFeature):
        return (values - 1).clip(min=0) if isinstance(values, np.ndarray) else (values - 1).clamp(min=0)
    field_size(feature)  # raises if the field is not quantized
    inner = feature.bucket_edges
    if isinstance(values, np.ndarray):
        return np.searchsorted(np.asarray(inner, dtype=np.float64), values, side="right").astype(np.int64)
    edges = torch.tensor(inner, dtype=values.dtype, device=values.device)
    return torch.bucketize(values, edges, right=True)


def combine_digits(digits: list[ArrayT], sizes: list[int]) -> ArrayT:
    """Mixed-radix combination: the first field varies slowest."""
    combined = digits[0]
    for digit, size in zip(digits[1:], sizes[1:]):
        combined = combined * size + digit
    return combined


def piecewise_linear(feature: NumericFeature, values: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear encoding (Gorishniy et al., 2022): [..., num_buckets] in [0, 1].

    Component t is 0 below bucket t, 1 above it and the position inside it in between, so the
    vector keeps the exact value (unlike a bucket id) while letting a linear layer act per range.
    """
    edges = torch.tensor(feature.edges, dtype=values.dtype, device=values.device)
    low, high = edges[:-1], edges[1:]  # [K]
    return ((values.unsqueeze(-1) - low) / (high - low)).clamp(0.0, 1.0)
