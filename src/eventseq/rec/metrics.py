"""Ranking losses and metrics over padded request groups, vectorized in torch (and `ndcg_at_k`, a
plain NumPy reference over flat arrays that tests check them against).

Groups are padded to [G, M]: `scores`, `labels` (1 = positive) and `mask` (real candidates).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from eventseq.errors import ConfigError


def calibrated_pairwise_loss(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over all (positive i, negative j) pairs inside a group of −log σ(c_i) / (σ(c_i) + σ(c_j)).

    Unlike a plain RankNet loss this also pins the scale: σ(c) stays a calibrated probability
    (the pair term is minimised by σ(c_i) → 1, σ(c_j) → 0). Computed in log space:
    log(σ(c_i) + σ(c_j)) − log σ(c_i) = logaddexp(logσ(c_i), logσ(c_j)) − logσ(c_i).
    Groups without a pair contribute nothing; a batch without any pair gives 0 (with a gradient).

    Args:
        scores: [G, M] logits; labels: [G, M] 0/1; mask: [G, M] bool.

    Returns:
        scalar loss.
    """
    log_sigmoid = F.logsigmoid(scores)  # [G, M]
    positive = (labels > 0.5) & mask
    negative = (labels <= 0.5) & mask
    pairs = positive[:, :, None] & negative[:, None, :]  # [G, M(i), M(j)]
    log_i, log_j = log_sigmoid[:, :, None], log_sigmoid[:, None, :]
    losses = torch.logaddexp(log_i, log_j) - log_i  # [G, M, M]
    count = pairs.sum()
    if count == 0:
        return scores.sum() * 0.0
    return (losses * pairs).sum() / count


def _ranks(scores: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates sorted by score (padding last, ties in the given order): (order, sorted mask)."""
    masked = scores.masked_fill(~mask, float("-inf"))
    order = torch.sort(masked, dim=1, descending=True, stable=True).indices  # [G, M]
    return order, torch.gather(mask, 1, order)


def ranking_metrics(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, k: int = 10) -> dict[str, torch.Tensor]:
    """NDCG@k, HR@k (a positive in the top k) and MRR (first positive) per group, averaged.

    Groups without a positive are left out of the means. Binary relevance: DCG = Σ 1/log2(rank+1).

    Returns:
        {"ndcg": scalar, "hr": scalar, "mrr": scalar, "groups": number of groups averaged}.
    """
    order, sorted_mask = _ranks(scores, mask)
    relevant = torch.gather((labels > 0.5) & mask, 1, order).float()  # [G, M] in ranked order
    positions = torch.arange(scores.shape[1], device=scores.device)
    discounts = 1.0 / torch.log2(positions.float() + 2.0)  # [M]
    top = (positions < k).float()
    dcg = (relevant * discounts * top).sum(dim=1)
    positives = relevant.sum(dim=1)
    ideal = ((positions[None, :] < positives[:, None]).float() * discounts * top).sum(dim=1)
    valid = positives > 0
    first = torch.where(relevant > 0, positions.float(), math.inf).min(dim=1).values  # 0-based rank
    count = valid.sum()
    if count == 0:
        zero = scores.new_zeros(())
        return {"ndcg": zero, "hr": zero, "mrr": zero, "groups": count}
    return {
        "ndcg": (dcg[valid] / ideal[valid]).mean(),
        "hr": (first[valid] < k).float().mean(),
        "mrr": (1.0 / (first[valid] + 1.0)).mean(),
        "groups": count,
    }


def expected_random_metrics(labels: torch.Tensor, mask: torch.Tensor, k: int = 10, draws: int = 20,
                            seed: int = 0) -> dict[str, float]:
    """The metrics of a random order, averaged over `draws` random permutations."""
    generator = torch.Generator().manual_seed(seed)
    totals: dict[str, float] = {"ndcg": 0.0, "hr": 0.0, "mrr": 0.0}
    for _ in range(draws):
        scores = torch.rand(labels.shape, generator=generator)
        for name, value in ranking_metrics(scores, labels, mask, k).items():
            if name in totals:
                totals[name] += float(value) / draws
    return totals


def ndcg_at_k(scores: np.ndarray, labels: np.ndarray, group_ids: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over groups with at least one positive label: a plain NumPy reference for tests.

    DCG sums (2^rel - 1) / log2(rank + 1) over the top k items of a group by score (rank 1 = best);
    ties in score keep the order given. IDCG is the DCG of the labels sorted descending. Meant for
    checking other metric code, so it favours clarity; it is still vectorized over groups.

    Args:
        scores: [N] ranking scores, higher is better.
        labels: [N] relevance, 0/1 (graded values also work).
        group_ids: [N] query / request id of each item.
        k: cut-off, >= 1.

    Returns:
        The mean NDCG@k over groups that have a positive label.

    Raises:
        ConfigError: k < 1, arrays of different lengths, or no group with a positive label.
    """
    scores, labels, group_ids = (np.asarray(a).ravel() for a in (scores, labels, group_ids))
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"ndcg_at_k needs an integer k >= 1 (got k={k!r})")
    if not len(scores) == len(labels) == len(group_ids):
        raise ConfigError(
            f"ndcg_at_k needs scores, labels and group_ids of one length "
            f"(got {len(scores)}, {len(labels)}, {len(group_ids)})"
        )
    groups, group_index = np.unique(group_ids, return_inverse=True)

    def dcg(sort_key: np.ndarray) -> np.ndarray:
        order = np.lexsort((-sort_key, group_index))  # lexsort is stable: ties keep the order given
        sorted_groups = group_index[order]
        rank = np.arange(len(order)) - np.searchsorted(sorted_groups, sorted_groups)  # 0-based within group
        gain = np.where(rank < k, (2.0 ** labels[order] - 1) / np.log2(rank + 2), 0.0)
        return np.bincount(sorted_groups, weights=gain, minlength=len(groups))

    ideal = dcg(labels.astype(float))
    has_positive = ideal > 0
    if not has_positive.any():
        raise ConfigError("ndcg_at_k needs at least one group with a positive label in labels")
    return float(np.mean(dcg(scores.astype(float))[has_positive] / ideal[has_positive]))
