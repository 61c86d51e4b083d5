"""Memory banks of keys: the negatives M = {m_i} of the contrastive losses, and their DDP gather."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MemoryQueue", "gather_across_ranks"]


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
