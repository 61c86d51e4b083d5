"""HiCo's hierarchical encoder (Dong et al., AAAI 2023), the backbone of HiCo-LSTM and of ProSL's main tables.

Its paper is not in the specification folder; this follows the authors' public code (HuiGuanLab/HiCo,
`hico/hi_encoder.py`) as described in the project's notes, re-written:
- a 64-frame view is read two ways: time-majored, one token per frame holding the flattened (person, joint,
  coordinate) values (64 tokens of 150 on NTU); space-majored, one token per (person, joint) holding its
  flattened (frame, coordinate) trajectory (50 tokens of 192);
- each branch (temporal, spatial) embeds its tokens (Linear - LayerNorm - ReLU - Linear to H) and encodes them
  with its own sequence encoder: a bidirectional LSTM or GRU of H/2 units per direction (or a Transformer);
- granularity 1 is the max over the encoder's outputs; for granularity g > 1 the embedded tokens first pass once
  more through the branch's downsampling module (depthwise Conv1d over tokens, kernel 5, padding 2, LayerNorm,
  ReLU, MaxPool1d(2)), one module per branch applied again at every level, so the temporal branch sees ever
  coarser clips (64, 32, 16, 8 tokens) and the spatial branch ever larger groups of joints (50, 25, 12, 6);
- outputs: clip features vc (N, G, H), part features vp (N, G, H); the downstream representation is the
  instance feature vi = [vc flattened, vp flattened] (N, 2·G·H), 4096-d for HiCo-LSTM (H 512, G 4).
Inputs of another length than `input_frames` are resampled to it (models.recurrent.resample_frames).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from skelssl.models.base import Encoder
from skelssl.models.recurrent import frames_as_tokens, pad_persons, resample_frames, xavier_init_
from skelssl.settings import Check, Setting, choice, integer
from skelssl.skeleton.layouts import Layout, get_layout

__all__ = ["HiCoEncoder", "DownsamplingModule", "joints_as_tokens"]

SEQUENCE_ENCODERS = ("lstm", "gru", "transformer")


def joints_as_tokens(x: Tensor) -> Tensor:
    """(N, C, T, V, M) -> (N, M·V, T·C): one token per (person, joint), person-major, holding its trajectory."""
    n, c, t, v, m = x.shape
    return x.permute(0, 4, 3, 2, 1).reshape(n, m * v, t * c)


class DownsamplingModule(nn.Module):
    """HiCo's unified downsampling module on (N, L, H) tokens: depthwise Conv1d over the tokens, LayerNorm,
    ReLU, then MaxPool1d(factor): (N, L, H) -> (N, L // factor, H)."""

    def __init__(self, hidden: int, kernel_size: int = 5, factor: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden)
        self.norm = nn.LayerNorm(hidden)
        self.pool = nn.MaxPool1d(factor)

    def forward(self, tokens: Tensor) -> Tensor:
        out = torch.relu(self.norm(self.conv(tokens.transpose(1, 2)).transpose(1, 2)))
        return self.pool(out.transpose(1, 2)).transpose(1, 2)


def _embedding(in_size: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_size, hidden), nn.LayerNorm(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, hidden))


def _sequence_encoder(kind: str, hidden: int, num_layers: int, num_heads: int) -> nn.Module:
    if kind == "lstm":
        return nn.LSTM(hidden, hidden // 2, num_layers=num_layers, batch_first=True, bidirectional=True)
    if kind == "gru":
        return nn.GRU(hidden, hidden // 2, num_layers=num_layers, batch_first=True, bidirectional=True)
    layer = nn.TransformerEncoderLayer(hidden, num_heads, dim_feedforward=hidden, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)


class HiCoEncoder(Encoder):
    """(N, C, T, V, M) -> instance feature (N, 2·G·H); `hierarchy(x)` gives the clip and part features
    (N, G, H) each (module docstring). HiCo-LSTM: sequence_encoder "lstm", 1 layer, H = 512, G = 4 (the
    authors' released options: num_layer 1 at every commit; ProSL §4.2: "two stacked LSTM in a bidirectional
    manner", output 512 = one forward and one backward LSTM of 256; docs/fidelity_a2mc_prosl_hico.md).
    init "official" is the authors' xavier-uniform on every weight matrix; "pytorch" keeps PyTorch's."""

    name = "hico"
    DEFAULTS = {"hidden_size": Setting(512, Check(lambda v: None if isinstance(v, int) and not isinstance(v, bool)
                                                  and v >= 2 and v % 2 == 0 else "must be an even whole number "
                                                  ">= 2 (two directions of hidden_size / 2)", "an even number")),
                "num_layers": integer(1, ge=1), "granularities": integer(4, ge=1),
                "sequence_encoder": choice("lstm", *SEQUENCE_ENCODERS), "num_heads": integer(4, ge=1),
                "persons": integer(2, ge=1), "input_frames": integer(64, ge=1), "kernel_size": integer(5, ge=1),
                "factor": integer(2, ge=1)}

    def __init__(self, layout: Layout | str, in_channels: int = 3, hidden_size: int = 512, num_layers: int = 1,
                 granularities: int = 4, sequence_encoder: Literal["lstm", "gru", "transformer"] = "lstm",
                 num_heads: int = 4, persons: int = 2, input_frames: int = 64, kernel_size: int = 5,
                 factor: int = 2, init: str = "pytorch") -> None:
        super().__init__()
        if sequence_encoder not in SEQUENCE_ENCODERS:
            raise ValueError(f"hico: sequence_encoder must be one of {', '.join(SEQUENCE_ENCODERS)}, "
                             f"got '{sequence_encoder}'")
        if input_frames < 1 or hidden_size % 2:
            raise ValueError("hico: input_frames must be positive (the spatial tokens hold input_frames frames) "
                             "and hidden_size even (two directions of hidden_size / 2)")
        if init not in ("pytorch", "official"):
            raise ValueError(f"unknown init '{init}'; use 'pytorch' or 'official'")
        self.layout = get_layout(layout)
        self.persons, self.input_frames, self.granularities = int(persons), int(input_frames), int(granularities)
        self.hidden_size, self.sequence_kind = int(hidden_size), sequence_encoder
        joint_tokens = self.persons * self.layout.num_joints
        if joint_tokens // factor ** (self.granularities - 1) < 1 or \
                self.input_frames // factor ** (self.granularities - 1) < 1:
            raise ValueError(f"hico: {self.granularities} granularities halve {self.input_frames} frames and "
                             f"{joint_tokens} joint tokens below one token; use fewer granularities")
        self.feature_dim = 2 * self.granularities * self.hidden_size
        h = self.hidden_size
        self.t_embedding = _embedding(joint_tokens * in_channels, h)
        self.s_embedding = _embedding(self.input_frames * in_channels, h)
        self.t_downsample = DownsamplingModule(h, kernel_size, factor)
        self.s_downsample = DownsamplingModule(h, kernel_size, factor)
        self.t_encoder = _sequence_encoder(sequence_encoder, h, int(num_layers), int(num_heads))
        self.s_encoder = _sequence_encoder(sequence_encoder, h, int(num_layers), int(num_heads))
        if init == "official":
            xavier_init_(self)

    def _encode(self, encoder: nn.Module, tokens: Tensor) -> Tensor:
        """Max over the sequence encoder's outputs of (N, L, H) tokens -> (N, H)."""
        out = encoder(tokens)
        out = out[0] if isinstance(out, tuple) else out
        return out.amax(dim=1)

    def hierarchy(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Clip features vc and part features vp, (N, G, H) each, granularity 1 first."""
        if x.dim() != 5:
            raise ValueError(f"hico expects (N, C, T, V, M), got shape {tuple(x.shape)}")
        x = pad_persons(resample_frames(x, self.input_frames), self.persons, self.name)
        temporal = self.t_embedding(frames_as_tokens(x))   # (N, T, H): time-majored
        spatial = self.s_embedding(joints_as_tokens(x))     # (N, M·V, H): space-majored
        clips, parts = [self._encode(self.t_encoder, temporal)], [self._encode(self.s_encoder, spatial)]
        for _ in range(1, self.granularities):
            temporal, spatial = self.t_downsample(temporal), self.s_downsample(spatial)
            clips.append(self._encode(self.t_encoder, temporal))
            parts.append(self._encode(self.s_encoder, spatial))
        return torch.stack(clips, dim=1), torch.stack(parts, dim=1)

    @staticmethod
    def instance(clips: Tensor, parts: Tensor) -> Tensor:
        """vi = [vt, vs]: the temporal-domain (clips flattened) and spatial-domain (parts flattened) features."""
        return torch.cat([clips.flatten(1), parts.flatten(1)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.instance(*self.hierarchy(x))
