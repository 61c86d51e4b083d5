"""Skeleton input streams (CrosSCLR/AimCLR 3-stream): joint, motion, bone on (N, C, T, V, M)."""

from __future__ import annotations

import torch
from torch import Tensor

from skelssl.skeleton.layouts import Layout, get_layout

__all__ = ["STREAMS", "to_stream", "motion_stream", "bone_stream"]

STREAMS = ("joint", "motion", "bone")


def motion_stream(x: Tensor) -> Tensor:
    """Frame differences x[:, :, t+1] - x[:, :, t]; the last frame is zero (as CrosSCLR/AimCLR)."""
    motion = torch.zeros_like(x)
    motion[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    return motion


def bone_stream(x: Tensor, layout: Layout | str) -> Tensor:
    """Bone vectors x[..., j, :] - x[..., parent(j), :] from layout.bone_pairs; the centre's bone is zero."""
    layout = get_layout(layout)
    if x.shape[3] != layout.num_joints:
        raise ValueError(f"bone stream: layout '{layout.name}' has {layout.num_joints} joints, "
                         f"the batch has V={x.shape[3]}")
    parents = torch.tensor([parent for _, parent in layout.bone_pairs], device=x.device, dtype=torch.long)
    return x - x.index_select(3, parents)


def to_stream(x: Tensor, stream: str, layout: Layout | str | None = None) -> Tensor:
    """The `stream` view of a joint-coordinate batch: 'joint' (a copy), 'motion' or 'bone' (needs layout)."""
    if x.dim() != 5:
        raise ValueError(f"to_stream: expected (N, C, T, V, M), got shape {tuple(x.shape)}")
    if stream == "joint":
        return x.clone()
    if stream == "motion":
        return motion_stream(x)
    if stream == "bone":
        if layout is None:
            raise ValueError("to_stream: the 'bone' stream needs a skeleton layout")
        return bone_stream(x, layout)
    raise ValueError(f"unknown stream '{stream}'; valid streams: {', '.join(STREAMS)}")
