"""Temporal augmentations on skeleton batches (N, C, T, V, M): AimCLR crop (temporal shift), HiCo/CMD
crop-resize, temporal flip. Batched index gathers; per-sample parameters from an explicit generator."""

from __future__ import annotations

import torch
from torch import Tensor

from skelssl.transforms.spatial import check_batch, sample_selection
from skelssl.transforms.tracking import ViewTracker

__all__ = ["temporal_crop", "crop_resize", "temporal_flip", "mirrored_window_index"]


def _gather_frames(x: Tensor, frame_index: Tensor) -> Tensor:
    """out[n, :, t] = x[n, :, frame_index[n, t]] for frame_index of shape (N, T_out)."""
    n, c, _, v, m = x.shape
    index = frame_index.view(n, 1, -1, 1, 1).expand(n, c, frame_index.shape[1], v, m)
    return x.gather(2, index)


def mirrored_window_index(start: Tensor, num_frames: int, pad: int) -> Tensor:
    """Source frame of each output frame for a window of num_frames starting at `start` (N,) in the sequence
    mirror-padded by `pad` frames at both ends: [x_{pad-1} .. x_0, x_0 .. x_{T-1}, x_{T-1} .. x_{T-pad}]."""
    padded = start[:, None] + torch.arange(num_frames, device=start.device)  # index into the padded sequence
    j = padded - pad
    before = -j - 1                     # mirror of the first frames (edge frame repeated)
    after = 2 * num_frames - 1 - j      # mirror of the last frames
    return torch.where(j < 0, before, torch.where(j >= num_frames, after, j))


def temporal_crop(x: Tensor, generator: torch.Generator, *, padding_ratio: int = 6,
                  tracker: ViewTracker | None = None) -> Tensor:
    """SkeletonCLR/AimCLR "Crop": a temporal shift. Mirror-pad pad = T // padding_ratio frames at both ends
    and take T frames starting at a per-sample start ~ U{0, ..., 2 * pad}. Keeps T; always applied.
    tracker: records the source frame of every output frame (transforms.tracking)."""
    check_batch(x, "temporal_crop")
    if padding_ratio <= 0:
        raise ValueError(f"temporal_crop: padding_ratio must be positive, got {padding_ratio}")
    n, _, t, _, _ = x.shape
    pad = min(t // padding_ratio, t)  # a mirror longer than the sequence is not defined
    start = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=x.device)
    if pad == 0:
        return x.clone()
    index = mirrored_window_index(start, t, pad)
    if tracker is not None:
        tracker.take_frames(index)
    return _gather_frames(x, index)


def crop_resize(x: Tensor, generator: torch.Generator, lengths: Tensor | None = None, *,
                scale: tuple[float, float] = (0.1, 1.0), out_frames: int = 64, min_frames: int = 64,
                tracker: ViewTracker | None = None) -> Tensor:
    """HiCo/CMD/2s-AGCN random crop + resize: crop a window of floor(L * r) frames, r ~ U(scale), of the
    valid length L (`lengths` per sample, None = all T frames), at a uniform random offset inside the valid
    frames, then resample it linearly to `out_frames` frames.

    As in that official code the window is at least `min_frames` (64) frames, capped by L; pass min_frames=1
    for a pure ratio crop (with the 50-frame AimCLR inputs and min_frames=64 the crop is the whole sequence).
    Resampling follows F.interpolate(mode='linear', align_corners=False), the official resize. A tracker
    records, for every output frame, the nearer of the two frames it interpolates.
    """
    check_batch(x, "crop_resize")
    n, _, t, _, _ = x.shape
    low, high = scale
    if not 0.0 < low <= high:
        raise ValueError(f"crop_resize: scale must satisfy 0 < low <= high, got {scale}")
    if out_frames <= 0:
        raise ValueError(f"crop_resize: out_frames must be positive, got {out_frames}")
    if lengths is None:
        valid = torch.full((n,), t, device=x.device, dtype=torch.long)
    else:
        valid = torch.as_tensor(lengths, device=x.device).long().clamp(1, t)
    uniform = torch.rand(n, 2, generator=generator, device=x.device, dtype=torch.float64)
    ratio = low + (high - low) * uniform[:, 0]
    crop_len = torch.floor(valid.double() * ratio).long()
    crop_len = torch.minimum(crop_len.clamp(min=max(min_frames, 1)), valid)
    offset = torch.floor(uniform[:, 1] * (valid - crop_len + 1).double()).long()
    offset = torch.minimum(offset, valid - crop_len)

    # Source position of every output frame inside the crop (align_corners=False), clamped like interpolate.
    step = crop_len.double()[:, None] / out_frames
    position = ((torch.arange(out_frames, device=x.device, dtype=torch.float64)[None] + 0.5) * step - 0.5)
    position = position.clamp(min=0.0)
    left = torch.minimum(position.floor().long(), crop_len[:, None] - 1)
    right = torch.minimum(left + 1, crop_len[:, None] - 1)
    fraction = (position - left.double()).clamp(0.0, 1.0)
    if tracker is not None:
        tracker.take_frames(offset[:, None] + torch.where(fraction >= 0.5, right, left))
    weight = fraction.to(x.dtype).view(n, 1, out_frames, 1, 1)
    first = _gather_frames(x, offset[:, None] + left)
    second = _gather_frames(x, offset[:, None] + right)
    return torch.lerp(first, second, weight)


def temporal_flip(x: Tensor, generator: torch.Generator, *, p: float = 0.5,
                  tracker: ViewTracker | None = None) -> Tensor:
    """AimCLR temporal flip: reverse all T frames, per sample with probability p (as the official code,
    zero-padded trailing frames move to the front)."""
    check_batch(x, "temporal_flip")
    selected = sample_selection(x.shape[0], p, generator, x.device)
    if tracker is not None:
        frames = torch.arange(x.shape[2], device=x.device)
        tracker.take_frames(torch.where(selected[:, None], frames.flip(0), frames).expand(x.shape[0], -1))
    return torch.where(selected.view(-1, 1, 1, 1, 1), x.flip(2), x)
