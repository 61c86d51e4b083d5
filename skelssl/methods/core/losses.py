"""The losses every contrastive method shares: InfoNCE, and the cross-entropy between two similarity
distributions over a memory bank (AimCLR D³M, ActCLR similarity mining, ActCLR+ Intra/Inter-SD, A²MC L2,
ProSL's KL all are this one loss).

Negatives can be removed per query (a plug-in such as ProSL's codebook filter does): `keep` (N, K) says which
bank entries each query may use. Removed entries get the logit `REMOVED_LOGIT`, whose softmax weight is exactly
0 in float32, so every loss here treats them as absent without special cases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["REMOVED_LOGIT", "logit_dtype", "remove_entries", "similarity_to_bank", "info_nce_logits", "info_nce_loss",
           "distribution_cross_entropy"]

REMOVED_LOGIT = -1.0e9  # exp(REMOVED_LOGIT - max) is exactly 0 in float32: the entry drops out of any softmax


def remove_entries(logits: Tensor, keep: Tensor | None) -> Tensor:
    """logits (N, K) with the entries where keep (N, K) is False set to REMOVED_LOGIT (None: all kept)."""
    return logits if keep is None else logits.masked_fill(~keep, REMOVED_LOGIT)


def logit_dtype(q: Tensor) -> torch.dtype:
    """At least float32: float16/bfloat16 are raised to it, float64 stays float64 (parity checks run in it)."""
    return torch.promote_types(q.dtype, torch.float32)


def similarity_to_bank(q: Tensor, bank: Tensor) -> Tensor:
    """q @ bankᵀ, (N, D) x (M, D) -> (N, M), in at least float32 even under mixed precision (autocast off).

    The similarities are divided by temperatures of 0.04-0.1 before a softmax: bfloat16's 8-bit mantissa
    would put errors of up to ~0.1 into those logits, so every loss over the bank computes them in float32
    (or in float64 for float64 inputs).
    """
    dtype = logit_dtype(q)
    with torch.autocast(q.device.type, enabled=False):
        return q.to(dtype) @ bank.to(dtype).t()


def info_nce_logits(q: Tensor, k: Tensor, bank: Tensor, temperature: float, keep: Tensor | None = None) -> Tensor:
    """Logits [q·k, q·m_1 .. q·m_M] / tau (AimCLR eq. 1); column 0 is the positive. q, k, bank normalised.

    keep: optional (N, M) bool, the bank entries each query may use as negatives. float32 whatever the
    autocast state (see `similarity_to_bank`)."""
    dtype = logit_dtype(q)
    positive = (q.to(dtype) * k.to(dtype)).sum(dim=1, keepdim=True)
    negatives = remove_entries(similarity_to_bank(q, bank) / temperature, keep)
    return torch.cat([positive / temperature, negatives], dim=1)


def info_nce_loss(q: Tensor, k: Tensor, bank: Tensor, temperature: float, keep: Tensor | None = None) -> Tensor:
    """InfoNCE (AimCLR eq. 1): cross-entropy with the positive at index 0."""
    logits = info_nce_logits(q, k, bank, temperature, keep)
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def distribution_cross_entropy(target_logits: Tensor, student_logits: Tensor) -> Tensor:
    """-sum_i p_target(i) log p_student(i), averaged over the batch; the target is not back-propagated.

    The one "cross-entropy between two similarity distributions over the bank": AimCLR D3M (eqs. 7-8),
    ActCLR similarity mining (eq. 9), A2MC and ProSL. Each side's logits are already divided by its own
    temperature (removed entries carry REMOVED_LOGIT on both sides).
    """
    target = F.softmax(target_logits.detach(), dim=1)
    return -(target * F.log_softmax(student_logits, dim=1)).sum(dim=1).mean()
