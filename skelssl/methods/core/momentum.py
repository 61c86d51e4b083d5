"""The momentum (EMA) update of a target network from its online network (MoCo)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["update_momentum"]


@torch.no_grad()
def update_momentum(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """theta_k <- m * theta_k + (1 - m) * theta_q  (AimCLR eq. 2, MoCo).

    BatchNorm running statistics are buffers, not parameters: the key encoder keeps its own, computed on the
    key batches, as in MoCo.
    """
    online_params = list(online.parameters())
    target_params = list(target.parameters())
    torch._foreach_mul_(target_params, momentum)
    torch._foreach_add_(target_params, online_params, alpha=1.0 - momentum)
