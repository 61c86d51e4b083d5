"""ActCLR's parts against hand-computed values: actionlets (eqs. 2-5), SAFP (eq. 8), the combination of eq. 7."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from skelssl.methods.actclr.actionlet import (ActionletSelector, AverageMotionAnchor, anchor_similarity_objective,
                                              dataset_average, smoothing_matrix, upsample_to_frames)
from skelssl.methods.actclr.mats import actionlet_combine
from skelssl.methods.actclr.safp import safp_pool, safp_weights
from skelssl.models.pooling import pool
from skelssl.skeleton.layouts import NTU25


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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


def select_against_average(x, anchor, dense_fn, head):
    """What ActCLR.actionlet does, with a hand-built encoder: anchor in the same batch, eq. 3 objective."""
    dense = dense_fn(torch.cat([x, anchor.sequence_for(x)]))
    objective = anchor_similarity_objective(head, head(pool(dense[-1:])))
    return ActionletSelector(NTU25, threshold=0.5).select(dense[:-1], objective)


def test_actionlet_falls_on_the_moving_arm():
    x = one_arm_batch()
    anchor = AverageMotionAnchor("dataset")
    anchor.set(dataset_average(x[1:].numpy()))  # the static training sequences
    scores, mask = select_against_average(x, anchor, motion_features, lambda h: h)
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
    scores, mask = select_against_average(x, AverageMotionAnchor("batch"), enc.features, head)  # with autograd on
    assert mask.shape == (4, 2, 4, 25) and torch.isfinite(scores).all()
    assert set(mask.unique().tolist()) == {0.0, 1.0}
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
    assert torch.allclose(safp_weights(a, "code", 0.5), torch.tensor([[0.25, 0.125], [0.125, 0.5]]).view(1, 2, 2))
    assert torch.allclose(safp_weights(torch.zeros(1, 2, 2)), torch.full((1, 2, 2), 0.25))  # empty -> average
    dense = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 1, 2, 2)  # (N, M, C, T', V)
    assert safp_pool(dense, a).item() == pytest.approx(0.25 * 1 + 0.75 * 4)


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
