"""AimCLR's Nearest Neighbours Mining (NNM, AimCLR §3.5, eq. 9).

The top-k nearest neighbours in the memory bank of each of the three queries (ẑ, z̃, z̃_drop) are extra
positives for the normally augmented query ẑ: N+ = N+^n ∪ N+^e ∪ N+^d.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["nearest_neighbor_positives", "nnm_loss"]


def nearest_neighbor_positives(bank_similarities: Sequence[Tensor], k: int = 1) -> Tensor:
    """Bool (N, K): the union over the queries of the indices of their top-k bank entries.

    bank_similarities: one (N, K) tensor per query (q · m_i, any monotone scaling); ties broken by topk.
    """
    if k < 1:
        raise ValueError(f"NNM needs k >= 1 neighbours, got {k}")
    first = bank_similarities[0]
    mask = torch.zeros(first.shape, dtype=torch.bool, device=first.device)
    for sims in bank_similarities:
        index = sims.detach().topk(min(k, sims.shape[1]), dim=1).indices
        mask.scatter_(1, index, True)
    return mask


def nnm_loss(logits: Tensor, neighbor_mask: Tensor, reduction: Literal["sum", "mean"] = "sum") -> Tensor:
    """Eq. 9: −log p(z|ẑ) − Σ_{j∈N+} log p(m_j|ẑ), averaged over the batch.

    logits: (N, 1 + K) of the normal query, column 0 the key (as from core.info_nce_logits).
    neighbor_mask: bool (N, K) over the bank columns. reduction="sum" is eq. 9; "mean" divides each sample's
    sum by its number of positives (the official code).
    """
    log_p = F.log_softmax(logits, dim=1)
    positive = torch.cat([torch.ones_like(neighbor_mask[:, :1]), neighbor_mask], dim=1).to(log_p.dtype)
    per_sample = -(log_p * positive).sum(dim=1)
    if reduction == "mean":
        per_sample = per_sample / positive.sum(dim=1)
    elif reduction != "sum":
        raise ValueError(f"reduction must be 'sum' or 'mean', got '{reduction}'")
    return per_sample.mean()
