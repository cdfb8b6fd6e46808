from __future__ import annotations

import math

import pytest
import torch

from eventseq.objectives.losses import info_nce_loss, margin_contrastive_loss, recall_at_k

LABELS = torch.tensor([0, 0, 1, 1])


def test_margin_loss_is_zero_for_perfect_clusters():
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    # positives at distance 0, negatives at sqrt(2) > margin
    assert margin_contrastive_loss(embeddings, LABELS, margin=0.5).item() == pytest.approx(0.0)


def test_margin_loss_hand_made_case():
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    # positives are orthogonal (d² = 2); hardest negative of each anchor coincides with it (d = 0)
    loss = margin_contrastive_loss(embeddings, LABELS, margin=0.5, negatives_per_anchor=1)
    assert loss.item() == pytest.approx(2.0 + 0.25, abs=1e-5)


def test_info_nce_hand_made_case():
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    t = 0.5
    # each anchor: one positive with cos 1, two negatives with cos 0
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert info_nce_loss(embeddings, LABELS, temperature=t).item() == pytest.approx(expected, rel=1e-5)


def test_losses_decrease_when_views_cluster():
    torch.manual_seed(0)
    labels = torch.arange(8).repeat_interleave(3)
    embeddings = torch.randn(24, 6, requires_grad=True)
    optimizer = torch.optim.SGD([embeddings], lr=0.5)
    first = margin_contrastive_loss(embeddings, labels).item() + info_nce_loss(embeddings, labels).item()
    for _ in range(50):
        optimizer.zero_grad()
        (margin_contrastive_loss(embeddings, labels) + info_nce_loss(embeddings, labels)).backward()
        optimizer.step()
    last = margin_contrastive_loss(embeddings, labels).item() + info_nce_loss(embeddings, labels).item()
    assert last < 0.5 * first
    assert recall_at_k(embeddings.detach(), labels, k=2).item() == pytest.approx(1.0)


def test_recall_at_k_hand_made_case():
    embeddings = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 0, 1])
    # row 0: nearest is row 1 (wrong); row 1: row 2 (wrong); row 2: row 1 (wrong); row 3: row 2 (wrong)
    assert recall_at_k(embeddings, labels, k=1).item() == pytest.approx(0.0)
    assert recall_at_k(embeddings, labels, k=3).item() == pytest.approx(1.0)
