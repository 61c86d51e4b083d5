"""AimCLR's Energy-based Attention-guided Drop Module (EADM, AimCLR §3.3, eq. 3 and Algorithm 1).

SimAM (Yang et al. 2021) gives every neuron t of a channel its minimal energy e_t (eq. 3); the attention is
sigmoid(1 / e_t). EADM then drops the most important (highest-attention) joints and frames of the query
encoder's last feature map and rescales what is kept (Algorithm 1).

The paper leaves open how the spatial mask M_s and the temporal mask M_t are built from the attention map and
keep_margin. We choose (and the official code agrees for M_s): a joint is dropped when its mean attention over
(C, T) is >= keep_margin. For M_t the same absolute rule (`temporal="frame"`) never fires: a frame's mean
attention over C·V values (256 x 25 in ST-GCN's last block) sits near 0.66 (sigmoid(1/e) >= sigmoid(0.5) =
0.62 for every neuron, and averages of thousands of them barely vary: std 0.003 over frames at init), so no
frame was ever dropped. The default (`temporal="relative"`) reads keep_margin on the map's own range, as
Algorithm 1 intends (drop the most important frames): per sample, the frame means are min-max normalised and
the frames at or above keep_margin of the range are dropped; the most important frame always is (unless
all frames are equal). Measured on
the synthetic set with the paper's ST-GCN at init: 38 % of frames and 2.7 % of joints dropped (AimCLR logs
both rates, `eadm_frame_drop` and `eadm_joint_drop`, every epoch). The official code's "temporal" mask is
element-wise on (C·V, T) (`temporal="element"`); the absolute per-frame rule stays as `temporal="frame"`.
Algorithm 1 acts on one feature X, so the renormalisation count(M)/count_ones(M) is per sample by default;
the code counts over the whole batch (`renorm="batch"`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["simam_energy", "energy_attention", "drop_masks", "apply_drop", "EnergyAttentionDrop"]


def simam_energy(x: Tensor, lam: float = 1e-4, unbiased: bool = False) -> Tensor:
    """Minimal energy e_t of every neuron (AimCLR eq. 3); x (..., T, V), the neurons of one channel are (T, V).

    e_t = 4(σ² + λ) / ((t − μ)² + 2σ² + 2λ), μ and σ² the channel's mean and variance over its N = T·V
    neurons. The paper's σ² divides by N; SimAM's and AimCLR's code divide by N − 1 (`unbiased=True`).
    """
    n = x.shape[-1] * x.shape[-2]
    mu = x.mean(dim=(-2, -1), keepdim=True)
    sq = (x - mu).pow(2)
    var = sq.sum(dim=(-2, -1), keepdim=True) / (n - 1 if unbiased else n)
    return 4 * (var + lam) / (sq + 2 * var + 2 * lam)


def energy_attention(x: Tensor, lam: float = 1e-4, unbiased: bool = False) -> Tensor:
    """α̃ = sigmoid(1 / E) (AimCLR §3.3): 1/e_t = (t − μ)² / (4(σ² + λ)) + 1/2, computed without dividing by e."""
    mu = x.mean(dim=(-2, -1), keepdim=True)
    sq = (x - mu).pow(2)
    n = x.shape[-1] * x.shape[-2]
    var = sq.sum(dim=(-2, -1), keepdim=True) / (n - 1 if unbiased else n)
    return torch.sigmoid(sq / (4 * (var + lam)) + 0.5)


def drop_masks(attention: Tensor, keep_margin: float,
               temporal: Literal["relative", "frame", "element"] = "relative") -> tuple[Tensor, Tensor]:
    """Spatial and temporal keep-masks (1 keep, 0 drop) from an attention map (B, C, T, V) (Algorithm 1, step 2).

    M_s (B, 1, 1, V): joints whose mean attention over (C, T) is >= keep_margin are dropped.
    M_t (B, 1, T, 1) for temporal="relative" (frames whose mean attention over (C, V), min-max normalised over
    the sample's frames, is >= keep_margin) or "frame" (the unnormalised mean >= keep_margin); (B, C, T, V)
    element-wise for temporal="element" (the official code). Module docstring: why "relative" is the default.
    """
    spatial = (attention.mean(dim=(1, 2), keepdim=True) < keep_margin).to(attention.dtype)
    if temporal in ("relative", "frame"):
        frames = attention.mean(dim=(1, 3), keepdim=True)  # (B, 1, T, 1)
        if temporal == "relative":
            low, high = frames.amin(dim=2, keepdim=True), frames.amax(dim=2, keepdim=True)
            frames = (frames - low) / (high - low).clamp_min(torch.finfo(frames.dtype).tiny)
        temporal_mask = (frames < keep_margin).to(attention.dtype)
    elif temporal == "element":
        temporal_mask = (attention < keep_margin).to(attention.dtype)
    else:
        raise ValueError(f"temporal must be 'relative', 'frame' or 'element', got '{temporal}'")
    return spatial, temporal_mask


def apply_drop(x: Tensor, mask: Tensor, renorm: Literal["sample", "batch"] = "sample") -> Tensor:
    """X ← X · M · count(M) / count_ones(M) (Algorithm 1, steps 3-6); x (B, C, T, V), mask broadcastable.

    renorm="sample" counts per sample, "batch" over the whole mask (official code). A sample whose mask
    drops everything becomes zero (no division by zero).
    """
    if renorm == "sample":
        dims = tuple(range(1, mask.dim()))
        count = float(mask[0].numel())
        kept = mask.sum(dim=dims, keepdim=True)
    elif renorm == "batch":
        count = float(mask.numel())
        kept = mask.sum()
    else:
        raise ValueError(f"renorm must be 'sample' or 'batch', got '{renorm}'")
    return x * mask * (count / kept.clamp_min(1.0))


class EnergyAttentionDrop(nn.Module):
    """EADM (Algorithm 1) on a dense feature map (B, C, T, V) or (N, M, C, T, V) (each person separately).

    lam: SimAM's λ (eq. 3; 1e-4 in the official code). keep_margin: attention level at and above which a
    joint/frame is dropped (0.7 in the official code). Parameter-free; the attention is not back-propagated
    through the mask (a hard 0/1 choice), only through the kept features.
    """

    def __init__(self, lam: float = 1e-4, keep_margin: float = 0.7,
                 temporal: Literal["relative", "frame", "element"] = "relative",
                 renorm: Literal["sample", "batch"] = "sample", unbiased: bool = False) -> None:
        super().__init__()
        self.lam, self.keep_margin = float(lam), float(keep_margin)
        self.temporal, self.renorm, self.unbiased = temporal, renorm, bool(unbiased)
        # share of joints and of frames (of elements for temporal="element") the last call dropped
        self.last_drop_rates: dict[str, Tensor] = {}

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        if x.dim() == 5:
            x = x.reshape(shape[0] * shape[1], *shape[2:])
        with torch.no_grad():
            attention = energy_attention(x, self.lam, self.unbiased)  # step 1
            spatial, temporal = drop_masks(attention, self.keep_margin, self.temporal)  # step 2
            self.last_drop_rates = {"joint": 1 - spatial.mean(), "frame": 1 - temporal.mean()}
        x = apply_drop(x, spatial, self.renorm)  # steps 3-4
        x = apply_drop(x, temporal, self.renorm)  # steps 5-6
        return x.reshape(shape)

    def extra_repr(self) -> str:
        return (f"lam={self.lam}, keep_margin={self.keep_margin}, temporal={self.temporal}, "
                f"renorm={self.renorm}, unbiased={self.unbiased}")
