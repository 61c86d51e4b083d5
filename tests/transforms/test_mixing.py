"""Mixing augmentations (transforms.mixing): Skeleton AdaIN (ActCLR eq. 6) and Skeleton Mix."""

from __future__ import annotations

import numpy as np
import torch

from skelssl.skeleton.layouts import NTU25
from skelssl.transforms.mixing import part_segment_mask, skeleton_adain, skeleton_mix


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_adain_swaps_statistics_like_eq6():
    x = torch.randn(2, 3, 5, 4, 2, generator=gen(3))
    x[1, :, :, :, 1] = 0  # an absent person
    out = skeleton_adain(x, gen(), p=1.0, eps=0.0, partner=torch.tensor([1, 0]))
    xn = x.numpy().astype(np.float64)
    mu = xn.mean(axis=3, keepdims=True)
    sd = xn.std(axis=2, keepdims=True)
    expected0 = sd[1] * (xn[0] - mu[0]) / sd[0] + mu[1]
    assert np.allclose(out[0].numpy(), expected0, atol=1e-5)
    assert out[1, :, :, :, 1].abs().sum() == 0
    # a standardised sequence (mean 0 over joints, std 1 over time) takes exactly the partner's statistics
    w = torch.randn(1, 3, 6, 2, 1, generator=gen(4))
    w = (w - w.mean(dim=2, keepdim=True)) / w.std(dim=2, keepdim=True, unbiased=False)
    z = torch.cat([w, -w], dim=3)  # joints 2, 3 mirror 0, 1: mean over joints 0, std over time 1
    y = torch.randn(1, 3, 6, 4, 1, generator=gen(5)) * 3 + 1
    out = skeleton_adain(torch.cat([z, y]), gen(), p=1.0, partner=torch.tensor([1, 0]))[:1]
    residual = out - y.mean(dim=3, keepdim=True)  # remove the partner's spatial mean ...
    assert torch.allclose(residual.std(dim=2, unbiased=False), y.std(dim=2, unbiased=False), atol=1e-4)  # its σ
    assert torch.equal(skeleton_adain(x, gen(), p=0.0), x)


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
