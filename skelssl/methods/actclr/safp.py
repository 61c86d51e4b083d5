"""ActCLR's Semantic-Aware Feature Pooling (SAFP, ActCLR §3.2, eq. 8), used on the offline stream.

SAFP(h) = Σ_tv h_ctv · A_tv / Σ_tv A_tv: a weighted average of the dense features by the actionlet, and the key
z_k = g_k(SAFP(h)) (`mode="paper"`). The authors' code (LanglandsLin/ActCLR, `st_gcn.py` `_mask_pool` and
`actclr.py` forward) instead mixes two projections after the projector: z_k = m · g_k(GAP(h)) + (1 − m) ·
g_k(Σ h · A / (Σ A + 1e-5)), m = 0.5 (`mode="code"`); g_k is not linear, so this differs from mixing the pooled
features before it.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import Tensor

from skelssl.models.pooling import pool

__all__ = ["SAFP_MODES", "safp_weights", "safp_pool", "safp_key"]

SAFP_MODES = ("paper", "code")
CODE_EPSILON = 1e-5  # the authors' masked mean divides by Σ A + 1e-5 (an empty actionlet pools to zero)


def safp_weights(actionlet: Tensor, mode: Literal["paper", "code"] = "paper") -> Tensor:
    """Pooling weights over (T', V) per sample (and person); actionlet (..., T', V) >= 0.

    mode="paper": A / ΣA (eq. 8); a sample whose actionlet is empty (ΣA = 0) falls back to uniform weights
    (plain average pooling), a case the paper does not cover. mode="code": A / (ΣA + 1e-5), the authors'.
    """
    a = actionlet.clamp_min(0)
    total = a.sum(dim=(-2, -1), keepdim=True)
    if mode == "code":
        return a / (total + CODE_EPSILON)
    if mode != "paper":
        raise ValueError(f"SAFP mode must be one of {SAFP_MODES}, got '{mode}'")
    uniform = torch.full_like(a, 1.0 / (a.shape[-1] * a.shape[-2]))
    return torch.where(total > 0, a / total.clamp_min(1e-12), uniform)


def safp_pool(dense: Tensor, actionlet: Tensor, mode: Literal["paper", "code"] = "paper") -> Tensor:
    """Eq. 8 on dense features (N, M, C, T', V) with an actionlet (N, M, T', V) or (N, T', V) -> (N, C).

    Persons are averaged after pooling, as the encoder's global pooling does.
    """
    if actionlet.dim() == 3:
        actionlet = actionlet.unsqueeze(1)
    weights = safp_weights(actionlet, mode).expand(dense.shape[0], dense.shape[1], *actionlet.shape[2:])
    return torch.einsum("nmctv,nmtv->nmc", dense, weights.to(dense.dtype)).mean(dim=1)


def safp_key(dense: Tensor, actionlet: Tensor, projector: Callable[[Tensor], Tensor],
             mode: Literal["paper", "code"] = "paper", global_mix: float = 0.5) -> Tensor:
    """The offline embedding before normalisation, (N, D): g_k(SAFP(h)) (eq. 8, mode="paper"), or the authors'
    global_mix · g_k(GAP(h)) + (1 − global_mix) · g_k(masked mean of h) (mode="code")."""
    if mode == "paper":
        return projector(safp_pool(dense, actionlet, "paper"))
    if mode != "code":
        raise ValueError(f"SAFP mode must be one of {SAFP_MODES}, got '{mode}'")
    return global_mix * projector(pool(dense)) + (1.0 - global_mix) * projector(safp_pool(dense, actionlet, "code"))
