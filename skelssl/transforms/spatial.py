"""Spatial augmentations on skeleton batches (N, C, T, V, M): shear, rotate, spatial flip, axis mask.

All functions draw per-sample parameters in batched calls from an explicit torch.Generator that lives on
x.device, never loop over the batch and never modify x in place. Shear, rotate, flip and axis mask are linear
in the coordinates, so zero-padded frames and persons stay exactly zero.

2D keypoints: shear, rotate and axis mask act on the first `coords` channels (default: all C, which must be
2 or 3); further channels (the confidence of (x, y, score) keypoints) pass unchanged. With two coordinates
each is the 2D counterpart of the 3D augmentation: the same draws, the 3D transform of a skeleton lying in
the z = 0 plane seen along z, i.e. the top-left 2x2 block of the 3x3 matrix (a rotation about x or y
foreshortens the image, one about z turns it); axis mask zeroes x or y.

This module also holds the two small helpers the other transform modules share (input check, per-sample
Bernoulli selection).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from skelssl.skeleton.layouts import Layout, get_layout
from skelssl.transforms.tracking import ViewTracker

__all__ = ["shear", "rotate", "spatial_flip", "axis_mask", "check_batch", "coordinate_axes", "sample_selection"]


def check_batch(x: Tensor, name: str, need_xyz: bool = False) -> None:
    """Raise ValueError unless x is a floating (N, C, T, V, M) batch (C == 3 when need_xyz)."""
    if x.dim() != 5:
        raise ValueError(f"{name}: expected a skeleton batch of shape (N, C, T, V, M), got shape {tuple(x.shape)}")
    if need_xyz and x.shape[1] != 3:
        raise ValueError(f"{name}: needs 3 coordinates (x, y, z) on dim 1, got C={x.shape[1]}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {x.dtype}")


def coordinate_axes(x: Tensor, name: str, coords: int | None) -> int:
    """The number of leading coordinate channels (2 or 3) of a batch; ValueError when it has neither."""
    check_batch(x, name)
    k = x.shape[1] if coords is None else int(coords)
    if k not in (2, 3) or k > x.shape[1]:
        raise ValueError(f"{name}: needs 2 (x, y) or 3 (x, y, z) coordinates on dim 1, got C={x.shape[1]}"
                         + ("" if coords is None else f" with coords={coords}"))
    return k


def sample_selection(n: int, p: float, generator: torch.Generator, device: torch.device) -> Tensor:
    """Bool (n,): each sample independently True with probability p (p=0 never, p=1 always)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p}")
    # Always draw, so the random stream does not depend on p.
    return torch.rand(n, generator=generator, device=device) < p


def _per_sample(mask: Tensor) -> Tensor:
    """(N,) -> (N, 1, 1, 1, 1) to broadcast over a skeleton batch."""
    return mask.view(-1, 1, 1, 1, 1)


def _apply_coordinate_matrix(x: Tensor, matrices: Tensor) -> Tensor:
    """out[n, :k, t, v, m] = matrices[n] @ x[n, :k, t, v, m] for k x k matrices (one batched matmul); the
    channels after the first k are copied."""
    n, c, t, v, m = x.shape
    k = matrices.shape[1]
    moved = torch.bmm(matrices, x[:, :k].reshape(n, k, t * v * m)).view(n, k, t, v, m)
    return moved if k == c else torch.cat([moved, x[:, k:]], dim=1)


def shear(x: Tensor, generator: torch.Generator, *, amplitude: float = 0.5, coords: int | None = None) -> Tensor:
    """SkeletonCLR/AimCLR shear: x' = S x with S = I + off-diagonal entries ~ U(-amplitude, amplitude).

    Each sample gets its own matrix (six independent off-diagonal entries; two in 2D, the top-left block).
    Always applied (no probability), as in the official code. coords: leading coordinate channels (module
    docstring).
    """
    k = coordinate_axes(x, "shear", coords)
    n = x.shape[0]
    off = (torch.rand(n, 3, 3, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * amplitude
    eye = torch.eye(3, device=x.device, dtype=x.dtype)
    matrices = eye + off * (1 - eye)  # the diagonal stays exactly 1
    return _apply_coordinate_matrix(x, matrices[:, :k, :k])


def _axis_rotation(angle: Tensor, axis: int) -> Tensor:
    """(N,) radians -> (N, 3, 3) right-handed rotation about coordinate axis 0/1/2 (counter-clockwise > 0)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = [[one, zero, zero], [zero, cos, -sin], [zero, sin, cos]]
    elif axis == 1:
        rows = [[cos, zero, sin], [zero, one, zero], [-sin, zero, cos]]
    else:
        rows = [[cos, -sin, zero], [sin, cos, zero], [zero, zero, one]]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def rotation_matrices(angles_deg: Tensor) -> Tensor:
    """(N, 3) angles in degrees about x, y, z -> (N, 3, 3) = Rz @ Ry @ Rx (rotate about x first)."""
    rad = angles_deg * (math.pi / 180.0)
    rx, ry, rz = (_axis_rotation(rad[:, i], i) for i in range(3))
    return rz @ ry @ rx


def rotate(x: Tensor, generator: torch.Generator, *, max_angle: float = 30.0,
           minor_angle: float = 1.0, coords: int | None = None) -> Tensor:
    """AimCLR rotate: per sample a main axis (uniform among x, y, z) turned by U(0, max_angle) degrees and
    the other two axes by U(0, minor_angle) degrees; always applied.

    Choices (the paper gives no formula): angles are non-negative, as in the official code; rotations are
    right-handed (positive = counter-clockwise looking down the axis towards the origin) and composed x
    first, then y, then z (x' = Rz Ry Rx x), the order in which the official code applies them. With
    angles of at most 30 degrees the sign convention only mirrors the distribution of views.
    """
    k = coordinate_axes(x, "rotate", coords)
    n = x.shape[0]
    uniform = torch.rand(n, 4, generator=generator, device=x.device, dtype=x.dtype)
    main_axis = torch.randint(0, 3, (n,), generator=generator, device=x.device)
    angles = uniform[:, :3] * minor_angle
    is_main = torch.nn.functional.one_hot(main_axis, 3).to(torch.bool)
    angles = torch.where(is_main, (uniform[:, 3:] * max_angle).expand(n, 3), angles)
    return _apply_coordinate_matrix(x, rotation_matrices(angles)[:, :k, :k])  # 2D: the projected rotation


def spatial_flip(x: Tensor, generator: torch.Generator, layout: Layout | str, *, p: float = 0.5,
                 tracker: ViewTracker | None = None) -> Tensor:
    """AimCLR spatial flip: swap every left joint with its right partner (layout.left_right), per sample
    with probability p. Coordinates are not mirrored (as in the official code): it is a joint relabelling.
    tracker: records the source joint of every joint slot (transforms.tracking)."""
    check_batch(x, "spatial_flip")
    layout = get_layout(layout)
    if x.shape[3] != layout.num_joints:
        raise ValueError(f"spatial_flip: layout '{layout.name}' has {layout.num_joints} joints, "
                         f"the batch has V={x.shape[3]}")
    selected = sample_selection(x.shape[0], p, generator, x.device)
    perm = torch.as_tensor(layout.flip_permutation, device=x.device, dtype=torch.long)
    if tracker is not None:
        joints = torch.arange(x.shape[3], device=x.device)
        tracker.take_joints(torch.where(selected[:, None], perm, joints))
    return torch.where(_per_sample(selected), x.index_select(3, perm), x)


def axis_mask(x: Tensor, generator: torch.Generator, *, p: float = 0.5, coords: int | None = None) -> Tensor:
    """AimCLR axis mask: zero one coordinate axis chosen uniformly among x, y, z (2D: x, y), per sample with
    probability p. Channels after the coordinates (a score) are never masked."""
    k = coordinate_axes(x, "axis_mask", coords)
    n, c = x.shape[:2]
    selected = sample_selection(n, p, generator, x.device)
    axis = torch.randint(0, k, (n,), generator=generator, device=x.device)
    drop = torch.nn.functional.one_hot(axis, c).to(torch.bool) & selected[:, None]  # (N, C)
    return x.masked_fill(drop.view(n, c, 1, 1, 1), 0.0)
