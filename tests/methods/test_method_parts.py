"""Method-specific parts of AimCLR and ActCLR against hand-computed values on tiny tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from skelssl.methods.actionlet import ActionletSelector, dataset_average, smoothing_matrix, upsample_to_frames
from skelssl.methods.aimclr import d3m_loss
from skelssl.methods.eadm import EnergyAttentionDrop, apply_drop, drop_masks, energy_attention, simam_energy
from skelssl.methods.mats import actionlet_combine, part_segment_mask, skeleton_adain, skeleton_mix
from skelssl.methods.nnm import nearest_neighbor_positives, nnm_loss
from skelssl.methods.safp import safp_pool, safp_weights
from skelssl.skeleton.layouts import NTU25


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----- EADM ------------------------------------------------------------------------------------------------
def test_simam_energy_hand_computed():
    x = torch.tensor([0.0, 0.0, 0.0, 4.0]).view(1, 1, 1, 4)  # one channel, N = 4 neurons; μ = 1, σ² = 3
    e = simam_energy(x, lam=0.0)
    assert torch.allclose(e.flatten(), torch.tensor([12 / 7, 12 / 7, 12 / 7, 12 / 15]))
    e = simam_energy(x, lam=1.0)  # 4(3+1) / ((t-1)² + 6 + 2)
    assert torch.allclose(e.flatten(), torch.tensor([16 / 9, 16 / 9, 16 / 9, 16 / 17]))
    e = simam_energy(x, lam=0.0, unbiased=True)  # σ² = 12 / 3 = 4
    assert torch.allclose(e.flatten(), torch.tensor([16 / 9, 16 / 9, 16 / 9, 16 / 17]))
    attention = energy_attention(x, lam=1.0)
    assert torch.allclose(attention.flatten(), torch.sigmoid(torch.tensor([9 / 16, 9 / 16, 9 / 16, 17 / 16])))


def test_drop_masks_from_keep_margin():
    att = torch.tensor([[0.8, 0.6, 0.6], [0.8, 0.6, 0.9]]).view(1, 1, 2, 3)
    spatial, temporal = drop_masks(att, keep_margin=0.7)
    # joint means 0.8, 0.6, 0.75 -> drop joints 0 and 2; frame means 0.667, 0.767 -> drop frame 1
    assert spatial.flatten().tolist() == [0.0, 1.0, 0.0]
    assert temporal.flatten().tolist() == [1.0, 0.0]
    _, element = drop_masks(att, keep_margin=0.7, temporal="element")
    assert element.flatten().tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]


def test_drop_renormalisation_algorithm_1():
    x = torch.ones(1, 1, 2, 3)
    out = apply_drop(x, torch.tensor([0.0, 1.0, 0.0]).view(1, 1, 1, 3))  # x · 3 / 1
    out = apply_drop(out, torch.tensor([1.0, 0.0]).view(1, 1, 2, 1))  # x · 2 / 1
    assert out.flatten().tolist() == [0.0, 6.0, 0.0, 0.0, 0.0, 0.0]
    # per-sample vs whole-batch counts: sample a keeps 3/3 joints, sample b 1/3
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]).view(2, 1, 1, 3)
    x = torch.ones(2, 1, 1, 3)
    assert apply_drop(x, mask, "sample").flatten().tolist() == [1, 1, 1, 3, 0, 0]
    assert apply_drop(x, mask, "batch").flatten().tolist() == [1.5, 1.5, 1.5, 1.5, 0, 0]
    assert apply_drop(x, torch.zeros(2, 1, 1, 3)).abs().sum() == 0  # everything dropped: zeros, no inf


def test_eadm_end_to_end():
    # one channel, T = 1, V = 4: attention sigmoid(7/12) = 0.64 on joints 0-2, sigmoid(15/12) = 0.78 on joint 3
    x = torch.tensor([1.0, 1.0, 1.0, 5.0]).view(1, 1, 1, 1, 4)  # (N, M, C, T, V)
    out = EnergyAttentionDrop(lam=0.0, keep_margin=0.7)(x)
    # joint 3 dropped, 4/3 renormalisation; the one frame's mean attention 0.676 < 0.7 is kept
    assert torch.allclose(out.flatten(), torch.tensor([4 / 3, 4 / 3, 4 / 3, 0.0]))


# ----- D3M ------------------------------------------------------------------------------------------------
def test_d3m_on_known_distributions():
    normal = torch.log(torch.tensor([[0.5, 0.25, 0.25]])).requires_grad_(True)
    extreme = torch.log(torch.tensor([[0.25, 0.5, 0.25]])).requires_grad_(True)
    dropped = torch.zeros(1, 3, requires_grad=True)  # uniform
    ce1 = -(0.5 * math.log(0.25) + 0.25 * math.log(0.5) + 0.25 * math.log(0.25))
    ce2 = math.log(3)
    loss = d3m_loss(normal, extreme, dropped)
    assert loss.item() == pytest.approx(0.5 * (ce1 + ce2), rel=1e-6)
    loss.backward()
    assert normal.grad is None or normal.grad.abs().sum() == 0  # the normal view is the (detached) target
    assert extreme.grad.abs().sum() > 0 and dropped.grad.abs().sum() > 0


# ----- NNM ------------------------------------------------------------------------------------------------
def test_nnm_positive_sets_are_the_union_of_top_k():
    q_normal = torch.tensor([[0.1, 0.9, 0.3, 0.2, 0.0]])
    q_extreme = torch.tensor([[0.8, 0.1, 0.3, 0.2, 0.0]])
    q_drop = torch.tensor([[0.1, 0.7, 0.3, 0.2, 0.0]])
    mask = nearest_neighbor_positives([q_normal, q_extreme, q_drop], k=1)
    assert mask.flatten().tolist() == [True, True, False, False, False]
    mask2 = nearest_neighbor_positives([q_normal, q_extreme, q_drop], k=2)
    assert mask2.flatten().tolist() == [True, True, True, False, False]


def test_nnm_loss_eq9():
    probs = torch.tensor([[0.4, 0.2, 0.1, 0.1, 0.1, 0.1]])  # column 0 = key
    logits = probs.log()
    mask = torch.tensor([[True, True, False, False, False]])  # bank entries 0, 1 -> columns 1, 2
    expected_sum = -(math.log(0.4) + math.log(0.2) + math.log(0.1))
    assert nnm_loss(logits, mask, "sum").item() == pytest.approx(expected_sum, rel=1e-6)
    assert nnm_loss(logits, mask, "mean").item() == pytest.approx(expected_sum / 3, rel=1e-6)
    no_neighbours = torch.zeros_like(mask)
    assert nnm_loss(logits, no_neighbours).item() == pytest.approx(-math.log(0.4), rel=1e-6)  # = InfoNCE


# ----- actionlet ------------------------------------------------------------------------------------------
LEFT_ARM = set(NTU25.parts["left_arm"])
MOVING = [5, 6, 7, 21, 22]  # elbow, wrist, hand, hand tip, thumb of the left arm


def motion_features(x: torch.Tensor) -> torch.Tensor:
    """Hand-built encoder: dense features = |joint velocity| per coordinate + one constant channel."""
    velocity = (x[:, :, 1:] - x[:, :, :-1]).abs()  # (N, C, T-1, V, M)
    const = torch.ones_like(velocity[:, :1])
    return torch.cat([velocity, const], dim=1).permute(0, 4, 1, 2, 3)  # (N, M, C+1, T-1, V)


def one_arm_batch(n: int = 3, t: int = 12) -> torch.Tensor:
    x = torch.zeros(n, 3, t, 25, 2)
    x[:, :, :, :, 0] = torch.randn(1, 3, 1, 25, 1, generator=gen(1)).squeeze(-1)  # a static pose
    wave = torch.sin(torch.linspace(0, 3 * math.pi, t))
    x[0, 0, :, MOVING, 0] += wave[:, None] * 0.5  # only sample 0, only its left arm, moves
    x[0, 1, :, MOVING, 0] += wave[:, None] * 0.3
    return x


def test_actionlet_falls_on_the_moving_arm():
    x = one_arm_batch()
    selector = ActionletSelector(NTU25, anchor_source="dataset", threshold=0.5)
    selector.set_anchor(dataset_average(x[1:].numpy()))  # the static training sequences
    scores, mask = selector.select(motion_features, lambda h: h, x)
    assert mask.shape == (3, 2, 11, 25)
    selected = set(torch.nonzero(mask[0, 0].sum(dim=0)).flatten().tolist())
    assert selected and selected <= LEFT_ARM  # precision 1: only left-arm joints
    assert selected & set(MOVING)
    assert mask[0, 1].sum() == 0 and mask[1:].sum() == 0  # the absent person and the static samples: none
    assert scores.max() <= 1 and scores.min() >= 0


def test_actionlet_with_a_real_stgcn_runs_and_batch_anchor():
    from skelssl.models.stgcn import STGCN

    torch.manual_seed(0)
    enc = STGCN(NTU25, hidden_channels=4, out_channels=16)
    head = torch.nn.Linear(16, 8)
    x = one_arm_batch(n=4, t=16)
    selector = ActionletSelector(NTU25, anchor_source="batch")
    scores, mask = selector.select(enc.features, head, x)
    assert mask.shape == (4, 2, 4, 25) and torch.isfinite(scores).all()
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert all(p.grad is None for p in enc.parameters())  # the encoder itself gets no gradient


def test_dataset_average_and_upsampling():
    data = np.arange(5 * 2 * 1 * 1 * 1, dtype=np.float32).reshape(5, 2, 1, 1, 1)
    assert torch.allclose(dataset_average(data, chunk=2), torch.tensor(data.mean(axis=0)))
    a = torch.tensor([[1.0, 2.0]]).view(1, 1, 2, 1)
    assert upsample_to_frames(a, 5).flatten().tolist() == [1, 1, 1, 2, 2]
    g = smoothing_matrix(NTU25)
    assert torch.allclose(g.sum(dim=0), torch.ones(25))
    assert g[3, 3] == pytest.approx(0.5)  # the head: itself and the neck


# ----- SAFP -----------------------------------------------------------------------------------------------
def test_safp_weights_and_pool():
    a = torch.tensor([[1.0, 0.0], [0.0, 3.0]]).view(1, 2, 2)
    assert torch.allclose(safp_weights(a), torch.tensor([[0.25, 0.0], [0.0, 0.75]]).view(1, 2, 2))
    assert torch.allclose(safp_weights(a, "code", 0.5), torch.tensor([[0.25, 0.125], [0.125, 0.5]]).view(1, 2, 2))
    assert torch.allclose(safp_weights(torch.zeros(1, 2, 2)), torch.full((1, 2, 2), 0.25))  # empty -> average
    dense = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 1, 2, 2)  # (N, M, C, T', V)
    assert safp_pool(dense, a).item() == pytest.approx(0.25 * 1 + 0.75 * 4)


# ----- MATS -----------------------------------------------------------------------------------------------
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


def test_actionlet_combination_eq7():
    x_act = torch.ones(1, 3, 2, 25, 2)
    x_non = torch.zeros(1, 3, 2, 25, 2)
    a = torch.zeros(1, 2, 2, 25)
    a[0, 0, 1, 7] = 1.0
    a[0, 1, 0, 3] = 0.25
    out = actionlet_combine(x_act, x_non, a)
    assert out[0, :, 1, 7, 0].tolist() == [1.0, 1.0, 1.0]
    assert out[0, :, 0, 3, 1].tolist() == [0.25, 0.25, 0.25]
    assert out.sum() == 3 * 1.25
