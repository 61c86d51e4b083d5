"""The FLOP counter on recurrent layers (issue 23: nn.LSTM counted 0, so HiCo's GFLOP figures undercounted).

Expected counts are the closed forms by hand: per sequence, step, layer and direction an LSTM does 4·H·(I + H)
multiply-adds (four gates, each an input and a hidden projection), a GRU 3·H·(I + H), an RNN H·(I + H); layers
after the first read the 2·H (bidirectional) or H outputs below; 2 FLOPs per multiply-add, biases and gate
element-wise work not counted (the counter's convention, skelssl/models/flops.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skelssl.models.flops import RECURRENT_FORMULAS, count_flops, flop_counter
from skelssl.models.hico import HiCoEncoder

GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}
CUDNN_MODE = {nn.RNN: 1, nn.LSTM: 2, nn.GRU: 3}  # cuDNN's RNN_TANH, LSTM, GRU


def closed_form_flops(cell: type, inputs: int, hidden: int, layers: int, bidirectional: bool, steps: int) -> int:
    """2 · steps · sum over layers and directions of gates·H·(I_layer + H)."""
    directions = 2 if bidirectional else 1
    per_step, size = 0, inputs
    for _ in range(layers):
        per_step += directions * GATES[cell] * hidden * (size + hidden)
        size = directions * hidden
    return 2 * steps * per_step


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_recurrent_layers_count_every_layer_direction_and_projection(cell, layers, bidirectional, batch_first):
    torch.manual_seed(0)
    rnn = cell(10, 8, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first).eval()
    n, t = 3, 7
    x = torch.randn(n, t, 10) if batch_first else torch.randn(t, n, 10)
    # e.g. an LSTM, 2 layers, bidirectional: 2·21·(2·4·8·18 + 2·4·8·24) = 225 792 FLOPs
    assert count_flops(rnn, x) == closed_form_flops(cell, 10, 8, layers, bidirectional, n * t)


def test_the_lstm_closed_form_worked_by_hand():
    # one layer, one direction, I = 10, H = 8, 3 sequences of 7 steps: 4·8·(10 + 8) = 576 multiply-adds a step
    assert count_flops(nn.LSTM(10, 8).eval(), torch.randn(7, 3, 10)) == 2 * 21 * 576 == 24_192


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_a_packed_sequence_counts_only_the_valid_steps(cell):
    torch.manual_seed(0)
    rnn = cell(10, 8, num_layers=2, bidirectional=True, batch_first=True).eval()
    lengths = torch.tensor([7, 4, 2])
    # (a PackedSequence is a tuple: passed inside one, as count_flops unpacks tuples into arguments)
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(3, 7, 10), lengths, batch_first=True)
    assert count_flops(rnn, (packed,)) == closed_form_flops(cell, 10, 8, 2, True, 7 + 4 + 2)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="the fused oneDNN LSTM needs MKLDNN")
def test_the_lstm_backward_counts_twice_its_forward():
    # the gradient of the inputs and hidden states is one pass back through every weight, that of the weights
    # another: forward + backward = 3 forwards, as for the counter's matmuls
    torch.manual_seed(0)
    rnn = nn.LSTM(10, 8, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(3, 7, 10, requires_grad=True)
    with flop_counter() as counter:
        rnn(x)[0].sum().backward()
    assert counter.get_total_flops() == 3 * closed_form_flops(nn.LSTM, 10, 8, 2, True, 21)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("packed", [False, True])
def test_cudnns_fused_operator_counts_all_layers_and_directions(cell, packed):
    # the operator cuDNN runs on GPUs, on meta tensors (no GPU needed): every layer and direction in one call
    rnn = cell(10, 8, num_layers=2, bidirectional=True).to("meta")
    hx = torch.empty(4, 3, 8, device="meta")
    x, batch_sizes, steps = torch.empty(7, 3, 10, device="meta"), [], 21
    if packed:  # lengths 7, 4, 2 as batch sizes per step
        batch_sizes = [3, 3, 2, 2, 1, 1, 1]
        x, steps = torch.empty(sum(batch_sizes), 10, device="meta"), 13
    weights = list(rnn._flat_weights)
    with flop_counter() as counter:
        torch.ops.aten._cudnn_rnn(x, weights, 4, None, hx, hx if cell is nn.LSTM else None, CUDNN_MODE[cell], 8, 0,
                                  2, False, 0.0, False, True, batch_sizes, None)
    assert counter.get_total_flops() == closed_form_flops(cell, 10, 8, 2, True, steps)


def test_cudnns_backward_counts_the_gradients_asked_for():
    backward = RECURRENT_FORMULAS[torch.ops.aten._cudnn_rnn_backward]
    weights = [w.shape for w in nn.LSTM(10, 8, num_layers=2, bidirectional=True)._flat_weights]
    forward = closed_form_flops(nn.LSTM, 10, 8, 2, True, 21)
    rest = [None] * 19  # the schema's arguments between the weights and output_mask (unused)
    assert backward((7, 3, 10), weights, *rest, [True, False, False, True]) == 2 * forward
    assert backward((7, 3, 10), weights, *rest, [False, False, False, True]) == forward
    assert backward((7, 3, 10), weights, *rest, output_mask=[True, True, False, False]) == forward


@pytest.mark.parametrize("layers", [1, 2])
def test_hico_lstm_encoder_flops_by_hand(layers):
    # HiCo-LSTM on NTU (H = 512, 256 per direction, G = 4), one 64-frame sequence of 2 persons x 25 joints:
    # temporal branch 64 frame tokens of 150, spatial branch 50 joint tokens of 192 (64 frames x 3)
    h, g = 512, 256
    embeddings = 64 * (150 * h + h * h) + 50 * (192 * h + h * h)        # Linear - LN - ReLU - Linear
    downsampling = h * 5 * ((64 + 32 + 16) + (50 + 25 + 12))  # depthwise conv, kernel 5, on the tokens it pools
    steps = (64 + 32 + 16 + 8) + (50 + 25 + 12 + 6)                      # the LSTMs' tokens at the 4 levels
    lstm = steps * layers * 2 * 4 * g * (h + g)                          # both directions, input h, hidden g
    encoder = HiCoEncoder("ntu25", num_layers=layers).eval()
    flops = count_flops(encoder, torch.zeros(1, 3, 64, 25, 2))
    assert flops == 2 * (embeddings + downsampling + lstm)
    assert lstm == {1: 335_020_032, 2: 670_040_064}[layers]  # the LSTMs: 89 % (1 layer), 94 % (2) of it


@pytest.mark.parametrize("groups", [1, 4, 16])
@pytest.mark.parametrize("transposed", [False, True])
def test_a_grouped_convolutions_backward_is_twice_its_forward(groups, transposed):
    # forward by hand: per output position and output channel, C_in / groups · kernel multiply-adds; the
    # backward's input gradient and weight gradient cost that again each (torch's formula ignored groups)
    torch.manual_seed(0)
    cls = nn.ConvTranspose1d if transposed else nn.Conv1d
    conv = cls(16, 16, 5, padding=2, groups=groups)
    x = torch.randn(3, 16, 20, requires_grad=True)
    forward = 2 * (3 * 20) * 16 * (16 // groups) * 5  # length 20 kept by padding 2 (both directions)
    with flop_counter() as counter:
        conv(x).sum().backward()
    counts = {str(op): v for op, v in counter.get_flop_counts()["Global"].items()}
    assert counts == {"aten.convolution": forward, "aten.convolution_backward": 2 * forward}
    conv.weight.requires_grad_(False)  # only the input's gradient asked for
    with flop_counter() as counter:
        conv(x).sum().backward()
    assert counter.get_total_flops() == 2 * forward
