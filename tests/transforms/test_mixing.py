"""Mixing augmentations (transforms.mixing): Skeleton AdaIN (ActCLR eq. 6) and Skeleton Mix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skelssl.skeleton.layouts import NTU25
from skelssl.transforms.mixing import part_segment_mask, skeleton_adain, skeleton_mix


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _adain_pair() -> torch.Tensor:
    """Two sequences (C 2, T 2, V 2, M 2; the second person absent) whose statistics are easy by hand.

    coordinate 0: X^0 joint 0 static at 1 (σ 0), joint 1 at 0, 2 (σ 1); X^1 joint 0 at 0, 4 (σ 2), joint 1
    static at 1 (σ 0). coordinate 1: X^0 joint 0 at 0, 2 (σ 1), joint 1 static at 1; X^1 joint 0 at 0, 3
    (σ 1.5), joint 1 static at 0.
    """
    x = torch.zeros(2, 2, 2, 2, 2)
    x[0, 0, :, 0, 0] = torch.tensor([1.0, 1.0])
    x[0, 0, :, 1, 0] = torch.tensor([0.0, 2.0])
    x[1, 0, :, 0, 0] = torch.tensor([0.0, 4.0])
    x[1, 0, :, 1, 0] = torch.tensor([1.0, 1.0])
    x[0, 1, :, 0, 0] = torch.tensor([0.0, 2.0])
    x[0, 1, :, 1, 0] = torch.tensor([1.0, 1.0])
    x[1, 1, :, 0, 0] = torch.tensor([0.0, 3.0])
    return x


def test_adain_hand_computed_with_the_gain_bounded():
    """out = r (x − μ_i) + μ_j with r = σ_j / σ_i clipped to [1/2, 2] (μ: mean over joints per frame; σ: std
    over frames per joint). Sample 0, coordinate 0: μ_0 = 0.5, 1.5; μ_1 = 0.5, 2.5; joint 0: r = 2/0 -> 2:
    2·(1 − 0.5) + 0.5 = 1.5, 2·(1 − 1.5) + 2.5 = 1.5; joint 1: r = 0/1 -> 1/2: 0.5·(0 − 0.5) + 0.5 = 0.25,
    0.5·(2 − 1.5) + 2.5 = 2.75. Coordinate 1: μ_0 = 0.5, 1.5, μ_1 = 0, 1.5; joint 0: r = 1.5 (inside the bound):
    1.5·(−0.5) + 0 = −0.75, 1.5·0.5 + 1.5 = 2.25; joint 1: r = 0 -> 1/2: 0.25, 1.25. Sample 1 (partner 0),
    coordinate 0: joint 0 r = 0/2 -> 1/2: 0.5·(0 − 0.5) + 0.5 = 0.25, 0.5·(4 − 2.5) + 1.5 = 2.25; joint 1
    r = 1/0 -> 2: 2·(1 − 0.5) + 0.5 = 1.5, 2·(1 − 2.5) + 1.5 = −1.5. Coordinate 1: joint 0 r = 1/1.5:
    0 + 0.5 = 0.5, (1/1.5)·1.5 + 1.5 = 2.5; joint 1 r = 0 -> 1/2: 0.5, 0.5·(0 − 1.5) + 1.5 = 0.75."""
    x = _adain_pair()
    out = skeleton_adain(x, gen(), p=1.0, partner=torch.tensor([1, 0]))
    expected = torch.zeros_like(x)
    expected[0, 0, :, 0, 0] = torch.tensor([1.5, 1.5])
    expected[0, 0, :, 1, 0] = torch.tensor([0.25, 2.75])
    expected[0, 1, :, 0, 0] = torch.tensor([-0.75, 2.25])
    expected[0, 1, :, 1, 0] = torch.tensor([0.25, 1.25])
    expected[1, 0, :, 0, 0] = torch.tensor([0.25, 2.25])
    expected[1, 0, :, 1, 0] = torch.tensor([1.5, -1.5])
    expected[1, 1, :, 0, 0] = torch.tensor([0.5, 2.5])
    expected[1, 1, :, 1, 0] = torch.tensor([0.5, 0.75])
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)  # the absent persons stay zero
    # eq. 6 as printed divides the static joint's offset 0.5 by σ = 0 (+ eps 1e-5): 0.5 · 2 / 1e-5 = 1e5, far
    # over 3× the input's maximum 4; the bound keeps every coordinate within 2·(4 + 4) of the partner's centre
    unbounded = skeleton_adain(x, gen(), p=1.0, max_ratio=None, partner=torch.tensor([1, 0]))
    assert unbounded[0, 0, 0, 0, 0].item() == pytest.approx(0.5 * 2 / 1e-5 + 0.5, rel=1e-3)
    assert out.abs().max() <= 3 * x.abs().max()
    assert torch.equal(skeleton_adain(x, gen(), p=0.0), x)


def test_adain_gain_bound_holds_on_sequences_with_static_joints():
    """|out − μ_j| ≤ max_ratio · |x − μ_i| everywhere (μ recomputed in numpy), on data where a third of the
    joints barely move (σ ~ 1e-4) and the rest swing (σ ~ 1): the unbounded formula goes past 3× the input."""
    g = gen(11)
    pose = torch.randn(6, 3, 1, 25, 1, generator=g)
    swing = torch.randn(6, 3, 30, 25, 1, generator=g)
    scale = torch.ones(1, 1, 1, 25, 1)
    scale[..., ::3, :] = 1e-4
    scale = torch.where(torch.arange(6).view(-1, 1, 1, 1, 1) % 2 == 0, scale, torch.ones_like(scale))
    x = pose + swing * scale
    partner = torch.roll(torch.arange(6), 1)
    xn = x.double().numpy()
    mu = xn.mean(axis=3, keepdims=True)
    for ratio in (1.5, 2.0):
        out = skeleton_adain(x, gen(), p=1.0, max_ratio=ratio, partner=partner).double().numpy()
        assert (np.abs(out - mu[partner.numpy()]) <= ratio * np.abs(xn - mu) + 1e-5).all()
    unbounded = skeleton_adain(x, gen(), p=1.0, max_ratio=None, partner=partner)
    assert unbounded.abs().max() > 3 * x.abs().max()


def test_mix_masks_cover_whole_body_parts():
    t = 50
    region = part_segment_mask(64, t, NTU25, gen(5), "cpu", parts=(2, 3), blocks=(3, 5))
    part_of = NTU25.part_index()
    for sample in region:
        joints = sample.any(dim=0).numpy()
        parts = set(part_of[joints])
        assert 2 <= len(parts) <= 3
        assert all(joints[part_of == p].all() for p in parts)  # whole parts only
        frames = torch.nonzero(sample.any(dim=1)).flatten()
        first, last = int(frames[0]), int(frames[-1])
        assert first % 4 == 0 and len(frames) == last - first + 1  # contiguous, on a block boundary
        assert len(frames) in (12, 16, 20) or last == t - 1
        assert bool(sample[first:last + 1][:, joints].all())


def test_skeleton_mix_modes():
    x = torch.randn(4, 3, 16, 25, 1, generator=gen(6))
    partner = torch.tensor([1, 2, 3, 0])
    cut = skeleton_mix(x, gen(7), NTU25, probs=(0.0, 1.0, 0.0), partner=partner)
    region = part_segment_mask(4, 16, NTU25, gen(7), "cpu")  # same draws as inside skeleton_mix
    r = region[:, None, :, :, None].expand_as(x)
    assert torch.equal(cut[r], x[partner][r]) and torch.equal(cut[~r], x[~r])
    mix = skeleton_mix(x, gen(7), NTU25, probs=(1.0, 0.0, 0.0), partner=partner)
    d = x[partner] - x  # mixup: mix = x + λ d with one λ per sample (least-squares estimate)
    lam = ((mix - x) * d).flatten(1).sum(1) / d.pow(2).flatten(1).sum(1)
    assert torch.allclose(mix, x + lam.view(-1, 1, 1, 1, 1) * d, atol=1e-5)
    assert bool(((lam > 0) & (lam < 1)).all())
    rm = skeleton_mix(x, gen(7), NTU25, probs=(0.0, 0.0, 1.0), partner=partner)
    assert torch.equal(rm[~r], x[~r])
    frames = torch.nonzero(region[0].any(dim=1)).flatten()
    first, length = int(frames[0]), len(frames)
    joint = int(torch.nonzero(region[0, first]).flatten()[0])
    src = int((0.5 * 16) // length)
    assert torch.equal(rm[0, :, first, joint], x[1, :, src, joint])
