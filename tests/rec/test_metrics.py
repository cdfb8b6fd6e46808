from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eventseq.errors import ConfigError
from eventseq.rec.metrics import calibrated_pairwise_loss, expected_random_metrics, ndcg_at_k, ranking_metrics


def test_pairwise_loss_matches_the_direct_formula():
    scores = torch.tensor([[2.0, -1.0, 0.5, 9.0], [0.3, 0.1, -0.2, 0.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])  # 9.0 is padding
    sigma = torch.sigmoid(scores)
    terms = []
    for g in range(2):
        for i in range(4):
            for j in range(4):
                if mask[g, i] and mask[g, j] and labels[g, i] == 1 and labels[g, j] == 0:
                    terms.append(-math.log(sigma[g, i] / (sigma[g, i] + sigma[g, j])))
    expected = sum(terms) / len(terms)
    assert len(terms) == 2 + 4
    assert calibrated_pairwise_loss(scores, labels, mask).item() == pytest.approx(expected, rel=1e-6)


def test_pairwise_loss_is_stable_for_extreme_scores_and_ignores_pairless_groups():
    scores = torch.tensor([[-200.0, 200.0], [5.0, 6.0]], requires_grad=True)
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # the second group has no pair
    mask = torch.ones(2, 2, dtype=torch.bool)
    loss = calibrated_pairwise_loss(scores, labels, mask)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(200.0, rel=1e-3)  # −log σ(−200) ≈ 200
    loss.backward()
    assert torch.isfinite(scores.grad).all() and (scores.grad[1] == 0).all()
    empty = calibrated_pairwise_loss(scores, torch.zeros(2, 2), mask)
    assert empty.item() == 0.0 and empty.requires_grad


def test_ndcg_hr_mrr_against_a_direct_computation():
    rng = np.random.default_rng(0)
    groups, width = 50, 25
    sizes = rng.integers(3, width + 1, size=groups)
    mask = np.arange(width)[None, :] < sizes[:, None]
    labels = (rng.random((groups, width)) < 0.2) & mask
    scores = rng.normal(size=(groups, width)).astype(np.float32)
    result = ranking_metrics(torch.from_numpy(scores), torch.from_numpy(labels.astype(np.float32)),
                             torch.from_numpy(mask), k=10)
    ids = np.repeat(np.arange(groups), sizes)
    flat_scores = np.concatenate([scores[g, : sizes[g]] for g in range(groups)])
    flat_labels = np.concatenate([labels[g, : sizes[g]] for g in range(groups)]).astype(float)
    assert result["ndcg"].item() == pytest.approx(ndcg_at_k(flat_scores, flat_labels, ids, 10), rel=1e-5)
    hits, reciprocal = [], []
    for g in range(groups):
        if not labels[g].any():
            continue
        order = np.argsort(-scores[g, : sizes[g]], kind="stable")
        first = int(np.nonzero(labels[g, : sizes[g]][order])[0][0])
        hits.append(first < 10)
        reciprocal.append(1 / (first + 1))
    assert result["groups"].item() == len(hits)
    assert result["hr"].item() == pytest.approx(np.mean(hits))
    assert result["mrr"].item() == pytest.approx(np.mean(reciprocal), rel=1e-6)


def test_perfect_ranking_scores_one_and_hand_made_case():
    labels = torch.tensor([[0.0, 1.0, 0.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert ranking_metrics(torch.tensor([[0.0, 1.0, 0.5]]), labels, mask)["ndcg"].item() == pytest.approx(1.0)
    # the positive ranked third: DCG = 1/log2(4) = 0.5, IDCG = 1
    third = ranking_metrics(torch.tensor([[1.0, 0.0, 0.5]]), labels, mask, k=10)
    assert third["ndcg"].item() == pytest.approx(0.5)
    assert third["mrr"].item() == pytest.approx(1 / 3)
    assert ranking_metrics(torch.tensor([[1.0, 0.0, 0.5]]), labels, mask, k=2)["hr"].item() == 0.0


def test_random_order_metrics_lie_between_worst_and_best():
    labels = torch.tensor([[1.0] + [0.0] * 19])
    mask = torch.ones(1, 20, dtype=torch.bool)
    random = expected_random_metrics(labels, mask, k=10, draws=200)
    assert 0.4 < random["hr"] < 0.6  # one positive in 20: P(top 10) = 0.5
    worst = ranking_metrics(-torch.arange(20.0)[None].flip(1), labels, mask)["ndcg"].item()
    assert worst < random["ndcg"] < 1.0


def test_ndcg_at_k_matches_hand_computed_values():
    # Group 1 ranks [0, 1, 1]: DCG = 1/log2(3) + 1/log2(4), IDCG = 1 + 1/log2(3).
    # Group 2 has tied scores, so the given order [0, 1] stands: DCG = 1/log2(3), IDCG = 1.
    # Group 3 has no positive and is left out of the mean.
    scores = np.array([0.9, 0.5, 0.1, 0.3, 0.3, 0.7])
    labels = np.array([0, 1, 1, 0, 1, 0])
    groups = np.array([1, 1, 1, 2, 2, 3])
    first = (1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    second = 1 / np.log2(3)
    assert ndcg_at_k(scores, labels, groups) == pytest.approx((first + second) / 2)
    assert ndcg_at_k(scores, labels, groups, k=1) == 0.0
    assert ndcg_at_k(labels.astype(float), labels, groups) == pytest.approx(1.0)
    # Shuffled input order does not matter when scores have no ties.
    order = np.random.default_rng(0).permutation(3)
    assert ndcg_at_k(scores[order], labels[order], groups[order]) == pytest.approx(first)


def test_ndcg_at_k_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="k >= 1"):
        ndcg_at_k(np.ones(2), np.ones(2), np.ones(2), k=0)
    with pytest.raises(ConfigError, match="one length"):
        ndcg_at_k(np.ones(2), np.ones(3), np.ones(2))
    with pytest.raises(ConfigError, match="positive"):
        ndcg_at_k(np.ones(2), np.zeros(2), np.ones(2))
