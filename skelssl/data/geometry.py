"""Geometry of skeleton sequences shared by the preparers and the normaliser (a leaf of skelssl.data: numpy only):
linear resampling along time, the rotation between two directions."""

from __future__ import annotations

import numpy as np

__all__ = ["resample_linear", "rotation_between"]


def resample_linear(seq: np.ndarray, length: int) -> np.ndarray:
    """Resample axis 0 of `seq` (L, ...) to `length` frames by linear interpolation.

    Sample positions use half-frame alignment (position (i + 0.5) * L / length - 0.5, clamped), the
    convention of the image resize the official AimCLR-family code applies to (T, V, C) arrays.
    """
    src_len = seq.shape[0]
    if src_len == length:
        return seq.copy()
    pos = np.clip((np.arange(length) + 0.5) * src_len / length - 0.5, 0, src_len - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, src_len - 1)
    w = (pos - lo).reshape((-1,) + (1,) * (seq.ndim - 1)).astype(seq.dtype)
    return seq[lo] * (1 - w) + seq[hi] * w


def rotation_between(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 rotation taking the direction of `src` onto the direction of `dst` (Rodrigues' formula)."""
    a = src / (np.linalg.norm(src) + 1e-12)
    b = dst / (np.linalg.norm(dst) + 1e-12)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-8:
        if c > 0:
            return np.eye(3)
        # opposite directions: half turn about any axis orthogonal to a
        ortho = np.cross(a, [1.0, 0, 0]) if abs(a[0]) < 0.9 else np.cross(a, [0, 1.0, 0])
        ortho /= np.linalg.norm(ortho)
        return 2 * np.outer(ortho, ortho) - np.eye(3)
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx
