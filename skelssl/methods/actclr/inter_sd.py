"""ActCLR+'s Inter-Sequence Similarity Distillation (Inter-SD, ActCLR+ §IV-B, eqs. 46-48).

The query view x_q is mixed with a partner's query view x'_q by Skeleton Mix (transforms.mixing: CutMix or
ResizeMix by body parts, or Mixup, one of the three at random, eq. 46); its target is the mixture of the two
offline features weighted by how much of each sequence's actionlet the mix keeps (eq. 47):
    a = Σ M̃ ⊙ A / Σ A,   b = Σ (1 − M̃) ⊙ A' / Σ A',   z̃_k = a/(a+b) z_k + b/(a+b) z'_k,
and the mixed query's similarity distribution over the bank is distilled from the target's (eq. 48, the
loss of eq. 45).

Choices (docs/fidelity_actclr_plus.md): the sums run over frames, joints and persons; A' is the partner's
actionlet where the mix shows it: for ResizeMix, whose region holds the partner's whole sequence squeezed in
time, A' is squeezed the same way and Σ A' runs over the region's frames (the share of the partner's
actionlet that the mix shows); a sequence with an empty actionlet counts every position as actionlet (a is
then the share of the sequence kept); a + b = 0 gives equal weights. Eq. 47 mixes f_k(x_k) and f_k(x'_k);
the bank holds projected embeddings, so the mixture is of the offline embeddings z_k = g_k(·), normalised
again after mixing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from skelssl.transforms.mixing import Mix

__all__ = ["actionlet_shares", "mixed_target"]


def _share(weights: Tensor, actionlet: Tensor, span: Tensor) -> Tensor:
    """Σ weights ⊙ A / Σ_span A per sample; A (N, M, T, V), weights (N, T, V), span (N, T) bool; an empty
    actionlet (over the span) counts every position of the span."""
    a = actionlet * span[:, None, :, None].to(actionlet.dtype)
    empty = a.sum(dim=(1, 2, 3)) <= 0
    a = torch.where(empty.view(-1, 1, 1, 1), span[:, None, :, None].to(a.dtype).expand_as(a), a)
    return (weights[:, None] * a).sum(dim=(1, 2, 3)) / a.sum(dim=(1, 2, 3)).clamp_min(1e-12)


def actionlet_shares(mix: Mix, actionlet: Tensor) -> tuple[Tensor, Tensor]:
    """(a, b) of eq. 47 for a Skeleton Mix of a batch whose actionlet (N, M, T, V) is in the mixed view's
    coordinates: a, the share of each sequence's actionlet that the mix keeps; b, the share of its partner's
    actionlet that the mix shows."""
    keep = mix.keep.to(actionlet.dtype)
    everywhere = torch.ones_like(mix.partner_span)
    a = _share(keep, actionlet, everywhere)
    partner = actionlet[mix.partner]  # the partner's actionlet, at the frames the mix shows of it
    shown = partner.gather(2, mix.partner_frames[:, None, :, None].expand_as(partner))
    b = _share(1 - keep, shown, mix.partner_span)
    return a, b


def mixed_target(z_key: Tensor, partner: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Eq. 47: z̃_k = a/(a+b) z_k + b/(a+b) z_k[partner], normalised; equal weights where a + b = 0."""
    total = a + b
    wa = torch.where(total > 0, a / total.clamp_min(1e-12), torch.full_like(a, 0.5))
    return F.normalize(wa[:, None] * z_key + (1 - wa)[:, None] * z_key[partner], dim=1)
