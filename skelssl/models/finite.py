"""Which tensor of a set holds NaN or infinity: one fused pass (max |x| per tensor) and one device sync."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

__all__ = ["first_nonfinite", "batchnorm_layers", "batchnorm_statistics"]


def first_nonfinite(named: Iterable[tuple[str, Tensor]]) -> str | None:
    """The name of the first floating-point tensor holding NaN or ±inf, or None when every one is finite."""
    items = [(name, t.detach()) for name, t in named if t.is_floating_point() and t.numel()]
    if not items:
        return None
    bad = None
    for device in {t.device for _, t in items}:  # _foreach_norm takes the tensors of one device at a time
        group = [(name, t) for name, t in items if t.device == device]
        peaks = torch.stack([p.float() for p in torch._foreach_norm([t for _, t in group], ord=float("inf"))])
        flags = ~torch.isfinite(peaks)
        if bool(flags.any()):
            first = group[int(flags.nonzero()[0, 0])][0]
            bad = first if bad is None else min(bad, first, key=[name for name, _ in items].index)
    return bad


def batchnorm_layers(module: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """(name, layer) of every BatchNorm below `module` (found once; see batchnorm_statistics)."""
    return [(prefix, sub) for prefix, sub in module.named_modules()
            if isinstance(sub, nn.modules.batchnorm._BatchNorm)]


def batchnorm_statistics(layers: list[tuple[str, nn.modules.batchnorm._BatchNorm]]) -> list[tuple[str, Tensor]]:
    """(name, tensor) of the running mean and variance of these layers, read now (moving a module to another
    device replaces its buffers, so the tensors are not kept)."""
    return [(f"{prefix}.{name}" if prefix else name, buffer)
            for prefix, sub in layers
            for name, buffer in (("running_mean", sub.running_mean), ("running_var", sub.running_var))
            if buffer is not None]
