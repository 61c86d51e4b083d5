"""ActCLR's Semantic-Aware Feature Pooling (SAFP, ActCLR §3.2, eq. 8), used on the offline stream.

SAFP(h) = Σ_tv h_ctv · A_tv / Σ_tv A_tv: a weighted average of the dense features by the actionlet. The
official code instead pools 0.5 · global average + 0.5 · actionlet-weighted average (`mode="code"`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from skelssl.models.pooling import pool

__all__ = ["safp_weights", "safp_pool"]


def safp_weights(actionlet: Tensor, mode: Literal["paper", "code"] = "paper", global_mix: float = 0.5) -> Tensor:
    """Pooling weights over (T', V), summing to 1 per sample (and person); actionlet (..., T', V) >= 0.

    mode="paper": A / ΣA (eq. 8). mode="code": global_mix · uniform + (1 − global_mix) · A / ΣA.
    A sample whose actionlet is empty (ΣA = 0) falls back to uniform weights (plain average pooling); the
    paper does not cover this case.
    """
    a = actionlet.clamp_min(0)
    total = a.sum(dim=(-2, -1), keepdim=True)
    uniform = torch.full_like(a, 1.0 / (a.shape[-1] * a.shape[-2]))
    weighted = torch.where(total > 0, a / total.clamp_min(1e-12), uniform)
    if mode == "paper":
        return weighted
    if mode == "code":
        return global_mix * uniform + (1.0 - global_mix) * weighted
    raise ValueError(f"SAFP mode must be 'paper' or 'code', got '{mode}'")


def safp_pool(dense: Tensor, actionlet: Tensor, mode: Literal["paper", "code"] = "paper",
              global_mix: float = 0.5) -> Tensor:
    """Eq. 8 on dense features (N, M, C, T', V) with an actionlet (N, M, T', V) or (N, T', V) -> (N, C).

    Persons are averaged after pooling, as the encoder's global pooling does.
    """
    if actionlet.dim() == 3:
        actionlet = actionlet.unsqueeze(1)
    return pool(dense, safp_weights(actionlet, mode, global_mix))
