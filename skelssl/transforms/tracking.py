"""Where each frame and joint slot of an augmented view came from: keeps per-position maps in register.

ActCLR computes its actionlet A on the original sequence X, then combines two transformations of an augmented
view with it (MATS, eq. 7) and pools the key view's features with it (SAFP, eq. 8). The temporal crop,
crop-resize, temporal flip and spatial flip move frames and joints: A must move with them. Each of those
augmentations, given a `ViewTracker`, records the source frame of every output frame and the source joint of
every output joint slot; `carry` then moves any per-position map (N, M, T, V) into the view's coordinates.
Augmentations that keep positions (shear, rotate, noise, blur, axis mask, AdaIN) leave the tracker alone.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ViewTracker", "downsample_frames"]


class ViewTracker:
    """Source frame (N, T_view) and source joint (N, V) of each position of a view of an (N, C, T, V, M) batch.

    Starts as the identity; each position-moving augmentation composes its own map onto it.
    """

    def __init__(self, n: int, num_frames: int, num_joints: int, device: torch.device | str = "cpu") -> None:
        self.num_source_frames = num_frames
        self.frames = torch.arange(num_frames, device=device).expand(n, num_frames)
        self.joints = torch.arange(num_joints, device=device).expand(n, num_joints)

    @classmethod
    def for_batch(cls, x: Tensor) -> "ViewTracker":
        return cls(x.shape[0], x.shape[2], x.shape[3], x.device)

    def take_frames(self, index: Tensor) -> None:
        """The view's frame t is now its previous frame index[n, t] (index (N, T_out))."""
        self.frames = self.frames.gather(1, index)

    def take_joints(self, index: Tensor) -> None:
        """The view's joint slot v now holds its previous joint index[n, v] (index (N, V))."""
        self.joints = self.joints.gather(1, index)

    def carry(self, values: Tensor) -> Tensor:
        """A per-position map of the source batch, (N, M, T, V) or (N, T, V), in the view's coordinates."""
        squeeze = values.dim() == 3
        if squeeze:
            values = values.unsqueeze(1)
        if values.shape[2] != self.num_source_frames:
            raise ValueError(f"ViewTracker.carry: the map has {values.shape[2]} frames, the source batch "
                             f"{self.num_source_frames}")
        n, m, _, v = values.shape
        frames = self.frames.to(values.device)
        out = values.gather(2, frames[:, None, :, None].expand(n, m, frames.shape[1], v))
        out = out.gather(3, self.joints.to(values.device)[:, None, None, :].expand(n, m, out.shape[2], v))
        return out.squeeze(1) if squeeze else out


def downsample_frames(values: Tensor, num_frames: int) -> Tensor:
    """(N, M, T, V) -> (N, M, T', V): the mean over the input frames each feature frame covers.

    The inverse of `actionlet.upsample_to_frames` (input frame t belongs to feature frame floor(t·T'/T)):
    downsampling an upsampled map gives it back exactly.
    """
    t = values.shape[2]
    owner = torch.div(torch.arange(t, device=values.device) * num_frames, t, rounding_mode="floor")
    total = values.new_zeros(*values.shape[:2], num_frames, values.shape[3]).index_add_(2, owner, values)
    count = torch.bincount(owner, minlength=num_frames).clamp_min(1).to(values.dtype)
    return total / count.view(1, 1, -1, 1)
