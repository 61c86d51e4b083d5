"""Recurrent encoders on the flattened joints of each frame: BiGRU (ISC / CMD / A²MC) and BiLSTM (HiCo-LSTM).

A frame's coordinates of every person and joint, ordered (person, joint, coordinate), form one input vector
(2 x 25 x 3 = 150 on NTU); a BatchNorm over those input features, a multi-layer bidirectional recurrent
network over the frames, and a pooled feature of 2 x hidden_size. They give no (T', V) map: methods that need
one (AimCLR's EADM, ActCLR's actionlets) refuse them when they are built.

The papers feed them 64-frame inputs made by temporal crop-resize (ISC §3; A²MC §IV-B: "all sequence lengths
are resized to the fixed 64 frames"). The methods make those views on the device; an input of any other length
(a test sequence at evaluation, a SkeletonCLR view at the data's length) is resampled linearly to
`input_frames` frames first, as the crop-resize would resample the whole sequence, so training views and
evaluation inputs have one time scale.

Choices (docs/fidelity_a2mc_prosl_hico.md):
- pooling "final" (default): the last layer's forward state after the last frame joined with its backward state
  after the first frame, i.e. each direction's summary of the whole sequence. The ISC/CMD code feeds the GRU one
  frame per call and carries the state, so its "backward" direction also runs forward in time, and takes the
  output at the last frame; "mean" and "max" pool the outputs over time instead.
- persons: the input vector holds `persons` skeletons; a batch with fewer is zero-padded (single-person data
  such as NW-UCLA then matches the NTU two-person format), one with more is an error.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skelssl.models.base import Encoder
from skelssl.settings import choice, integer, number, plain
from skelssl.skeleton.layouts import Layout, get_layout

__all__ = ["RecurrentEncoder", "BiGRU", "BiLSTM", "resample_frames", "pad_persons", "frames_as_tokens",
           "xavier_init_"]

POOLINGS = ("final", "mean", "max")


def resample_frames(x: Tensor, frames: int) -> Tensor:
    """(N, C, T, V, M) -> (N, C, frames, V, M): linear resampling of the whole time axis
    (F.interpolate linear, align_corners=False: the resize of transforms.temporal.crop_resize). Identity when
    T already equals `frames`."""
    n, c, t, v, m = x.shape
    if t == frames:
        return x
    flat = x.permute(0, 1, 3, 4, 2).reshape(n, c * v * m, t)
    flat = F.interpolate(flat, size=frames, mode="linear", align_corners=False)
    return flat.view(n, c, v, m, frames).permute(0, 1, 4, 2, 3)


def pad_persons(x: Tensor, persons: int, who: str) -> Tensor:
    """Zero-pad the person axis of (N, C, T, V, M) to `persons`; more persons than that is an error."""
    m = x.shape[4]
    if m > persons:
        raise ValueError(f"{who} was built for {persons} person(s) per frame, the batch has M={m}; "
                         f"set model.<encoder>.persons={m}")
    if m < persons:
        x = F.pad(x, (0, persons - m))
    return x


def frames_as_tokens(x: Tensor) -> Tensor:
    """(N, C, T, V, M) -> (N, T, M·V·C): one token per frame, coordinates ordered (person, joint, coordinate)."""
    n, c, t, v, m = x.shape
    return x.permute(0, 2, 4, 3, 1).reshape(n, t, m * v * c)


def xavier_init_(module: nn.Module) -> nn.Module:
    """Xavier-uniform on every 2-D parameter (the HiCo authors' init of their encoders and projectors)."""
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() == 2:
                nn.init.xavier_uniform_(p)
    return module


class RecurrentEncoder(Encoder):
    """(N, C, T, V, M) -> (N, 2·hidden_size): input BatchNorm, bidirectional GRU/LSTM, pooled (module docstring).

    cell: "gru" or "lstm"; hidden_size per direction; num_layers stacked; dropout between layers;
    input_frames: inputs of another length are resampled to it (0: never); init "pytorch" (PyTorch's default,
    also the ISC/CMD code's) or "official" (xavier-uniform on every weight matrix, HiCo's init).
    """

    cell: ClassVar[str] = "gru"
    DEFAULTS: ClassVar[dict] = {"hidden_size": integer(1024, ge=1), "num_layers": integer(3, ge=1),
                                "persons": integer(2, ge=1), "input_frames": integer(64, ge=1),
                                "pooling": choice("final", *POOLINGS), "input_norm": True,
                                "dropout": number(0.0, ge=0, lt=1)}

    def __init__(self, layout: Layout | str, in_channels: int = 3, hidden_size: int | None = None,
                 num_layers: int | None = None, persons: int | None = None, input_frames: int | None = None,
                 pooling: Literal["final", "mean", "max"] | None = None, input_norm: bool | None = None,
                 dropout: float | None = None, init: str = "pytorch") -> None:
        super().__init__()
        d = plain(self.DEFAULTS)  # an argument left out takes the class's (the paper's) value
        hidden_size = d["hidden_size"] if hidden_size is None else hidden_size
        num_layers = d["num_layers"] if num_layers is None else num_layers
        persons = d["persons"] if persons is None else persons
        input_frames = d["input_frames"] if input_frames is None else input_frames
        pooling = d["pooling"] if pooling is None else pooling
        input_norm = d["input_norm"] if input_norm is None else input_norm
        dropout = d["dropout"] if dropout is None else dropout
        if pooling not in POOLINGS:
            raise ValueError(f"{self.name}: pooling must be one of {', '.join(POOLINGS)}, got '{pooling}'")
        if init not in ("pytorch", "official"):
            raise ValueError(f"unknown init '{init}'; use 'pytorch' or 'official'")
        self.layout = get_layout(layout)
        self.persons, self.input_frames, self.pooling = int(persons), int(input_frames), pooling
        self.input_size = self.persons * self.layout.num_joints * in_channels
        self.hidden_size = int(hidden_size)
        self.feature_dim = 2 * self.hidden_size
        self.input_norm = nn.BatchNorm1d(self.input_size) if input_norm else None
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[self.cell]
        self.rnn = rnn(self.input_size, self.hidden_size, num_layers=int(num_layers), batch_first=True,
                       bidirectional=True, dropout=float(dropout) if num_layers > 1 else 0.0)
        if init == "official" and self.cell == "lstm":
            xavier_init_(self.rnn)

    def sequence(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(outputs (N, T, 2H) of the last layer, final states (2, N, H): forward after the last frame,
        backward after the first) of the recurrent network on (N, C, T, V, M)."""
        if x.dim() != 5:
            raise ValueError(f"{self.name} expects (N, C, T, V, M), got shape {tuple(x.shape)}")
        if self.input_frames > 0:
            x = resample_frames(x, self.input_frames)
        tokens = frames_as_tokens(pad_persons(x, self.persons, self.name))  # (N, T, M·V·C)
        if self.input_norm is not None:
            tokens = self.input_norm(tokens.transpose(1, 2)).transpose(1, 2)
        outputs, state = self.rnn(tokens)
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM: (h_n, c_n)
        return outputs, hidden[-2:]

    def forward(self, x: Tensor) -> Tensor:
        outputs, final = self.sequence(x)
        if self.pooling == "final":
            return torch.cat([final[0], final[1]], dim=1)
        if self.pooling == "mean":
            return outputs.mean(dim=1)
        return outputs.amax(dim=1)


class BiGRU(RecurrentEncoder):
    """The BiGRU of ISC / CMD, which A²MC reports in most tables: 3 layers, 1024 hidden units per direction,
    150 inputs on NTU (2 persons x 25 joints x 3), 2048-d feature; 44,998,956 parameters and 2.88 G
    multiply-adds per 64-frame sequence (A²MC Table I: 2.88-2.93 G; its "10.0M" parameters fits no
    configuration of this network, see the fidelity page)."""

    name = "bigru"
    cell = "gru"
    DEFAULTS = dict(RecurrentEncoder.DEFAULTS)


class BiLSTM(RecurrentEncoder):
    """The two-layer bidirectional LSTM of HiCo-LSTM (ProSL §4.2: "two stacked LSTM in a bidirectional manner",
    output 512): 256 hidden units per direction, 512-d feature, here on the flattened joints of each frame."""

    name = "bilstm"
    cell = "lstm"
    DEFAULTS = dict(RecurrentEncoder.DEFAULTS, hidden_size=integer(256, ge=1), num_layers=integer(2, ge=1))
