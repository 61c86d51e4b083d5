"""Tests for skelssl.transforms: batched augmentations, pipelines and skeleton streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skelssl.errors import UserError
from skelssl.skeleton.layouts import NTU25, Layout
from skelssl.transforms import (
    AUGMENTATIONS,
    STREAMS,
    AugmentConfig,
    apply_named,
    axis_mask,
    crop_resize,
    extreme_augment,
    gaussian_blur,
    gaussian_noise,
    normal_augment,
    rotate,
    rotation_matrices,
    shear,
    spatial_flip,
    temporal_crop,
    temporal_flip,
    to_stream,
)

N, C, T, V, M = 6, 3, 20, 25, 2


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(seed: int = 0, n: int = N, t: int = T, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(n, C, t, V, M, generator=gen(1000 + seed), dtype=dtype)


# Every augmentation with settings that always transform (p = 1), as fn(x, g).
ALWAYS = {
    "shear": lambda x, g: shear(x, g),
    "rotate": lambda x, g: rotate(x, g),
    "spatial_flip": lambda x, g: spatial_flip(x, g, NTU25, p=1.0),
    "axis_mask": lambda x, g: axis_mask(x, g, p=1.0),
    "temporal_crop": lambda x, g: temporal_crop(x, g, padding_ratio=3),
    "crop_resize": lambda x, g: crop_resize(x, g, scale=(0.3, 0.9), out_frames=16, min_frames=1),
    "temporal_flip": lambda x, g: temporal_flip(x, g, p=1.0),
    "gaussian_noise": lambda x, g: gaussian_noise(x, g, p=1.0),
    "gaussian_blur": lambda x, g: gaussian_blur(x, g, p=1.0),
    "normal": lambda x, g: normal_augment(x, g),
    "extreme": lambda x, g: extreme_augment(x, g, NTU25),
}
# Flips are deterministic at p = 1; their randomness is which samples are flipped.
SOMETIMES = {
    "spatial_flip": lambda x, g: spatial_flip(x, g, NTU25, p=0.5),
    "temporal_flip": lambda x, g: temporal_flip(x, g, p=0.5),
}
# Ops whose per-sample randomness shows on identical samples (flips/axis mask have too few outcomes).
CONTINUOUS = ["shear", "rotate", "temporal_crop", "crop_resize", "gaussian_noise", "gaussian_blur",
              "normal", "extreme"]


# ---------------------------------------------------------------- generic properties


@pytest.mark.parametrize("name", list(ALWAYS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_and_input_untouched(name, dtype):
    x = batch(dtype=dtype)
    before = x.clone()
    out = ALWAYS[name](x, gen())
    expected_t = 16 if name == "crop_resize" else T
    assert out.shape == (N, C, expected_t, V, M)
    assert out.dtype == dtype
    assert torch.equal(x, before), "the input must not be modified in place"
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(ALWAYS))
def test_determinism(name):
    x = batch()
    fn = SOMETIMES.get(name, ALWAYS[name])
    a = fn(x, gen(7))
    b = fn(x, gen(7))
    assert torch.equal(a, b)
    outs = [fn(x, gen(seed)) for seed in range(8, 12)]
    assert any(not torch.equal(a, o) for o in outs), "different seeds should give different outputs"


@pytest.mark.parametrize("name", CONTINUOUS)
def test_samples_get_independent_parameters(name):
    one = batch(n=1)
    x = one.expand(8, -1, -1, -1, -1).contiguous()
    out = ALWAYS[name](x, gen(3))
    distinct = {tuple(out[i].flatten()[:2000].tolist()) for i in range(8)}
    assert len(distinct) >= 4, f"{name}: identical samples should get different random parameters"


# ---------------------------------------------------------------- shear


def fit_matrix(x: torch.Tensor, out: torch.Tensor, i: int) -> torch.Tensor:
    """Least-squares 3x3 A with out[i] = A x[i] over all frames/joints/persons (independent check)."""
    src = x[i].reshape(3, -1).double().T
    dst = out[i].reshape(3, -1).double().T
    return torch.linalg.lstsq(src, dst).solution.T


def test_shear_zero_amplitude_is_identity():
    x = batch()
    assert torch.allclose(shear(x, gen(), amplitude=0.0), x)


def test_shear_matrix_structure():
    x = batch()
    out = shear(x, gen(), amplitude=0.3)
    for i in range(N):
        a = fit_matrix(x, out, i)
        assert torch.allclose(torch.diagonal(a), torch.ones(3, dtype=a.dtype), atol=1e-4)
        off = a[~torch.eye(3, dtype=torch.bool)]
        assert (off.abs() <= 0.3 + 1e-4).all() and off.abs().max() > 0.01


def test_linear_ops_keep_zero_person_zero():
    x = batch()
    x[:, :, :, :, 1] = 0
    for name in ["shear", "rotate", "spatial_flip", "axis_mask", "temporal_crop", "temporal_flip",
                 "gaussian_blur", "normal"]:
        out = ALWAYS[name](x, gen())
        assert (out[..., 1] == 0).all(), name
    out = extreme_augment(x, gen(), NTU25, noise_p=0.0)
    assert (out[..., 1] == 0).all()


# ---------------------------------------------------------------- rotate


def test_rotation_matrix_convention():
    # 90 degrees about z maps x to y (right-handed); about x maps y to z.
    rz = rotation_matrices(torch.tensor([[0.0, 0.0, 90.0]]))[0]
    assert torch.allclose(rz @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    rx = rotation_matrices(torch.tensor([[90.0, 0.0, 0.0]]))[0]
    assert torch.allclose(rx @ torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    # Composition order: x first, then z.
    r = rotation_matrices(torch.tensor([[90.0, 0.0, 90.0]]))[0]
    assert torch.allclose(r, rz @ rx, atol=1e-6)


def test_rotate_keeps_norms_and_bone_lengths():
    x = batch(dtype=torch.float64)
    out = rotate(x, gen(), max_angle=30.0, minor_angle=1.0)
    assert torch.allclose(out.norm(dim=1), x.norm(dim=1), atol=1e-10)
    parents = [p for _, p in NTU25.bone_pairs]
    bones_in = (x - x[:, :, :, parents]).norm(dim=1)
    bones_out = (out - out[:, :, :, parents]).norm(dim=1)
    assert torch.allclose(bones_in, bones_out, atol=1e-10)


def test_rotate_angle_ranges():
    x = batch(n=64, dtype=torch.float64)
    out = rotate(x, gen(5), max_angle=30.0, minor_angle=1.0)
    angles = []
    for i in range(64):
        r = fit_matrix(x, out, i)
        assert torch.allclose(r @ r.T, torch.eye(3, dtype=r.dtype), atol=1e-8)
        assert abs(torch.linalg.det(r).item() - 1.0) < 1e-8
        angles.append(math.degrees(math.acos(max(-1.0, min(1.0, (torch.trace(r).item() - 1) / 2)))))
    angles = np.array(angles)
    # Total angle <= main + two minors (+ slack); a U(0, 30) main angle spreads widely.
    assert angles.max() <= 30.0 + 2.0 + 1e-6
    assert angles.max() > 20.0 and angles.min() < 10.0


# ---------------------------------------------------------------- spatial flip and axis mask


def test_spatial_flip_moves_left_to_right_and_is_an_involution():
    x = batch()
    once = spatial_flip(x, gen(), NTU25, p=1.0)
    left_shoulder, right_shoulder = 4, 8
    assert torch.equal(once[:, :, :, right_shoulder], x[:, :, :, left_shoulder])
    assert torch.equal(once[:, :, :, left_shoulder], x[:, :, :, right_shoulder])
    assert torch.equal(once[:, :, :, 0], x[:, :, :, 0])  # the spine is not a left/right joint
    assert torch.equal(spatial_flip(once, gen(9), NTU25, p=1.0), x)


def test_axis_mask_zeroes_exactly_one_axis():
    x = batch(n=30)
    out = axis_mask(x, gen(), p=1.0)
    chosen = set()
    for i in range(30):
        zero_axes = [c for c in range(3) if (out[i, c] == 0).all()]
        assert len(zero_axes) == 1
        kept = [c for c in range(3) if c != zero_axes[0]]
        assert torch.equal(out[i, kept], x[i, kept])
        chosen.add(zero_axes[0])
    assert chosen == {0, 1, 2}


@pytest.mark.parametrize("fn", [
    lambda x, g, p: spatial_flip(x, g, NTU25, p=p),
    lambda x, g, p: axis_mask(x, g, p=p),
    lambda x, g, p: temporal_flip(x, g, p=p),
    lambda x, g, p: gaussian_noise(x, g, p=p),
    lambda x, g, p: gaussian_blur(x, g, p=p),
])
def test_probability_zero_and_one(fn):
    x = batch(n=40)
    assert torch.equal(fn(x, gen(), 0.0), x)
    out = fn(x, gen(), 1.0)
    assert all(not torch.equal(out[i], x[i]) for i in range(40))
    half = fn(x, gen(), 0.5)
    changed = sum(not torch.equal(half[i], x[i]) for i in range(40))
    assert 5 <= changed <= 35


# ---------------------------------------------------------------- temporal


def mirror_padded(sample: torch.Tensor, pad: int) -> torch.Tensor:
    """Hand-built reference: (C, T, V, M) -> (C, T + 2 pad, V, M) mirrored at both ends."""
    head = sample[:, :pad].flip(1)
    tail = sample[:, -pad:].flip(1)
    return torch.cat([head, sample, tail], dim=1)


def test_temporal_crop_is_a_mirrored_window():
    t, ratio = 18, 6
    pad = t // ratio
    x = batch(n=40, t=t)
    out = temporal_crop(x, gen(), padding_ratio=ratio)
    assert out.shape == x.shape
    starts = set()
    for i in range(40):
        padded = mirror_padded(x[i], pad)
        matches = [s for s in range(2 * pad + 1) if torch.equal(out[i], padded[:, s:s + t])]
        assert len(matches) == 1, f"sample {i} is not a window of the mirror-padded sequence"
        starts.add(matches[0])
    assert starts == set(range(2 * pad + 1)), "every start in [0, 2 pad] should occur"


def test_temporal_crop_frame_ids():
    # Frame ids make the expected window explicit: T=12, pad=2 -> padded ids [1,0,0..11,11,10].
    x = torch.arange(12.0).view(1, 1, 12, 1, 1).expand(30, 3, 12, 1, 1).contiguous()
    out = temporal_crop(x, gen(), padding_ratio=6)
    padded_ids = [1, 0] + list(range(12)) + [11, 10]
    windows = {tuple(padded_ids[s:s + 12]) for s in range(5)}
    for i in range(30):
        assert tuple(out[i, 0, :, 0, 0].long().tolist()) in windows


def test_crop_resize_full_crop_matches_interpolate():
    x = batch()
    out = crop_resize(x, gen(), scale=(1.0, 1.0), out_frames=32, min_frames=1)
    series = x.permute(0, 1, 3, 4, 2).reshape(1, -1, T)
    reference = F.interpolate(series, size=32, mode="linear", align_corners=False)
    reference = reference.view(N, C, V, M, 32).permute(0, 1, 4, 2, 3)
    assert torch.allclose(out, reference, atol=1e-5)


def test_crop_resize_constant_stays_constant_and_respects_lengths():
    x = torch.full((8, C, T, V, M), 2.5)
    lengths = torch.tensor([20, 15, 10, 5, 3, 1, 20, 12])
    for i, length in enumerate(lengths.tolist()):
        x[i, :, length:] = 1e6  # invalid frames: must never be sampled
    out = crop_resize(x, gen(), lengths, scale=(0.1, 1.0), out_frames=24, min_frames=1)
    assert out.shape == (8, C, 24, V, M)
    assert torch.equal(out, torch.full_like(out, 2.5))


def test_crop_resize_ramp_window_and_min_frames():
    ramp = torch.arange(40.0).view(1, 1, 40, 1, 1).expand(16, 3, 40, 1, 1).contiguous()
    out = crop_resize(ramp, gen(), scale=(0.25, 0.5), out_frames=10, min_frames=1)
    spans = out[:, 0, -1, 0, 0] - out[:, 0, 0, 0, 0]
    assert (out[:, 0, 1:] >= out[:, 0, :-1]).all()  # a window of a ramp stays increasing
    assert (spans <= 20).all() and (spans >= 5).all()  # crop of 10..20 frames
    # min_frames caps the crop from below: 64 > 40 valid frames -> the whole sequence.
    whole = crop_resize(ramp, gen(), scale=(0.1, 0.2), out_frames=40, min_frames=64)
    assert torch.allclose(whole, ramp)


def test_temporal_flip_twice_is_identity():
    x = batch()
    once = temporal_flip(x, gen(), p=1.0)
    assert torch.equal(once, x.flip(2))
    assert torch.equal(temporal_flip(once, gen(2), p=1.0), x)


# ---------------------------------------------------------------- noise and blur


def test_gaussian_noise_std():
    x = torch.zeros(50, C, T, V, M)
    out = gaussian_noise(x, gen(), std=0.01, p=1.0)
    assert abs(out.std().item() - 0.01) < 5e-4


def reference_kernel(sigma: float, size: int) -> torch.Tensor:
    k = torch.tensor([math.exp(-(i - size // 2) ** 2 / (2 * sigma ** 2)) for i in range(size)],
                     dtype=torch.float64)
    return k


def test_blur_normalised_keeps_constant_unnormalised_scales_by_kernel_sum():
    x = torch.full((4, C, 40, V, M), 3.0, dtype=torch.float64)
    interior = slice(7, 33)  # frames at least radius 7 from the zero-padded ends
    norm = gaussian_blur(x, gen(), sigma=(1.5, 1.5), p=1.0, normalize=True)
    assert torch.allclose(norm[:, :, interior], x[:, :, interior], atol=1e-12)
    raw = gaussian_blur(x, gen(), sigma=(1.5, 1.5), p=1.0, normalize=False)
    kernel_sum = reference_kernel(1.5, 15).sum().item()  # ~ sqrt(2 pi) * 1.5 = 3.76
    assert kernel_sum > 3.5
    assert torch.allclose(raw[:, :, interior], torch.full_like(raw[:, :, interior], 3.0 * kernel_sum))


def test_blur_matches_conv1d_reference():
    x = batch(dtype=torch.float64)
    out = gaussian_blur(x, gen(), sigma=(0.8, 0.8), p=1.0, normalize=False)
    weight = reference_kernel(0.8, 15).view(1, 1, 15)
    series = x.permute(0, 1, 3, 4, 2).reshape(-1, 1, T)
    reference = F.conv1d(series, weight, padding=7).view(N, C, V, M, T).permute(0, 1, 4, 2, 3)
    assert torch.allclose(out, reference, atol=1e-10)


# ---------------------------------------------------------------- pipelines


def test_normal_augment_is_shear_then_crop():
    x = batch()
    g = gen(4)
    expected = temporal_crop(shear(x, g, amplitude=0.5), g, padding_ratio=6)
    assert torch.equal(normal_augment(x, gen(4)), expected)


def test_apply_named_runs_in_order_and_rejects_unknown_names():
    x = batch()
    cfg = {"shear_amplitude": 0.2, "axis_mask_p": 1.0}
    g = gen(5)
    expected = axis_mask(rotate(shear(x, g, amplitude=0.2), g), g, p=1.0)
    assert torch.equal(apply_named(x, gen(5), ["shear", "rotate", "axis_mask"], NTU25, cfg), expected)
    with pytest.raises(UserError, match="valid names"):
        apply_named(x, gen(), ["shear", "sheer"], NTU25)
    empty = apply_named(x, gen(), [], NTU25)
    assert torch.equal(empty, x) and empty is not x
    assert set(AUGMENTATIONS) == {"shear", "temporal_crop", "crop_resize", "spatial_flip", "rotate",
                                  "axis_mask", "gaussian_noise", "gaussian_blur", "temporal_flip"}


def test_every_registered_augmentation_runs():
    x = batch()
    cfg = AugmentConfig(crop_out_frames=12, crop_min_frames=1)
    for name in AUGMENTATIONS:
        out = apply_named(x, gen(), [name], NTU25, cfg)
        assert out.shape[:2] == (N, C) and out.shape[3:] == (V, M)


def test_augment_config_from_dict():
    cfg = AugmentConfig(**{"blur_sigma": [0.2, 1.0], "crop_scale": [0.5, 1], "temporal_flip_p": 0.0})
    assert cfg.blur_sigma == (0.2, 1.0) and cfg.crop_scale == (0.5, 1.0)
    assert AugmentConfig().temporal_flip_p == 0.5 and AugmentConfig().blur_normalize is True
    with pytest.raises(UserError, match="unknown key"):
        AugmentConfig.from_dict({"shear": 0.5})
    with pytest.raises(UserError, match="noise_p"):
        AugmentConfig(noise_p=1.5)
    with pytest.raises(TypeError):
        AugmentConfig(**{"not_a_field": 1})
    with pytest.raises(AttributeError):
        cfg.noise_p = 0.1  # frozen


def test_extreme_temporal_flip_p_is_used():
    x = batch()
    a = extreme_augment(x, gen(3), NTU25, temporal_flip_p=0.0)
    b = extreme_augment(x, gen(3), NTU25, temporal_flip_p=1.0)
    assert not torch.equal(a, b)
    assert torch.equal(a.flip(2), b)  # same draws, only the final flip differs


# ---------------------------------------------------------------- streams


TOY = Layout(name="toy3", joint_names=("root", "mid", "tip"), edges=((1, 0), (2, 1)), center=0,
             parts={"all": (0, 1, 2)}, hands={}, left_right=())


def test_bone_stream_toy_layout():
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [4.0, 4.0, 4.0]]).T  # (C=3, V=3)
    x = x.view(1, 3, 1, 3, 1).expand(2, 3, 4, 3, 1).contiguous()
    bone = to_stream(x, "bone", TOY)
    assert torch.equal(bone[0, :, 0, 0, 0], torch.tensor([0.0, 0.0, 0.0]))
    assert torch.equal(bone[0, :, 0, 1, 0], torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(bone[0, :, 0, 2, 0], torch.tensor([3.0, 2.0, 1.0]))


def test_bone_stream_ntu25():
    x = batch()
    bone = to_stream(x, "bone", "ntu25")
    # CrosSCLR/ST-GCN pairs (1-based): (24, 25) hand tip -> thumb, (25, 12) thumb -> hand; 21 is the centre.
    assert torch.equal(bone[:, :, :, 23], x[:, :, :, 23] - x[:, :, :, 24])
    assert torch.equal(bone[:, :, :, 24], x[:, :, :, 24] - x[:, :, :, 11])
    assert (bone[:, :, :, 20] == 0).all()
    assert torch.equal(bone[:, :, :, 0], x[:, :, :, 0] - x[:, :, :, 1])


def test_motion_of_linear_ramp():
    ramp = (torch.arange(10.0) * 0.5).view(1, 1, 10, 1, 1).expand(2, 3, 10, 25, 2)
    motion = to_stream(ramp, "motion")
    assert torch.equal(motion[:, :, :-1], torch.full_like(motion[:, :, :-1], 0.5))
    assert (motion[:, :, -1] == 0).all()


def test_to_stream_joint_and_unknown():
    x = batch()
    joint = to_stream(x, "joint")
    assert torch.equal(joint, x) and joint is not x
    assert STREAMS == ("joint", "motion", "bone")
    with pytest.raises(ValueError, match="joint, motion, bone"):
        to_stream(x, "velocity")
    with pytest.raises(ValueError, match="layout"):
        to_stream(x, "bone")
