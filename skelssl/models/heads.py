"""Heads on top of an encoder's pooled feature."""

from __future__ import annotations

from torch import nn

__all__ = ["Projector"]


class Projector(nn.Sequential):
    """MoCo v2 MLP head: Linear - ReLU - Linear (256 -> 256 -> 128 in SkeletonCLR)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))
