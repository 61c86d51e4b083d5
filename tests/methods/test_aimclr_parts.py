"""AimCLR's parts against hand-computed values: EADM (eq. 3, Algorithm 1), D³M (eqs. 7-8), NNM (eq. 9)."""

from __future__ import annotations

import math

import pytest
import torch

from skelssl.methods.aimclr import d3m_loss
from skelssl.methods.aimclr.eadm import EnergyAttentionDrop, apply_drop, drop_masks, energy_attention, simam_energy
from skelssl.methods.aimclr.nnm import nearest_neighbor_positives, nnm_loss


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


def test_temporal_mask_reads_keep_margin_on_the_frames_range():
    # frame means 0.66, 0.67, 0.68, 0.665 (C = V = 1): all below 0.7, so the absolute rule drops none;
    # min-max normalised 0, 0.5, 1, 0.25: keep_margin 0.7 drops frame 2, 0.4 drops frames 1 and 2
    att = torch.tensor([0.66, 0.67, 0.68, 0.665]).view(1, 1, 4, 1)
    assert drop_masks(att, 0.7, "frame")[1].flatten().tolist() == [1.0, 1.0, 1.0, 1.0]
    assert drop_masks(att, 0.7)[1].flatten().tolist() == [1.0, 1.0, 0.0, 1.0]
    assert drop_masks(att, 0.4, "relative")[1].flatten().tolist() == [1.0, 0.0, 0.0, 1.0]


def test_eadm_default_drops_frames_of_a_real_encoder_at_init():
    """The regression: with the paper's ST-GCN (256 channels in its last block) the frames' mean attention
    sits near 0.66 at init, so the absolute rule never dropped a frame; the default drops the most important
    frames of every sample, and AimCLR logs both drop rates."""
    from skelssl.methods.aimclr import AimCLR
    from tests.methods.test_aimclr import tiny_batch, tiny_config

    torch.manual_seed(0)
    cfg = tiny_config(AimCLR)
    cfg.model.stgcn.hidden_channels, cfg.model.stgcn.out_channels = 16, 256  # the paper's widths
    method = AimCLR(cfg, "ntu25").train()
    x = method.to_stream(method.augment_extreme(tiny_batch(n=8, t=32)["x"]))
    with torch.no_grad():
        dense = method.encoder_q.features(x).flatten(0, 1)  # (N·M, C, T', V)
        attention = energy_attention(dense)
    frames_absolute = drop_masks(attention, 0.7, "frame")[1]
    frames_default = drop_masks(attention, 0.7, method.cfg.method.eadm_temporal)[1]
    assert frames_absolute.min() == 1.0  # nothing dropped: the symptom
    assert (frames_default.amin(dim=2) == 0).all()  # at least one frame dropped in every sample and person
    with torch.no_grad():
        _, logs = method.training_loss(tiny_batch(n=8, t=32))
    assert 0.0 < float(logs["eadm_frame_drop"]) < 1.0 and "eadm_joint_drop" in logs


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
    # joint 3 dropped, 4/3 renormalisation; the one frame is kept (relative: a single frame has no range;
    # absolute: its mean attention 0.676 < 0.7)
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
