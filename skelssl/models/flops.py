"""FLOP counting with PyTorch's FlopCounterMode (2 FLOPs per multiply-add)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops"]


def count_flops(model: nn.Module, example_input: Any) -> int:
    """FLOPs of one forward pass of `model(example_input)` (no gradients), as counted by FlopCounterMode.

    Counts matmuls, convolutions and einsums (lowered to bmm) at 2 FLOPs per multiply-add; element-wise ops
    (BatchNorm, ReLU, additions) are not counted. The model's train/eval mode is left unchanged.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        if isinstance(example_input, (tuple, list)):
            model(*example_input)
        else:
            model(example_input)
    return int(counter.get_total_flops())
