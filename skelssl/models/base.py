"""The encoder interface every method builds on.

Every encoder maps a skeleton batch (N, C, T, V, M) to a pooled feature (N, feature_dim). A dense encoder
(ST-GCN) also gives its last feature map per person, (N, M, C', T', V), which methods that work on joints
and frames need (AimCLR's EADM, ActCLR's actionlets and SAFP). Recurrent encoders (BiGRU, BiLSTM) give only
the pooled feature. A method that needs dense features says so (`requires_dense_features`) and is refused
at build time on an encoder without them, with an error that names both.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from skelssl.models.pooling import pool

__all__ = ["Encoder", "DenseEncoder"]


class Encoder(nn.Module):
    """(N, C, T, V, M) -> (N, feature_dim). Subclasses set `name`, `DEFAULTS` (their `model.<name>.*` keys
    with the papers' values) and `feature_dim`."""

    name: ClassVar[str] = ""
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    dense: ClassVar[bool] = False
    feature_dim: int

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - every encoder overrides it
        raise NotImplementedError


class DenseEncoder(Encoder):
    """An encoder with a spatio-temporal last feature map: `features(x)` -> (N, M, C', T', V); the pooled
    feature is its global average (models.pooling.pool)."""

    dense: ClassVar[bool] = True

    def features(self, x: Tensor) -> Tensor:  # pragma: no cover - every dense encoder overrides it
        raise NotImplementedError

    def feature_frames(self, num_frames: int) -> int:  # pragma: no cover
        """T' of the last feature map for an input of `num_frames` frames."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return pool(self.features(x))
