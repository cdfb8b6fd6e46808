"""Contrastive losses and retrieval metrics shared by the self-supervised objectives.

Rows with the same `labels` value are positives (views of one entity); all others negatives.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


class _AllGatherRows(torch.autograd.Function):
    """all_gather of equal-shaped [n, D] blocks, keeping the gradient to this rank's rows.

    Every rank computes the same loss over the gathered rows, so the gradient of this rank's rows
    is the sum over ranks of their gradients (all_reduce); DDP's mean over ranks then gives
    exactly the gradient of the single-process loss on the concatenated batch.
    """

    @staticmethod
    def forward(ctx: object, rows: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.world = dist.get_rank(), dist.get_world_size()  # type: ignore[attr-defined]
        parts = [torch.empty_like(rows) for _ in range(ctx.world)]  # type: ignore[attr-defined]
        dist.all_gather(parts, rows.contiguous())
        return torch.cat(parts)  # [world * n, D]

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad.chunk(ctx.world)[ctx.rank]  # type: ignore[attr-defined]


def gather_across_ranks(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows and labels of every process of a torch.distributed run (DDP), rank 0's first.

    Contrastive losses then see negatives from every rank, as if one process held the whole batch.
    Ranks may hold different row counts (padded for the collective, then dropped). Labels are made
    distinct across ranks (`label * world + rank`): entity positions are only unique within a rank.
    Outside torch.distributed, or with one process, returns the inputs unchanged.

    Args:
        embeddings: [N, D] rows of this rank, with their gradient.
        labels: [N] int64, equal for rows of the same entity.

    Returns:
        ([sum of N over ranks, D], [sum of N]).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return embeddings, labels
    world, rank = dist.get_world_size(), dist.get_rank()
    count = torch.tensor([len(embeddings)], dtype=torch.int64, device=embeddings.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    counts_all = torch.cat(counts)  # [world]
    width = int(counts_all.max())
    rows = _AllGatherRows.apply(F.pad(embeddings, (0, 0, 0, width - len(embeddings))))  # [world * width, D]
    padded_labels = F.pad(labels.to(torch.int64) * world + rank, (0, width - len(labels)), value=-1)
    label_parts = [torch.empty_like(padded_labels) for _ in range(world)]
    dist.all_gather(label_parts, padded_labels)
    real = (torch.arange(width, device=embeddings.device)[None, :] < counts_all[:, None]).reshape(-1)
    return rows[real], torch.cat(label_parts)[real]


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


def vicreg_terms(first: torch.Tensor, second: torch.Tensor, eps: float = 1e-4) -> dict[str, torch.Tensor]:
    """The three VICReg terms (Bardes, Ponce, LeCun, ICLR 2022) of two batches of expanded views.

    - invariance: mean squared distance between the two views of each entity;
    - variance: hinge keeping each dimension's standard deviation over the batch at >= 1,
      mean over dimensions, summed over both branches;
    - covariance: squared off-diagonal covariances divided by the dimension, summed over branches.

    Args:
        first, second: [N, D], row i of both is entity i.
    """
    invariance = F.mse_loss(first, second)
    variance = first.new_zeros(())
    covariance = first.new_zeros(())
    for z in (first, second):
        z = z - z.mean(dim=0)
        std = torch.sqrt(z.var(dim=0) + eps)  # [D]
        variance = variance + F.relu(1.0 - std).mean()
        cov = (z.T @ z) / max(len(z) - 1, 1)  # [D, D]
        off_diagonal = cov.pow(2).sum() - cov.diagonal().pow(2).sum()
        covariance = covariance + off_diagonal / z.shape[1]
    return {"invariance": invariance, "variance": variance, "covariance": covariance}


def barlow_twins_loss(first: torch.Tensor, second: torch.Tensor, off_diagonal_weight: float = 5e-3,
                      eps: float = 1e-5) -> torch.Tensor:
    """Barlow Twins (Zbontar et al., ICML 2021): the cross-correlation of the two views' standardised
    embeddings pushed to the identity: sum_i (1 - C_ii)² + λ sum_{i≠j} C_ij².

    Each dimension is standardised over the batch (mean 0, biased std 1), as the paper's batch norm
    does, so identical decorrelated views give exactly the identity.

    Args:
        first, second: [N, D], row i of both is entity i.
    """
    n = len(first)
    first = (first - first.mean(dim=0)) / (first.std(dim=0, correction=0) + eps)
    second = (second - second.mean(dim=0)) / (second.std(dim=0, correction=0) + eps)
    correlation = first.T @ second / n  # [D, D]
    diagonal = correlation.diagonal()
    on = (1.0 - diagonal).pow(2).sum()
    off = correlation.pow(2).sum() - diagonal.pow(2).sum()
    return on + off_diagonal_weight * off


def paired_views(views: torch.Tensor, owners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split [2N, D] views, two consecutive rows per entity (as ViewCollate with split_count=2
    builds them), into the first and second view of each entity: ([N, D], [N, D])."""
    first, second = views[0::2], views[1::2]
    if len(first) != len(second) or not bool((owners[0::2] == owners[1::2]).all()):
        raise ValueError("views must come in consecutive pairs of the same entity (views.split_count=2)")
    return first, second
