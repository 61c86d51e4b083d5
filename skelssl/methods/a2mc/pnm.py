"""A²MC's Positive-Negative Mixer (PNM, §III-C): the gradient-updated memory bank M0 (eq. 7) and the mixed
banks M1, M2, M3 (eq. 8).

M0 holds K unit vectors. It starts as random unit vectors and is filled, first in first out, with the key
features f0 of the first K / N steps ("initialised by storing features from the key encoder"); from then on
it changes only by gradient ascent on the loss (AdCo): M0 <- M0 + beta * dL/dM0 (eq. 7), the loss computed
with the bank's own lower temperature (0.03), each entry renormalised to unit length after the update (the
entries meet unit-length queries, as in AdCo; the paper does not say). The official code adds momentum 0.9
and weight decay 1e-4 to this update: `bank_momentum`, `bank_weight_decay` (0 by default, as eq. 7).

A mixed bank M* = {λ f* + (1 − λ) m_0i} (eq. 8) is built for every positive feature f* (f1, f2, f3 for every
sample) and every λ in (0.4, 0.3, 0.2, 0.1): N x 4K entries, never materialised -- the similarity of a query
q to an entry is λ q·f* + (1 − λ) q·m_0i, computed from q·M0ᵀ. `normalize=True` scales each entry to unit
length first (MoCHi, Kalantidis et al. 2020, which the paper cites for mixing), dividing by
|λ f* + (1 − λ) m_0i| = sqrt(λ² + (1 − λ)² + 2λ(1 − λ) f*·m_0i) for unit f*, m_0i.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from skelssl.methods.core.banks import gather_across_ranks

__all__ = ["AdversarialBank", "mixed_logits"]


class AdversarialBank(nn.Module):
    """M0 (module docstring). `bank` (K, D) is read by `MoCoMethod.negatives`; `enqueue(keys)` fills it while
    it is not yet full; `ascend(grad, beta)` applies eq. 7."""

    def __init__(self, size: int, dim: int, generator: torch.Generator | None = None, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"memory bank size must be positive, got {size}")
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.register_buffer("bank", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))  # entries written by keys so far
        self.register_buffer("velocity", torch.zeros(size, dim))

    @property
    def size(self) -> int:
        return self.bank.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write keys into the next unfilled entries (all ranks' keys under DDP); nothing once full."""
        start = int(self.filled)
        if start >= self.size:
            return
        keys = gather_across_ranks(keys.detach()).to(self.bank.dtype)[: self.size - start]
        self.bank[start:start + keys.shape[0]] = keys
        self.filled.fill_(start + keys.shape[0])

    @torch.no_grad()
    def ascend(self, grad: Tensor, beta: float) -> None:
        """M0 <- normalize(M0 + beta * v), v = momentum * v + dL/dM0 − weight_decay * M0 (eq. 7 when both are 0).
        Under DDP the gradient is averaged over the ranks first, so every rank keeps the same bank."""
        grad = grad.to(self.bank.dtype)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            grad = grad.clone()
            dist.all_reduce(grad)
            grad /= dist.get_world_size()
        step = grad - self.weight_decay * self.bank
        if self.momentum:
            self.velocity.mul_(self.momentum).add_(step)
            step = self.velocity
        self.bank.copy_(F.normalize(self.bank + beta * step, dim=1))


def mixed_logits(query_bank: Tensor, query_mix: Tensor, lambdas: Sequence[float], mix_bank: Tensor | None = None,
                 normalize: bool = False) -> Tensor:
    """Similarities of queries q to the entries λ f* + (1 − λ) m_i of the mixed banks (eq. 8), λ-major:
    (N, len(lambdas) · K).

    query_bank: q · M0ᵀ (N, K); query_mix: q · f* (N,) with f* the sample's own positive feature;
    mix_bank: f* · M0ᵀ (N, K), needed only with normalize=True (unit-length mixed entries). No lambdas: no
    mixed entries (N, 0)."""
    parts = [query_bank.new_zeros(query_bank.shape[0], 0)]
    for lam in lambdas:
        sims = lam * query_mix[:, None] + (1.0 - lam) * query_bank
        if normalize:
            if mix_bank is None:
                raise ValueError("mixed_logits: normalize=True needs mix_bank = f* · M0ᵀ")
            norm_sq = lam ** 2 + (1.0 - lam) ** 2 + 2.0 * lam * (1.0 - lam) * mix_bank
            sims = sims / norm_sq.clamp_min(1e-12).sqrt()
        parts.append(sims)
    return torch.cat(parts, dim=1)
