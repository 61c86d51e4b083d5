"""The Motion-Adaptive Transformation Strategy (MATS) of ActCLR (§3.2, eqs. 6-7, `mats`) and of ActCLR+
(§IV-B, eqs. 40-44, `mats_plus`).

Actionlet transformations T_act: AimCLR's eight extreme augmentations, then Skeleton AdaIN (eq. 6).
Non-actionlet transformations T_non, applied on top of T_act: a larger random noise and Skeleton Mix
(Mixup, CutMix or ResizeMix with another sequence of the batch, by body parts).
Combination (eq. 7): X_trans = A ⊙ X_act + (1 − A) ⊙ X_non, with A the actionlet at the input frame rate,
moved with every frame and joint that the view's crop and flips moved (transforms.tracking), so that A lies
on the same frames and joints of X_act as it did on X.

Everything is batched on the input's device and draws from an explicit torch.Generator. AdaIN applies with
probability `adain_p` (0.5, our choice), its gain σ(X^j)/σ(X^i) clipped to [1/2, 2] (`adain_max_ratio`: eq. 6
as printed is unbounded where a joint barely moves); Skeleton AdaIN and Skeleton Mix live in
transforms.mixing, with the choices where the paper is open.

ActCLR+ (`mats_plus`): T_act is AimCLR's eight extreme augmentations (the paper lists those eight, without
AdaIN); T_non adds dropout and rescale, the adversarial transformation (eqs. 40-42: one FGSM step against
the triplet objective through the offline encoder on each of the three matrices of eq. 16, mask M, shear R
and noise N, X_non ← M ⊙ (X_non R) + N, then Gaussian noise; `adversarial_matrices` names which) and the
skeleton mask (eq. 43), in that order, each switchable (Table XI); eq. 44 combines them as eq. 7 does. The
attack is taken on the combination the query would be without it, A ⊙ X_act + (1 − A) ⊙ X_non: the matrices
act on X_non only, so their gradients come from ∇_{X_non} I = (1 − A) ⊙ ∇I, and the actionlet region gets no
adversarial step. T_non's constants are in transforms/masking.py.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

from skelssl.skeleton.layouts import Layout
from skelssl.transforms.masking import ADVERSARIAL_MATRICES, adversarial_step, joint_dropout, rescale, skeleton_mask
from skelssl.transforms.mixing import skeleton_adain, skeleton_mix
from skelssl.transforms.noise import gaussian_noise
from skelssl.transforms.tracking import ViewTracker

__all__ = ["actionlet_combine", "mats", "mats_plus"]

# (the query without the attack, the actionlet in its coordinates) -> ∇_{X_non} I_triplet (eq. 42)
Attack = Callable[[Tensor, Tensor], Tensor]


def actionlet_combine(x_act: Tensor, x_non: Tensor, actionlet: Tensor) -> Tensor:
    """Eq. 7: A ⊙ X_act + (1 − A) ⊙ X_non; actionlet (N, M, T, V) or (N, T, V) at the input frame rate."""
    if actionlet.dim() == 3:
        actionlet = actionlet.unsqueeze(1)
    a = actionlet.permute(0, 2, 3, 1).unsqueeze(1).to(x_act.dtype)  # (N, 1, T, V, M)
    return a * x_act + (1 - a) * x_non


def mats(x: Tensor, actionlet: Tensor, generator: torch.Generator, layout: Layout | str, *,
         extreme: Callable[..., Tensor], tracker: ViewTracker | None = None, adain_p: float = 0.5,
         adain_max_ratio: float | None = 2.0, noise_std: float = 0.05,
         mix_probs: Sequence[float] = (0.25, 0.5, 0.25), mix_parts: Sequence[int] = (2, 3),
         mix_blocks: Sequence[int] = (3, 5), mix_block_frames: int = 4) -> tuple[Tensor, Tensor]:
    """MATS on a view x (N, C, T, V, M) of a batch whose actionlet (N, M, T, V) is at the input frame rate.

    extreme: the eight AimCLR augmentations, called as extreme(x, tracker=...) (the method passes its
    configured pipeline). tracker: where x's frames and joints came from in the batch the actionlet was
    computed on (None: x is that batch); T_act's own crop and flips are added to it, and the actionlet is
    carried into X_act's coordinates before eq. 7, so each region gets its own transformations.
    Returns (X_trans, the actionlet in X_trans's coordinates).
    """
    tracker = tracker if tracker is not None else ViewTracker.for_batch(x)
    x_act = skeleton_adain(extreme(x, tracker=tracker), generator, p=adain_p, max_ratio=adain_max_ratio)  # T_act
    x_non = gaussian_noise(x_act, generator, std=noise_std, p=1.0)  # T_non: larger random noise
    x_non = skeleton_mix(x_non, generator, layout, probs=mix_probs, parts=mix_parts, blocks=mix_blocks,
                         block_frames=mix_block_frames)  # T_non: Skeleton Mix
    registered = tracker.carry(actionlet)
    return actionlet_combine(x_act, x_non, registered), registered  # eq. 7


def mats_plus(x: Tensor, actionlet: Tensor, generator: torch.Generator, layout: Layout | str, *,
              extreme: Callable[..., Tensor], tracker: ViewTracker | None = None, t_act: bool = True,
              t_non: bool = True, dropout_p: float = 0.1, scale: Sequence[float] = (0.8, 1.2),
              attack: Attack | None = None, epsilon: float = 0.03, attack_noise_std: float = 0.03,
              attack_matrices: Sequence[str] = ADVERSARIAL_MATRICES,
              mask: bool = True, mask_padding: Literal["zero", "noise", "sequence"] = "sequence",
              mask_p: float = 0.5, mask_parts: Sequence[int] = (1, 1)) -> tuple[Tensor, Tensor]:
    """ActCLR+'s MATS (eqs. 40-44) on a view x (N, C, T, V, M) whose batch's actionlet (N, M, T, V) is at the
    input frame rate (see `mats` for `extreme` and `tracker`).

    t_act: T_act (the eight extreme augmentations) on; t_non: dropout and rescale on the non-actionlet part;
    attack: the gradient of eq. 42 (None: no adversarial step); attack_matrices: which of eq. 16's mask,
    shear and noise it steps (transforms.masking.adversarial_step); mask: the skeleton mask of eq. 43.
    Returns (X_trans, the actionlet in X_trans's coordinates).
    """
    tracker = tracker if tracker is not None else ViewTracker.for_batch(x)
    x_act = extreme(x, tracker=tracker) if t_act else x  # T_act
    registered = tracker.carry(actionlet)
    if not (t_non or attack is not None or mask):
        return x_act, registered
    x_non = x_act
    if t_non:
        x_non = rescale(joint_dropout(x_non, generator, p=dropout_p), generator, scale=scale)
    if attack is not None:  # eqs. 40-42
        gradient = attack(actionlet_combine(x_act, x_non, registered), registered)
        x_non = adversarial_step(x_non, gradient, generator, epsilon=epsilon, noise_std=attack_noise_std,
                                 matrices=attack_matrices)
    if mask:  # eq. 43
        x_non, _ = skeleton_mask(x_non, generator, layout, padding=mask_padding, p=mask_p, parts=mask_parts)
    return actionlet_combine(x_act, x_non, registered), registered  # eq. 44
