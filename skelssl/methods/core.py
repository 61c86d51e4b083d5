"""Mechanisms shared by every contrastive method: momentum update, memory queue, InfoNCE, and the
cross-entropy between two similarity distributions over the memory bank.

Written once here; the methods (SkeletonCLR, AimCLR, ActCLR, ...) only combine them.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "update_momentum",
    "MemoryQueue",
    "gather_across_ranks",
    "similarity_to_bank",
    "info_nce_logits",
    "info_nce_loss",
    "distribution_cross_entropy",
    "Projector",
]


@torch.no_grad()
def update_momentum(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """theta_k <- m * theta_k + (1 - m) * theta_q  (AimCLR eq. 2, MoCo).

    BatchNorm running statistics are buffers, not parameters: the key encoder keeps its own, computed on the
    key batches, as in MoCo.
    """
    online_params = list(online.parameters())
    target_params = list(target.parameters())
    torch._foreach_mul_(target_params, momentum)
    torch._foreach_add_(target_params, online_params, alpha=1.0 - momentum)


def gather_across_ranks(tensor: Tensor) -> Tensor:
    """Concatenate `tensor` from every DDP rank, in rank order (identity without DDP)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


class MemoryQueue(nn.Module):
    """First-in-first-out bank of L2-normalised keys: the negatives M = {m_i} of AimCLR eq. 1.

    Under DDP every rank enqueues the keys of the whole global batch, gathered in rank order, so all ranks
    hold the same bank. The write pointer wraps around; a batch that crosses the end is split.
    """

    def __init__(self, size: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be positive, got {size}")
        bank = F.normalize(torch.randn(size, dim, generator=generator), dim=1)
        self.register_buffer("bank", bank)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.bank.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        keys = gather_across_ranks(keys.detach()).to(self.bank.dtype)
        if keys.shape[0] >= self.size:  # more keys than slots: keep the newest
            keys = keys[-self.size:]
        start = int(self.ptr)
        index = (start + torch.arange(keys.shape[0], device=self.bank.device)) % self.size
        self.bank[index] = keys
        self.ptr.fill_((start + keys.shape[0]) % self.size)


def similarity_to_bank(q: Tensor, bank: Tensor) -> Tensor:
    """q @ bankᵀ, (N, D) x (M, D) -> (N, M), in float32 even under mixed precision (autocast off).

    The similarities are divided by temperatures of 0.04-0.1 before a softmax: bfloat16's 8-bit mantissa
    would put errors of up to ~0.1 into those logits, so every loss over the bank computes them in float32.
    """
    with torch.autocast(q.device.type, enabled=False):
        return q.float() @ bank.float().t()


def info_nce_logits(q: Tensor, k: Tensor, bank: Tensor, temperature: float) -> Tensor:
    """Logits [q·k, q·m_1 .. q·m_M] / tau (AimCLR eq. 1); column 0 is the positive. q, k, bank normalised.

    float32 whatever the autocast state (see `similarity_to_bank`)."""
    positive = (q.float() * k.float()).sum(dim=1, keepdim=True)
    negatives = similarity_to_bank(q, bank)
    return torch.cat([positive, negatives], dim=1) / temperature


def info_nce_loss(q: Tensor, k: Tensor, bank: Tensor, temperature: float) -> Tensor:
    """InfoNCE (AimCLR eq. 1): cross-entropy with the positive at index 0."""
    logits = info_nce_logits(q, k, bank, temperature)
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def distribution_cross_entropy(target_logits: Tensor, student_logits: Tensor) -> Tensor:
    """-sum_i p_target(i) log p_student(i), averaged over the batch; the target is not back-propagated.

    The one "cross-entropy between two similarity distributions over the bank": AimCLR D3M (eqs. 7-8),
    ActCLR similarity mining (eq. 9), A2MC and ProSL. Each side's logits are already divided by its own
    temperature.
    """
    target = F.softmax(target_logits.detach(), dim=1)
    return -(target * F.log_softmax(student_logits, dim=1)).sum(dim=1).mean()


class Projector(nn.Sequential):
    """MoCo v2 MLP head: Linear - ReLU - Linear (256 -> 256 -> 128 in SkeletonCLR)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))
