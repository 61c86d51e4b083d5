"""ActCLR+'s non-actionlet transformations T_non (ActCLR+ §IV-B, eqs. 40-43) on skeleton batches (N, C, T, V, M).

- `joint_dropout` and `rescale`: the "dropout, rescale" of T_non.
- `adversarial_step`: one FGSM step (eq. 42) on each of "the three matrices" of the transformation
  x' = M ⊙ (x R) + N (eq. 16: mask, shear, noise), P ← P − ε·sgn(∇_P I_triplet) from M = 1, R = I, N = 0, all
  from the one input gradient (the chain rule gives the three), then Gaussian noise "to strengthen N" (the
  method computes the gradient through its offline encoder).
- `skeleton_mask`: eq. 43, x ⊙ M + d ⊙ (1 − M), whole body parts hidden, padded by zeros, Gaussian noise, or
  another sequence of the batch.

Batched on the input's device, every draw from an explicit torch.Generator. Choices where the paper is open
(also in docs/fidelity_actclr_plus.md):
- dropout hides whole joints of a frame (all coordinates, as a missing joint), each (frame, joint, person)
  with probability 0.1, without the 1/(1 − p) rescaling of activation dropout (it would change the body);
- rescale multiplies a sequence by one factor s ~ U(0.8, 1.2) per sample (isotropic, about the origin);
- the skeleton mask hides k ∈ [1, 1] whole limbs (arms and legs, the paper's "hands or legs") over the whole
  sequence, per sample with probability p; absent (all-zero) persons stay zero. Padding "noise" draws
  N(μ_c, σ_c²) per coordinate c with the batch's mean and std of that coordinate (so the padding stays in
  the data's range, the paper's point against zeros); "sequence" takes the same positions of a partner
  sequence of the batch (transforms.mixing).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor

from skelssl.skeleton.layouts import Layout, get_layout
from skelssl.transforms.mixing import partner_index
from skelssl.transforms.spatial import check_batch, sample_selection

__all__ = ["joint_dropout", "rescale", "adversarial_step", "limb_mask", "skeleton_mask", "PADDINGS",
           "ADVERSARIAL_MATRICES"]

PADDINGS = ("zero", "noise", "sequence")


def joint_dropout(x: Tensor, generator: torch.Generator, *, p: float = 0.1) -> Tensor:
    """Each (frame, joint, person) hidden (all coordinates 0) with probability p."""
    check_batch(x, "joint_dropout")
    n, _, t, v, m = x.shape
    keep = torch.rand(n, 1, t, v, m, generator=generator, device=x.device) >= p
    return x * keep.to(x.dtype)


def rescale(x: Tensor, generator: torch.Generator, *, scale: Sequence[float] = (0.8, 1.2)) -> Tensor:
    """x · s with one s ~ U(scale) per sample."""
    check_batch(x, "rescale")
    low, high = float(scale[0]), float(scale[1])
    s = low + (high - low) * torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
    return x * s.view(-1, 1, 1, 1, 1)


ADVERSARIAL_MATRICES = ("mask", "shear", "noise")


def adversarial_step(x: Tensor, gradient: Tensor, generator: torch.Generator, *, epsilon: float = 0.03,
                     noise_std: float = 0.03, matrices: Sequence[str] = ADVERSARIAL_MATRICES) -> Tensor:
    """Eqs. 40-42 on the three matrices of eq. 16, x' = M ⊙ (x R) + N, from M = 1, R = I, N = 0: one FGSM step
    P ← P − ε·sgn(∇_P I) on each matrix named in `matrices`, all from the one gradient ∇_x I = `gradient`
    (at that point ∇_N I = ∇_x I; ∇_M I = Σ_c x_c ∇_{x_c} I per frame, joint and person;
    ∇_R I = Σ_{t,v,m} x ⊗ ∇_x I per sample, C × C), then N(0, noise_std²) added to every coordinate ("to
    strengthen N").

    M is one factor per (frame, joint, person), as a mask hides positions; R is a shear: only its
    off-diagonal entries are parameters (its diagonal stays 1). Where the gradient is 0, nothing moves but
    the Gaussian noise.
    """
    check_batch(x, "adversarial_step")
    if gradient.shape != x.shape:
        raise ValueError(f"adversarial_step: gradient {tuple(gradient.shape)} and x {tuple(x.shape)} differ")
    unknown = sorted(set(matrices) - set(ADVERSARIAL_MATRICES))
    if unknown:
        raise ValueError(f"adversarial_step: unknown matrices {unknown}; known: {', '.join(ADVERSARIAL_MATRICES)}")
    g = gradient.to(x.dtype)
    out = x
    if "shear" in matrices:  # R = I − ε·sgn(∇_R I) off the diagonal (eq. 42 on R)
        grad_r = torch.einsum("nctvm,ndtvm->ncd", x, g)
        off_diagonal = 1 - torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        r = torch.eye(x.shape[1], dtype=x.dtype, device=x.device) - epsilon * torch.sign(grad_r) * off_diagonal
        out = torch.einsum("nctvm,ncd->ndtvm", out, r)
    if "mask" in matrices:  # M = 1 − ε·sgn(∇_M I) (eq. 42 on M)
        out = out * (1 - epsilon * torch.sign((x * g).sum(dim=1, keepdim=True)))
    if "noise" in matrices:  # N = −ε·sgn(∇_N I) (eq. 42 on N)
        out = out - epsilon * torch.sign(g)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * noise_std
    return out + noise


def limb_mask(n: int, layout: Layout | str, generator: torch.Generator, device: torch.device | str, *,
              parts: Sequence[int] = (1, 1), limbs: Sequence[str] = ("left_arm", "right_arm", "left_leg",
                                                                     "right_leg")) -> Tensor:
    """Bool (n, V): per sample k ∈ parts whole body parts drawn uniformly among `limbs` (True = hidden)."""
    layout = get_layout(layout)
    missing = [name for name in limbs if name not in layout.parts]
    if missing:
        raise ValueError(f"skeleton mask: layout '{layout.name}' has no body part {missing}; "
                         f"its parts: {', '.join(layout.parts)}")
    members = torch.zeros(len(limbs), layout.num_joints, dtype=torch.bool, device=device)
    for i, name in enumerate(limbs):
        members[i, list(layout.parts[name])] = True
    k = torch.randint(int(parts[0]), int(parts[1]) + 1, (n, 1), generator=generator, device=device)
    rank = torch.rand(n, len(limbs), generator=generator, device=device).argsort(dim=1).argsort(dim=1)
    chosen = (rank < k.clamp_max(len(limbs))).to(torch.float32)  # (n, L)
    return (chosen @ members.to(torch.float32)) > 0


def skeleton_mask(x: Tensor, generator: torch.Generator, layout: Layout | str, *,
                  padding: Literal["zero", "noise", "sequence"] = "sequence", p: float = 0.5,
                  parts: Sequence[int] = (1, 1), partner: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Eq. 43: x_mask = x ⊙ M + d ⊙ (1 − M), the hidden limbs padded by d (module docstring).

    Returns (x_mask, M) with M (N, 1, 1, V, 1) float, 0 on the hidden joints of the selected samples.
    partner (N,) overrides the random partner of padding="sequence" (tests).
    """
    check_batch(x, "skeleton_mask")
    if padding not in PADDINGS:
        raise ValueError(f"skeleton mask padding must be one of {', '.join(PADDINGS)}, got '{padding}'")
    n = x.shape[0]
    if partner is None:
        partner = partner_index(n, generator, x.device)  # drawn for every padding: one random stream
    hidden = limb_mask(n, layout, generator, x.device, parts=parts)
    hidden = hidden & sample_selection(n, p, generator, x.device)[:, None]
    keep = (~hidden).to(x.dtype).view(n, 1, 1, -1, 1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if padding == "zero":
        fill = torch.zeros_like(x)
    elif padding == "noise":
        mean = x.mean(dim=(0, 2, 3, 4), keepdim=True)
        std = x.std(dim=(0, 2, 3, 4), keepdim=True, unbiased=False)
        fill = mean + std * noise
    else:
        fill = x[partner]
    present = x.abs().amax(dim=(1, 2, 3), keepdim=True) > 0  # (N, 1, 1, 1, M): absent persons stay zero
    return x * keep + fill * (1 - keep) * present.to(x.dtype), keep
