"""Contrastive losses and retrieval metrics shared by the self-supervised objectives.

Rows with the same `labels` value are positives (views of one entity); all others negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]  # [N, N]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same  # positives (not self), negatives


def margin_contrastive_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.5, negatives_per_anchor: int = 5
) -> torch.Tensor:
    """Contrastive loss with hard-negative mining, as used by CoLES (Babaev et al., 2022).

    Positive pairs pull together with d²; for each anchor, the `negatives_per_anchor` closest
    negatives push apart with relu(margin - d)². Embeddings are L2-normalised first.

    Args:
        embeddings: [N, D]; labels: [N] entity of each row.

    Returns:
        scalar: mean over the positive pairs plus mean over the mined negative pairs.
    """
    z = F.normalize(embeddings, dim=-1)
    distance = torch.cdist(z, z).clamp(min=0)  # [N, N]
    positive, negative = _pair_masks(labels)
    positive_loss = distance[positive].pow(2)
    k = min(negatives_per_anchor, int(negative.sum(dim=1).min()))
    if k == 0:
        return positive_loss.mean()
    hardest = distance.masked_fill(~negative, float("inf")).topk(k, dim=1, largest=False).values  # [N, k]
    negative_loss = F.relu(margin - hardest).pow(2)
    return positive_loss.mean() + negative_loss.mean()


def info_nce_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Softmax contrastive loss with several positives per anchor (SupCon / multi-view InfoNCE).

    For each anchor: −mean over its positives of log softmax(cos / temperature) over all other rows.
    """
    z = F.normalize(embeddings, dim=-1)
    logits = z @ z.T / temperature  # [N, N]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    logits = logits.masked_fill(eye, float("-inf"))
    positive, _ = _pair_masks(labels)
    log_probability = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    counts = positive.sum(dim=1)
    has_positive = counts > 0
    per_anchor = -(log_probability.masked_fill(~positive, 0).sum(dim=1)[has_positive] / counts[has_positive])
    return per_anchor.mean()


def recall_at_k(embeddings: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Share of each row's positives found among its k nearest rows (cosine), averaged over rows.

    With `split_count` views per entity and k = split_count − 1, a perfect encoder scores 1.
    """
    z = F.normalize(embeddings, dim=-1)
    similarity = z @ z.T
    similarity.fill_diagonal_(float("-inf"))
    k = min(k, len(labels) - 1)
    nearest = similarity.topk(k, dim=1).indices  # [N, k]
    hits = (labels[nearest] == labels[:, None]).sum(dim=1).float()
    positive, _ = _pair_masks(labels)
    possible = positive.sum(dim=1).clamp(max=k).float()
    valid = possible > 0
    return (hits[valid] / possible[valid]).mean()
