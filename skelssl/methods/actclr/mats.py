"""ActCLR's Motion-Adaptive Transformation Strategy (MATS, ActCLR §3.2, eqs. 6-7).

Actionlet transformations T_act: AimCLR's eight extreme augmentations, then Skeleton AdaIN (eq. 6).
Non-actionlet transformations T_non, applied on top of T_act: a larger random noise and Skeleton Mix
(Mixup, CutMix or ResizeMix with another sequence of the batch, by body parts).
Combination (eq. 7): X_trans = A ⊙ X_act + (1 − A) ⊙ X_non, with A the actionlet at the input frame rate,
moved with every frame and joint that the view's crop and flips moved (transforms.tracking), so that A lies
on the same frames and joints of X_act as it did on X.

Everything is batched on the input's device and draws from an explicit torch.Generator. AdaIN applies with
probability `adain_p` (0.5, our choice); Skeleton AdaIN and Skeleton Mix live in transforms.mixing, with the
choices where the paper is open.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from skelssl.skeleton.layouts import Layout
from skelssl.transforms.mixing import skeleton_adain, skeleton_mix
from skelssl.transforms.noise import gaussian_noise
from skelssl.transforms.tracking import ViewTracker

__all__ = ["actionlet_combine", "mats"]


def actionlet_combine(x_act: Tensor, x_non: Tensor, actionlet: Tensor) -> Tensor:
    """Eq. 7: A ⊙ X_act + (1 − A) ⊙ X_non; actionlet (N, M, T, V) or (N, T, V) at the input frame rate."""
    if actionlet.dim() == 3:
        actionlet = actionlet.unsqueeze(1)
    a = actionlet.permute(0, 2, 3, 1).unsqueeze(1).to(x_act.dtype)  # (N, 1, T, V, M)
    return a * x_act + (1 - a) * x_non


def mats(x: Tensor, actionlet: Tensor, generator: torch.Generator, layout: Layout | str, *,
         extreme: Callable[..., Tensor], tracker: ViewTracker | None = None, adain_p: float = 0.5,
         noise_std: float = 0.05, mix_probs: Sequence[float] = (0.25, 0.5, 0.25), mix_parts: Sequence[int] = (2, 3),
         mix_blocks: Sequence[int] = (3, 5), mix_block_frames: int = 4) -> tuple[Tensor, Tensor]:
    """MATS on a view x (N, C, T, V, M) of a batch whose actionlet (N, M, T, V) is at the input frame rate.

    extreme: the eight AimCLR augmentations, called as extreme(x, tracker=...) (the method passes its
    configured pipeline). tracker: where x's frames and joints came from in the batch the actionlet was
    computed on (None: x is that batch); T_act's own crop and flips are added to it, and the actionlet is
    carried into X_act's coordinates before eq. 7, so each region gets its own transformations.
    Returns (X_trans, the actionlet in X_trans's coordinates).
    """
    tracker = tracker if tracker is not None else ViewTracker.for_batch(x)
    x_act = skeleton_adain(extreme(x, tracker=tracker), generator, p=adain_p)  # T_act
    x_non = gaussian_noise(x_act, generator, std=noise_std, p=1.0)  # T_non: larger random noise
    x_non = skeleton_mix(x_non, generator, layout, probs=mix_probs, parts=mix_parts, blocks=mix_blocks,
                         block_frames=mix_block_frames)  # T_non: Skeleton Mix
    registered = tracker.carry(actionlet)
    return actionlet_combine(x_act, x_non, registered), registered  # eq. 7
