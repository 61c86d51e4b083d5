"""The views of ISC (Thoker et al., ACM MM 2021), which CMD, HiCo and A²MC's "basic augmentation" reuse:
temporal crop-resize to 64 frames, then one of two spatial augmentations, each with probability 0.5 -- joint
corruption or pose augmentation. Batched on (N, C, T, V, M) with an explicit generator, like every transform.

- pose augmentation: a shear whose six off-diagonal entries are U(-1, 1) (transforms.spatial.shear with
  amplitude 1; AimCLR's shear uses 0.5);
- joint corruption: 15 joints drawn per sample (the same for every frame and person) are, with probability
  0.5, zeroed, and otherwise have their coordinates multiplied by a random 3 x 3 matrix of U(-1, 1) entries
  (x'_c' = sum_c x_c R[c, c'], as the ISC code's row-vector product).
"""

from __future__ import annotations

import torch
from torch import Tensor

from skelssl.transforms.spatial import check_batch, sample_selection, shear
from skelssl.transforms.temporal import crop_resize

__all__ = ["joint_corruption", "isc_augment", "whole_sequence"]


def joint_corruption(x: Tensor, generator: torch.Generator, *, joints: int = 15, p_zero: float = 0.5) -> Tensor:
    """ISC joint corruption (module docstring): per sample `joints` joints zeroed (probability p_zero) or
    mixed by a random U(-1, 1) 3 x 3 matrix. Zero-padded frames and persons stay zero."""
    check_batch(x, "joint_corruption", need_xyz=True)
    n, c, t, v, m = x.shape
    if not 0 <= joints <= v:
        raise ValueError(f"joint_corruption: joints must be between 0 and V={v}, got {joints}")
    zero = sample_selection(n, p_zero, generator, x.device)
    order = torch.rand(n, v, generator=generator, device=x.device).argsort(dim=1)
    chosen = torch.zeros(n, v, dtype=torch.bool, device=x.device).scatter_(1, order[:, :joints], True)
    mix = torch.rand(n, 3, 3, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
    mixed = torch.einsum("nctvm,ncd->ndtvm", x, mix)  # row vector times R
    corrupted = torch.where(zero.view(n, 1, 1, 1, 1), torch.zeros_like(x), mixed)
    return torch.where(chosen.view(n, 1, 1, v, 1), corrupted, x)


def isc_augment(x: Tensor, generator: torch.Generator, lengths: Tensor | None = None, *,
                crop_scale: tuple[float, float] = (0.1, 1.0), out_frames: int = 64, min_frames: int = 64,
                shear_amplitude: float = 1.0, corrupt_joints: int = 15) -> Tensor:
    """One ISC view: crop-resize of the valid frames (`lengths`, None = all) to `out_frames`, then per sample
    joint corruption or pose augmentation (shear U(-shear_amplitude, shear_amplitude)), each with probability
    0.5. Every draw is made for every sample, so the stream does not depend on the outcome."""
    x = crop_resize(x, generator, lengths, scale=crop_scale, out_frames=out_frames, min_frames=min_frames)
    corrupt = sample_selection(x.shape[0], 0.5, generator, x.device)
    corrupted = joint_corruption(x, generator, joints=min(corrupt_joints, x.shape[3]))
    sheared = shear(x, generator, amplitude=shear_amplitude)
    return torch.where(corrupt.view(-1, 1, 1, 1, 1), corrupted, sheared)


def whole_sequence(x: Tensor, lengths: Tensor | None = None, out_frames: int = 64) -> Tensor:
    """The valid frames of each sequence (`lengths`, None = all) resampled to `out_frames`: the crop-resize
    with the whole sequence as its window. Deterministic (no draws from any training generator) and
    differentiable in x: A²MC's attack sees this, and it is the clean view of a sequence for HiCo and A²MC."""
    unused = torch.Generator(device=x.device).manual_seed(0)  # scale (1, 1): the window does not depend on it
    return crop_resize(x, unused, lengths, scale=(1.0, 1.0), out_frames=out_frames, min_frames=1)
