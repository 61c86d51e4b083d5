"""FLOP counting with PyTorch's FlopCounterMode (2 FLOPs per multiply-add), recurrent layers included.

FlopCounterMode counts an operator only when it has a formula for it. A recurrent layer that runs as one fused
operator (nn.LSTM on CPU through oneDNN's `mkldnn_rnn_layer`; LSTM, GRU and RNN on CUDA through cuDNN's
`_cudnn_rnn`, on ROCm through `miopen_rnn`) had none and counted 0, while the same layer on the unfused path
(nn.GRU and nn.RNN on CPU, packed sequences, LSTMs with projections) is lowered to matmuls the counter sees.
`flop_counter()` adds formulas for the fused operators that give what the unfused path counts, and replaces
torch's formula for a convolution's backward, which ignores groups (a depthwise convolution's weight gradient
counted C times over).
"""

from __future__ import annotations

from math import prod
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "flop_counter", "recurrent_macs", "RECURRENT_FORMULAS", "FORMULAS"]

Shape = Sequence[int]


def recurrent_macs(input_shape: Shape, weight_shapes: Sequence[Shape | None]) -> int:
    """Multiply-adds of a recurrent layer's forward: every weight matrix (W_ih, W_hh, W_hr of every layer and
    direction given) is applied once per (sequence, time step).

    The (sequence, step) pairs are all the input's dimensions but the last, whatever the layout: (T, N, I),
    (N, T, I) with batch_first, or (sum of the lengths, I) for a packed sequence. Biases (1-d weights) and the
    gates' element-wise work are not counted, as everywhere in this counter. Closed form, e.g. an LSTM layer of
    one direction: 4·H·(I + H) per step; GRU 3·H·(I + H); RNN H·(I + H).
    """
    steps = prod(input_shape[:-1])
    return steps * sum(prod(shape) for shape in weight_shapes if shape is not None and len(shape) == 2)


def _mkldnn_layer(input_shape: Shape, w_ih: Shape, w_hh: Shape, *args: Any, out_shape: Any = None,
                  **kwargs: Any) -> int:
    """oneDNN runs one layer and one direction per call."""
    return 2 * recurrent_macs(input_shape, (w_ih, w_hh))


def _mkldnn_layer_backward(input_shape: Shape, w_ih: Shape, w_hh: Shape, *args: Any, out_shape: Any = None,
                           **kwargs: Any) -> int:
    """The gradients of the inputs and hidden states (one pass through the weights) and of the weights (another):
    twice the forward, as the counter's matmul backward."""
    return 2 * _mkldnn_layer(input_shape, w_ih, w_hh)


def _fused_rnn(input_shape: Shape, weights: Sequence[Shape], *args: Any, out_shape: Any = None,
               **kwargs: Any) -> int:
    """cuDNN / MIOpen run every layer and direction in one call: `weights` lists them all."""
    return 2 * recurrent_macs(input_shape, weights)


def _fused_rnn_backward(input_shape: Shape, weights: Sequence[Shape], *args: Any, out_shape: Any = None,
                        **kwargs: Any) -> int:
    """output_mask, the schema's last argument: the gradients asked for (input, hx, cx, weights); the first three
    come from one pass back through the weights, the weights' gradient from another."""
    mask = kwargs.get("output_mask", args[-1] if args else (True, True, True, True))
    return _fused_rnn(input_shape, weights) * (int(any(mask[:3])) + int(mask[3]))


def _convolution_backward(grad_out_shape: Shape, x_shape: Shape, w_shape: Shape, bias: Any, stride: Any,
                          padding: Any, dilation: Any, transposed: bool, output_padding: Any, groups: int,
                          output_mask: Sequence[bool], out_shape: Any = None, **kwargs: Any) -> int:
    """The input's gradient and the weights' gradient each cost the forward's multiply-adds: one per weight
    (C_in / groups · kernel of each output channel) and output position. Torch's own formula ignores `groups`
    and counts a depthwise convolution's weight gradient C times over (HiCo's downsampling: 513x its forward)."""
    positions = prod(x_shape if transposed else grad_out_shape)  # (N, C, ...) of the side C_out/groups reads
    forward = 2 * positions * prod(w_shape[1:])
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def _available(*names: str) -> list[Any]:
    return [getattr(torch.ops.aten, name) for name in names if hasattr(torch.ops.aten, name)]


RECURRENT_FORMULAS: dict[Any, Callable[..., int]] = {
    **{op: _mkldnn_layer for op in _available("mkldnn_rnn_layer")},
    **{op: _mkldnn_layer_backward for op in _available("mkldnn_rnn_layer_backward")},
    **{op: _fused_rnn for op in _available("_cudnn_rnn", "miopen_rnn")},
    **{op: _fused_rnn_backward for op in _available("_cudnn_rnn_backward", "miopen_rnn_backward")},
}
FORMULAS: dict[Any, Callable[..., int]] = {**RECURRENT_FORMULAS,
                                           torch.ops.aten.convolution_backward: _convolution_backward}


def flop_counter() -> FlopCounterMode:
    """A FlopCounterMode (no display) that also counts the fused recurrent operators (module docstring) and counts
    a grouped convolution's backward by its groups."""
    return FlopCounterMode(display=False, custom_mapping=FORMULAS)


def count_flops(model: nn.Module, example_input: Any) -> int:
    """FLOPs of one forward pass of `model(example_input)` (no gradients), as counted by `flop_counter()`.

    Counts matmuls, convolutions and einsums (lowered to bmm) and the weight matrices of recurrent layers (LSTM,
    GRU, RNN: all layers and directions, input and hidden projections, once per sequence and step) at 2 FLOPs per
    multiply-add; element-wise ops (BatchNorm, ReLU, additions, biases, the recurrent gates' sigmoid/tanh and
    products) are not counted. The model's train/eval mode is left unchanged.
    """
    counter = flop_counter()
    with torch.no_grad(), counter:
        if isinstance(example_input, (tuple, list)):
            model(*example_input)
        else:
            model(example_input)
    return int(counter.get_total_flops())
