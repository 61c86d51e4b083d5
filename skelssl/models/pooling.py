"""The one pooling of dense skeleton features: global average pooling (GAP), or an average weighted over
(T', V) such as ActCLR's SAFP (eq. 8), then the mean over persons."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["pool"]


def pool(dense: Tensor, weights: Tensor | None = None) -> Tensor:
    """(N, M, C, T', V) -> (N, C): average over (T', V), then the mean over the M persons.

    weights: optional non-negative (N, T', V) or (N, M, T', V) weights of a weighted average over (T', V);
    they are normalised here to sum to 1 per sample (and person). A sample whose weights are all zero gets
    zero features (callers that need a fallback, like SAFP, give uniform weights instead).
    """
    if dense.dim() != 5:
        raise ValueError(f"pool expects dense features (N, M, C, T', V), got shape {tuple(dense.shape)}")
    if weights is None:
        return dense.mean(dim=(3, 4)).mean(dim=1)
    if weights.dim() == 3:
        weights = weights.unsqueeze(1)
    if weights.dim() != 4:
        raise ValueError(f"pool weights must be (N, T', V) or (N, M, T', V), got {tuple(weights.shape)}")
    weights = weights / weights.sum(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    weights = weights.expand(dense.shape[0], dense.shape[1], *weights.shape[2:])
    return torch.einsum("nmctv,nmtv->nmc", dense, weights).mean(dim=1)
