"""ActCLR's MATS (eq. 7) on a hand-built case: T_act alone on the actionlet, T_act then T_non (the larger noise
and Skeleton Mix) everywhere else. Replaces the loss-falls test as MATS's evidence."""

from __future__ import annotations

import torch

from skelssl.methods.actclr.mats import mats
from skelssl.skeleton.layouts import NTU25

LIMBS = sorted({j for name in ("left_arm", "right_arm", "left_leg", "right_leg") for j in NTU25.parts[name]})


def test_mats_transforms_each_region_with_its_own_transformations():
    """T_act is a marker (+100); the actionlet is the torso and head. Sample i sits at 10·i (partners are
    told apart by their level). By hand: actionlet joints = x + 100 exactly; every limb cell = its own
    x + 100 + N(0, 0.05²) or, where CutMix put the partner, the partner's x + 100 + noise, and some limb
    cells are the partner's."""
    n, t = 6, 20
    g = torch.Generator().manual_seed(0)
    x = 10.0 * torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1) + 0.01 * torch.rand(n, 3, t, 25, 1, generator=g)
    actionlet = torch.ones(n, 1, t, 25)
    actionlet[..., LIMBS] = 0.0
    x_trans, _ = mats(x, actionlet, torch.Generator().manual_seed(1), NTU25, extreme=lambda v, tracker=None: v + 100.0,
                      adain_p=0.0, noise_std=0.05, mix_probs=(0.0, 1.0, 0.0))
    torso = [j for j in range(25) if j not in LIMBS]
    torch.testing.assert_close(x_trans[..., torso, :], x[..., torso, :] + 100.0)
    limbs = x_trans[..., LIMBS, :] - 100.0  # (N, C, T, L, 1)
    level = torch.round(limbs / 10.0)  # which sample each cell came from
    own = level == torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1)
    assert 0.02 < (~own).float().mean() < 0.8  # CutMix brought partners' body parts in, not everywhere
    residual = (limbs - x[..., LIMBS, :])[own]
    assert abs(residual.std().item() - 0.05) < 0.005 and abs(residual.mean().item()) < 0.005  # the larger noise
