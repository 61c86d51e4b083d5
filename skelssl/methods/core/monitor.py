"""The collapse monitor: a Lightning callback that watches the features a method hands it.

A method calls `self.watch(backbone=h, projector=z)` once per step with the features of its main query view;
extra forward passes (an attack, an actionlet pass, a plug-in's branch) are never watched. Per epoch the
callback logs the mean pairwise cosine and the per-dimension spread of both, and warns in plain words when
they show a collapse for two epochs in a row.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

__all__ = ["CollapseMonitor", "embedding_spread", "COLLAPSE_COSINE", "COLLAPSE_STD_RATIO"]

# Collapse thresholds: a healthy L2-normalised D-dim embedding has per-dimension std near 1/sqrt(D)
# (SimSiam, Chen & He 2021) and a mean pairwise cosine well below 1.
# Warn only when it lasts two epochs in a row: the first epochs of a healthy MoCo run can pass near it.
COLLAPSE_COSINE = 0.99
COLLAPSE_STD_RATIO = 0.05


def embedding_spread(features: Tensor) -> tuple[float, float]:
    """(mean pairwise cosine, per-dimension std of the L2-normalised features * sqrt(D))."""
    z = F.normalize(features.detach().float(), dim=1)
    n = z.shape[0]
    if n < 2:
        return float("nan"), float("nan")
    cos = z @ z.t()
    mean_cos = (cos.sum() - cos.diagonal().sum()) / (n * (n - 1))
    std_ratio = z.std(dim=0).mean() * z.shape[1] ** 0.5
    return float(mean_cos), float(std_ratio)


class CollapseMonitor(L.Callback):
    """Logs `collapse/<name>_mean_cosine` and `collapse/<name>_std_ratio` per epoch for each watched feature
    (the methods watch "backbone" and "projector"); `last_stats` holds the last epoch's figures."""

    def __init__(self) -> None:
        self._sums: dict[str, list[float]] = {}
        self._collapsed_last_epoch: dict[str, bool] = {}
        self.last_stats: dict[str, float] = {}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        for name, features in getattr(pl_module, "watched", {}).items():
            cos, std = embedding_spread(features)
            self._sums.setdefault(f"{name}_mean_cosine", []).append(cos)
            self._sums.setdefault(f"{name}_std_ratio", []).append(std)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not self._sums:
            return
        stats = {k: float(np.nanmean(v)) for k, v in self._sums.items()}
        self._sums = {}
        for key, value in stats.items():
            pl_module.log(f"collapse/{key}", value, sync_dist=True)
        self.last_stats = stats
        epoch = trainer.current_epoch
        for name in sorted({k.rsplit("_", 2)[0] for k in stats}):
            cos, std = stats[f"{name}_mean_cosine"], stats[f"{name}_std_ratio"]
            collapsed = cos > COLLAPSE_COSINE or std < COLLAPSE_STD_RATIO
            lasting = collapsed and self._collapsed_last_epoch.get(name, False)
            self._collapsed_last_epoch[name] = collapsed
            if lasting:
                rank_zero_warn(
                    f"epochs {epoch - 1}-{epoch}: the {name} outputs are collapsing: "
                    f"mean pairwise cosine {cos:.3f} (collapse above {COLLAPSE_COSINE}), per-dimension spread "
                    f"{std:.3f} (healthy 1.0, collapse below {COLLAPSE_STD_RATIO}). The features no longer tell "
                    "samples apart; try a lower optim.lr, model.init=pytorch, or a larger queue or batch.")
