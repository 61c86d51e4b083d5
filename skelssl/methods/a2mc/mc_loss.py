"""A²MC's Mixing Contrast loss (§III-D, eqs. 9-11) over the bank M0 and the mixed banks of PNM.

L = L1 + L2 + L3 (eq. 9). With M0* = M0 ∪ M* (K + len(λ)·K entries; M* mixes f* into M0, pnm.mixed_logits):
- L1 (eq. 10): InfoNCE of the weak attacked view f1 against the key f0, negatives M01;
- L3: the same for the basic query f3, negatives M03;
- L2 (eq. 11): the strong attacked view f2's distribution ψ(f2, ·) over [f0] ∪ M02 is pulled to the basic
  query's ψ(f3, ·) over the same entries (target detached), the shared distribution_cross_entropy.
The mixed entries are constants for the encoder (as every bank entry): their f* is detached. The negatives'
keep mask (a plug-in's filter) removes an M0 entry and every mixed entry made from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from skelssl.methods.a2mc.pnm import mixed_logits
from skelssl.methods.core.losses import distribution_cross_entropy, remove_entries, similarity_to_bank

__all__ = ["MCLoss", "mc_loss", "mixing_contrast_logits"]


@dataclass
class MCLoss:
    total: Tensor
    l1: Tensor
    l2: Tensor
    l3: Tensor


def mixing_contrast_logits(query: Tensor, key: Tensor, mixer: Tensor, bank: Tensor, lambdas: Sequence[float],
                           temperature: float, normalize: bool = False, keep: Tensor | None = None) -> Tensor:
    """[q·f0, q·M0, q·M*] / τ (N, 1 + K + len(λ)·K): the logits of ψ(q, ·) over [f0] ∪ M0 ∪ M*, where M*
    mixes `mixer` (f*, each sample's own) into the bank M0 (eq. 8). Column 0 is the positive."""
    q = query.float()
    mix = mixer.detach().float()
    query_bank = similarity_to_bank(q, bank)
    mix_bank = similarity_to_bank(mix, bank) if normalize else None
    mixed = mixed_logits(query_bank, (q * mix).sum(dim=1), lambdas, mix_bank, normalize)
    negatives = torch.cat([query_bank, mixed], dim=1)
    if keep is not None:
        negatives = remove_entries(negatives, keep.repeat(1, 1 + len(lambdas)))
    positive = (q * key.float()).sum(dim=1, keepdim=True)
    return torch.cat([positive, negatives], dim=1) / temperature


def mc_loss(f0: Tensor, f1: Tensor, f2: Tensor, f3: Tensor, bank: Tensor, lambdas: Sequence[float],
            temperature: float, normalize: bool = False, keep: Tensor | None = None) -> MCLoss:
    """Eqs. 9-11 (module docstring). f0 the key (no gradient), f1/f2 the weak/strong attacked queries, f3 the
    basic query, all L2-normalised (N, D); bank M0 (K, D)."""
    def logits(query: Tensor, mixer: Tensor) -> Tensor:
        return mixing_contrast_logits(query, f0, mixer, bank, lambdas, temperature, normalize, keep)

    target = torch.zeros(f0.shape[0], dtype=torch.long, device=f0.device)
    l1 = F.cross_entropy(logits(f1, f1), target)                         # eq. 10, over M01
    l3 = F.cross_entropy(logits(f3, f3), target)                         # as eq. 10, over M03
    l2 = distribution_cross_entropy(logits(f3, f2), logits(f2, f2))      # eq. 11, over M02
    return MCLoss(total=l1 + l2 + l3, l1=l1, l2=l2, l3=l3)              # eq. 9
