"""ActCLR+'s Semantic-Aware Masked Motion Modeling (SAM³, ActCLR+ §IV-C, eqs. 49-50).

The query view is masked where the actionlet is (eq. 49, x̂_q = x_q ⊙ Gumbel(A)), the online encoder encodes
it, and a light decoder d reconstructs (eq. 50) what was hidden.

- Masking: Gumbel-top-k over the actionlet scores, as motion-aware masking (MAM, Mao et al. 2023, which the
  paper compares SAM with in Table X) does over motion: per sample and person, k = round(ratio · T'·V) tokens
  of the encoder's (T', V) grid are drawn without replacement with probabilities ∝ softmax(A / τ) (Gumbel-Max
  applied k times: the top-k of A / τ + Gumbel noise); a token is a joint over the input frames one feature
  frame covers. Eq. 49's "⊙ Gumbel(A)" multiplies by the keep-mask: the sampled (moving) tokens are hidden.
- Targets (eq. 50 and the text around it): "motion" (default; the text: "the motion of the actionlet
  regions", as MAM reconstructs motion) is the temporal difference x_{t+1} − x_t of the encoder's input view
  on the hidden tokens, divided by its batch RMS so that L_RC starts near 1 whatever the data's units;
  "actionlet" is eq. 50 as printed, ||A − d(f_q(x̂_q))||² on every token; "both" sums the two.
- Decoder d: per token Linear(C → 64), ReLU, one averaging over skeleton neighbours (the selector's G), ReLU,
  then Linear(64 → C_in · r) for the motion of the r input frames a token covers, and Linear(64 → 1) for A.
- Persons that are absent (all zero) are left out of L_RC.
Choices (docs/fidelity_actclr_plus.md): ratio 0.5 and τ 0.25 (the paper gives neither), the decoder's width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from skelssl.methods.actclr.actionlet import smoothing_matrix
from skelssl.skeleton.layouts import Layout, get_layout

__all__ = ["gumbel_topk_mask", "motion_target", "token_frame_index", "MaskedMotionDecoder", "masked_mse"]


def gumbel_topk_mask(scores: Tensor, ratio: float, temperature: float, generator: torch.Generator) -> Tensor:
    """Bool mask (..., T', V), True = hidden: per leading index, k = round(ratio · T'·V) tokens drawn without
    replacement with probabilities ∝ exp(scores / temperature) (Gumbel-top-k)."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"SAM³ mask ratio must be in [0, 1], got {ratio}")
    flat = scores.detach().float().flatten(-2)
    k = int(round(ratio * flat.shape[-1]))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if k > 0:
        u = torch.rand(flat.shape, generator=generator, device=flat.device).clamp(1e-10, 1 - 1e-7)
        keys = flat / temperature - torch.log(-torch.log(u))  # log-probability + Gumbel(0, 1)
        mask.scatter_(-1, keys.topk(k, dim=-1).indices, True)
    return mask.view(scores.shape)


def motion_target(x: Tensor) -> Tensor:
    """x_{t+1} − x_t of (N, C, T, V, M), the last frame 0 (it has no successor)."""
    motion = torch.zeros_like(x)
    motion[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    return motion


def token_frame_index(num_frames: int, num_tokens: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """(token, offset) of every input frame: frame t belongs to feature frame floor(t·T'/T) (as
    actionlet.upsample_to_frames) and is its offset-th frame."""
    t = torch.arange(num_frames, device=device)
    token = torch.div(t * num_tokens, num_frames, rounding_mode="floor")
    first = torch.div(token * num_frames + num_tokens - 1, num_tokens, rounding_mode="floor")  # ceil(τT/T')
    return token, t - first


class MaskedMotionDecoder(nn.Module):
    """The light decoder d of eq. 50: dense features (N, M, C, T', V) -> (motion (N, C_in, T, V, M),
    actionlet (N, M, T', V))."""

    def __init__(self, feature_channels: int, input_channels: int, frames_per_token: int, layout: Layout | str,
                 hidden: int = 64) -> None:
        super().__init__()
        self.input_channels, self.frames_per_token = int(input_channels), int(frames_per_token)
        self.embed = nn.Linear(feature_channels, hidden)
        self.motion = nn.Linear(hidden, self.input_channels * self.frames_per_token)
        self.actionlet = nn.Linear(hidden, 1)
        self.register_buffer("graph", smoothing_matrix(get_layout(layout)))

    def forward(self, dense: Tensor, num_frames: int) -> tuple[Tensor, Tensor]:
        n, m, _, tokens, v = dense.shape
        h = torch.relu(self.embed(dense.permute(0, 1, 3, 4, 2)))  # (N, M, T', V, hidden)
        h = torch.relu(torch.einsum("nmtvc,vw->nmtwc", h, self.graph.to(h.dtype)))  # neighbours' mean
        actionlet = self.actionlet(h).squeeze(-1)  # (N, M, T', V)
        per_token = self.motion(h).view(n, m, tokens, v, self.input_channels, self.frames_per_token)
        token, offset = token_frame_index(num_frames, tokens, dense.device)
        if int(offset.max()) >= self.frames_per_token:
            raise ValueError(f"SAM³ decoder: a feature frame covers {int(offset.max()) + 1} input frames, the "
                             f"decoder predicts {self.frames_per_token}")
        motion = per_token[:, :, token, :, :, offset]  # (T, N, M, V, C): advanced indices first
        return motion.permute(1, 4, 0, 3, 2), actionlet  # (N, C, T, V, M)

    @staticmethod
    def frames_per_token_of(encoder: nn.Module, max_frames: int = 1000) -> int:
        """The most input frames one feature frame of `encoder` covers, over inputs of 1..max_frames frames."""
        return max(math.ceil(t / encoder.feature_frames(t)) for t in range(1, max_frames + 1))


def masked_mse(prediction: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Σ w (prediction − target)² / Σ w over the broadcast shape (0 when every weight is 0)."""
    w = weights.to(prediction.dtype).expand_as(prediction)
    return (w * (prediction - target).pow(2)).sum() / w.sum().clamp_min(1.0)
