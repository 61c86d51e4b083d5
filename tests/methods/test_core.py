"""The shared MoCo mechanisms: momentum update, FIFO queue, InfoNCE, distribution cross-entropy."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from skelssl.methods.core import (
    MemoryQueue,
    distribution_cross_entropy,
    info_nce_logits,
    info_nce_loss,
    update_momentum,
)
from skelssl.models.heads import Projector


def test_momentum_update_matches_formula():
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    w_q, w_k = online.weight.detach().clone(), target.weight.detach().clone()
    update_momentum(online, target, 0.9)
    assert torch.allclose(target.weight, 0.9 * w_k + 0.1 * w_q)
    assert torch.equal(online.weight, w_q)


def test_queue_fifo_order_and_wraparound():
    queue = MemoryQueue(size=5, dim=2)
    keys = torch.arange(16, dtype=torch.float32).view(8, 2)
    queue.enqueue(keys[:3])
    assert torch.equal(queue.bank[:3], keys[:3]) and int(queue.ptr) == 3
    queue.enqueue(keys[3:6])  # crosses the end: slots 3, 4, then 0
    assert torch.equal(queue.bank[3], keys[3]) and torch.equal(queue.bank[4], keys[4])
    assert torch.equal(queue.bank[0], keys[5]) and int(queue.ptr) == 1
    assert torch.equal(queue.bank[1:3], keys[1:3])  # the oldest not yet overwritten
    queue.enqueue(keys[:7])  # more than the queue holds: the newest five stay
    assert sorted(queue.bank[:, 0].tolist()) == [4.0, 6.0, 8.0, 10.0, 12.0]


def test_info_nce_against_hand_computed_value():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[0.6, 0.8]])
    bank = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    tau = 0.5
    # logits: q.k = 0.6, q.m1 = 0, q.m2 = -1, divided by tau
    expected = -math.log(math.exp(1.2) / (math.exp(1.2) + math.exp(0.0) + math.exp(-2.0)))
    assert torch.allclose(info_nce_logits(q, k, bank, tau), torch.tensor([[1.2, 0.0, -2.0]]))
    assert abs(info_nce_loss(q, k, bank, tau).item() - expected) < 1e-6


def test_distribution_cross_entropy_known_distributions():
    target = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    student = torch.log(torch.tensor([[0.25, 0.5, 0.25]]))
    expected = -(0.5 * math.log(0.25) + 0.25 * math.log(0.5) + 0.25 * math.log(0.25))
    assert abs(distribution_cross_entropy(target, student).item() - expected) < 1e-6
    # Equal distributions: the cross-entropy is the entropy, and no gradient reaches the target.
    t = target.clone().requires_grad_(True)
    s = student.clone().requires_grad_(True)
    distribution_cross_entropy(t, s).backward()
    assert t.grad is None and s.grad is not None


def test_projector_shapes():
    out = Projector(16, 16, 8)(torch.randn(4, 16))
    assert out.shape == (4, 8)


def test_queue_bank_starts_normalised():
    queue = MemoryQueue(size=32, dim=8)
    assert torch.allclose(queue.bank.norm(dim=1), torch.ones(32), atol=1e-5)
    assert torch.allclose(F.normalize(queue.bank, dim=1), queue.bank, atol=1e-6)


def test_collapse_monitor_figures():
    from skelssl.methods.core.monitor import embedding_spread

    g = torch.Generator().manual_seed(0)
    healthy = torch.randn(256, 64, generator=g)
    cos, std = embedding_spread(healthy)
    assert abs(cos) < 0.05 and 0.9 < std < 1.1  # isotropic: cosine ~0, spread ~1
    collapsed = torch.randn(1, 64, generator=g) + 1e-3 * torch.randn(256, 64, generator=g)
    cos, std = embedding_spread(collapsed)
    assert cos > 0.99 and std < 0.01


def test_bank_logits_keep_float64_and_raise_half_precision_to_float32():
    """Parity checks run in float64: the logits must not be cut to float32 (a 3e-7 error, as measured against
    the authors' code); bfloat16 inputs still get float32 logits."""
    q = torch.tensor([[0.1, 1e-9]], dtype=torch.float64)
    k = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    bank = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    logits = info_nce_logits(q, k, bank, 1.0)
    assert logits.dtype == torch.float64  # 0.1 and 1e-9 exactly as float64 holds them (float32 rounds both)
    assert logits[0, 0].item() == 0.1 and logits[0, 1].item() == 1e-9
    half = info_nce_logits(q.bfloat16(), k.bfloat16(), bank.bfloat16(), 1.0)
    assert half.dtype == torch.float32
