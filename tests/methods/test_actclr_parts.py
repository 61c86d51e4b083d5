"""ActCLR's parts against hand-computed values: actionlets (eqs. 2-5), SAFP (eq. 8), the combination of eq. 7."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from skelssl.methods.actclr.actionlet import (ActionletSelector, AverageMotionAnchor, anchor_similarity_objective,
                                              dataset_average, official_map, smoothing_matrix, upsample_to_frames)
from skelssl.methods.actclr.mats import actionlet_combine
from skelssl.methods.actclr.safp import safp_key, safp_pool, safp_weights
from skelssl.models.pooling import pool
from skelssl.skeleton.layouts import NTU25


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----- actionlet ------------------------------------------------------------------------------------------
LEFT_ARM = set(NTU25.parts["left_arm"])
MOVING = [5, 6, 7, 21, 22]  # elbow, wrist, hand, hand tip, thumb of the left arm
NTU_PARTS = torch.zeros(25, 25)  # each joint takes the mean of its body part (written out, not part_mean_matrix)
for _joints in NTU25.parts.values():
    NTU_PARTS[np.ix_(_joints, _joints)] = 1.0 / len(_joints)


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


def select_against_average(x, anchor, dense_fn, head):
    """What ActCLR.actionlet does, with a hand-built encoder: anchor in the same batch, eq. 3 objective."""
    dense = dense_fn(torch.cat([x, anchor.sequence_for(x)]))
    objective = anchor_similarity_objective(head, head(pool(dense[-1:])))
    return ActionletSelector(NTU25, threshold=0.5).select(dense[:-1], objective)


def hand_dense() -> torch.Tensor:
    """(1, 1, 2, 2, 25) features, non-zero everywhere: channel 0 is 1 but 3 on the left arm at frame 0;
    channel 1 is 0.25 but 2 on the right leg (both frames) and 0.75 on joints 0 and 1 (trunk) at frame 1."""
    h = torch.ones(1, 1, 2, 2, 25)
    h[0, 0, 0, 0, list(LEFT_ARM)] = 3.0
    h[0, 0, 1] = 0.25
    h[0, 0, 1, :, list(RIGHT_LEG)] = 2.0
    h[0, 0, 1, 1, [0, 1]] = 0.75
    return h


LINEAR = torch.tensor([1.0, -2.0])  # L(pooled) = 1·pooled_0 − 2·pooled_1: Δh_c = w_c / (M·T'·V) per cell


def test_eq37_map_by_hand():
    """[·]₊ on the gradient (eq. 37): α = (1/50, 0), so A = h_0 / 50, no G: scores h_0 / 3, region = the
    left arm at frame 0 (3 / 3 >= 0.5, everything else 1 / 3); channel 1 (negative gradient) plays no part."""
    scores, mask = ActionletSelector(NTU25, smooth=False, map="eq37").select(hand_dense(), lambda z: z @ LINEAR)
    expected = torch.full((2, 25), 1 / 3)
    expected[0, list(LEFT_ARM)] = 1.0
    torch.testing.assert_close(scores[0, 0], expected)
    expected_mask = torch.zeros(2, 25)
    expected_mask[0, list(LEFT_ARM)] = 1.0
    torch.testing.assert_close(mask[0, 0], expected_mask)


RIGHT_LEG = set(NTU25.parts["right_leg"])


def test_official_map_by_hand():
    """LanglandsLin/ActCLR's _generate_mask: signed ḡ = (1, −2)/50 (batch mean, N = 1), cell value
    ReLU(mean_c ḡ_c h_c) = ReLU(h_0 − 2 h_1)/100: 0.005 by default, 0.025 on the left arm at frame 0, 0 on the
    right leg (1 − 4 < 0) and on joints 0, 1 at frame 1 (1 − 1.5 < 0); part means per frame; /1e-8, clip:
    every part is on but the right leg. A ReLU before the channel mean or an unsigned ḡ would keep the leg."""
    scores, mask = ActionletSelector(NTU25, map="official").select(hand_dense(), lambda z: z @ LINEAR)
    part_means = torch.full((2, 25), 0.005)
    part_means[0, list(LEFT_ARM)] = 0.025
    part_means[:, list(RIGHT_LEG)] = 0.0
    part_means[1, list(NTU25.parts["trunk"])] = 3 * 0.005 / 5
    torch.testing.assert_close(scores[0, 0], part_means / 0.025)
    expected_mask = torch.ones(2, 25)
    expected_mask[:, list(RIGHT_LEG)] = 0.0
    torch.testing.assert_close(mask[0, 0], expected_mask)
    # the 1e-8 clip: a part mean of 0.4e-8 gives 0.4; the gradient is of the batch MEAN (N = 2 halves it)
    tiny = official_map(torch.full((1, 1, 1, 1, 25), 0.8e-8), torch.ones(1, 1, 1, 1, 25), NTU_PARTS)[1]
    torch.testing.assert_close(tiny, torch.full((1, 1, 1, 25), 0.8))
    value = ActionletSelector(NTU25, map="official").activation_map(torch.cat([hand_dense()] * 2),
                                                                    lambda z: z @ LINEAR)
    torch.testing.assert_close(value[:, 0], (part_means / 2).expand(2, 2, 25))


def motion_features_everywhere(x: torch.Tensor) -> torch.Tensor:
    """Hand-built encoder whose features are non-zero everywhere: |joint velocity| + 0.3 per coordinate, a
    constant channel, and a channel that is large (3) on the still right leg of every sequence and 0.2
    elsewhere: a map that ignored the gradient's weights would land on that leg."""
    velocity = (x[:, :, 1:] - x[:, :, :-1]).abs() + 0.3  # (N, C, T-1, V, M)
    const = torch.ones_like(velocity[:, :1])
    leg = torch.full_like(velocity[:, :1], 0.2)
    leg[..., list(RIGHT_LEG), :] = 3.0
    return torch.cat([velocity, const, leg], dim=1).permute(0, 4, 1, 2, 3)  # (N, M, C+2, T-1, V)


def test_actionlet_falls_on_the_moving_arm():
    x = one_arm_batch()
    anchor = AverageMotionAnchor("dataset")
    anchor.set(dataset_average(x[1:].numpy()))  # the static training sequences
    scores, mask = select_against_average(x, anchor, motion_features_everywhere, lambda h: h)
    selected = set(torch.nonzero(mask[0, 0].sum(dim=0)).flatten().tolist())
    assert selected and selected <= LEFT_ARM  # precision 1: only left-arm joints
    assert selected & set(MOVING)
    # over the clip, every moving joint scores above every still joint (G spreads the arm onto the shoulder)
    still = sorted(set(range(25)) - LEFT_ARM)
    assert scores[0, 0][:, MOVING].mean(dim=0).min() > scores[0, 0][:, still].mean(dim=0).max()


def test_actionlet_maps_carry_no_graph():
    from skelssl.models.stgcn import STGCN

    torch.manual_seed(0)
    enc = STGCN(NTU25, hidden_channels=4, out_channels=16)
    head = torch.nn.Linear(16, 8)
    x = one_arm_batch(n=4, t=16)
    scores, mask = select_against_average(x, AverageMotionAnchor("batch"), enc.features, head)  # with autograd on
    # The maps carry no graph back into the encoder (the selector works on detached features): a training
    # loss built on them could not push gradients into the offline encoder.
    assert not scores.requires_grad and not mask.requires_grad


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
    # the authors' masked mean: Σ A + 1e-5 below
    assert torch.allclose(safp_weights(a, "code"), torch.tensor([[1.0, 0.0], [0.0, 3.0]]).view(1, 2, 2) / 4.00001)
    assert torch.allclose(safp_weights(torch.zeros(1, 2, 2)), torch.full((1, 2, 2), 0.25))  # empty -> average
    assert torch.equal(safp_weights(torch.zeros(1, 2, 2), "code"), torch.zeros(1, 2, 2))  # empty -> zero
    faint = torch.tensor([[1e-5, 0.0], [0.0, 0.0]]).view(1, 2, 2)  # where the 1e-5 counts: 1e-5 / 2e-5
    assert safp_weights(faint, "code")[0, 0, 0].item() == pytest.approx(0.5, rel=1e-4)
    assert safp_weights(faint)[0, 0, 0].item() == pytest.approx(1.0)
    dense = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 1, 2, 2)  # (N, M, C, T', V)
    assert safp_pool(dense, a).item() == pytest.approx(0.25 * 1 + 0.75 * 4)


def test_safp_code_key_mixes_the_projections_after_the_projector():
    """The authors' key: 0.5·g(GAP) + 0.5·g(masked mean); with g(v) = v² (not linear) this differs from
    mixing before g. GAP = 2.5, masked mean = (1 + 12) / (4 + 1e-5)."""
    a = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64).view(1, 2, 2)
    dense = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64).view(1, 1, 1, 2, 2)
    masked = 13.0 / 4.00001
    code = safp_key(dense, a, lambda v: v ** 2, "code", 0.5).item()
    assert code == pytest.approx(0.5 * 2.5 ** 2 + 0.5 * masked ** 2, rel=1e-12)  # 8.40625 near, not 8.2656
    assert safp_key(dense, a, lambda v: v ** 2, "paper").item() == pytest.approx(3.25 ** 2, rel=1e-12)
    assert safp_key(dense, a, lambda v: v ** 2, "code", 0.25).item() == pytest.approx(
        0.25 * 6.25 + 0.75 * masked ** 2, rel=1e-12)


# ----- MATS -----------------------------------------------------------------------------------------------


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
