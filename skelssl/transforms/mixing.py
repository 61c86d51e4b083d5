"""Mixing augmentations on skeleton batches (N, C, T, V, M): each sample with a partner sequence of the batch.

- Skeleton AdaIN (ActCLR eq. 6): the partner's spatial mean and temporal standard deviation.
- Skeleton Mix (ActCLR §3.2, also ActCLR+'s Inter-SD mixing): Mixup, CutMix by body parts over a run of
  frames, or ResizeMix (the partner's whole sequence resampled into that region).

Batched on the input's device, every draw from an explicit torch.Generator. Choices where ActCLR is open
(also in docs/fidelity_aimclr_actclr.md):
- σ in eq. 6 is the temporal standard deviation (AdaIN's statistic; "variance" in the text), μ the mean over
  joints; persons that are all zero stay zero.
- The partner X^j of a sample is the one `shift` places further in the batch (one random shift in 1..N−1 per
  call, so no sample is its own partner).
- Skeleton Mix picks per sample Mixup / CutMix / ResizeMix with probabilities 1/4, 1/2, 1/4 (the official
  code's split); CutMix replaces 2-3 body parts over 3-5 consecutive 4-frame blocks by the partner's;
  ResizeMix pastes the partner's whole sequence, resampled to the segment length, into the same region;
  Mixup uses λ ~ U(0, 1).
`skeleton_mix_with_mask` also returns what ActCLR+'s Inter-SD needs for eq. 47: the mixing mask M̃ (the share of
the sample kept at each frame and joint, eq. 46) and where the partner's frames landed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from skelssl.skeleton.layouts import Layout, get_layout

__all__ = ["partner_index", "skeleton_adain", "part_segment_mask", "skeleton_mix", "skeleton_mix_with_mask", "Mix"]


def partner_index(n: int, generator: torch.Generator, device: torch.device | str) -> Tensor:
    """(n,) index of each sample's partner: the batch rolled by one random shift in 1..n−1."""
    if n < 2:
        return torch.zeros(n, dtype=torch.long, device=device)
    shift = torch.randint(1, n, (1,), generator=generator, device=device)
    return (torch.arange(n, device=device) + shift) % n


def skeleton_adain(x: Tensor, generator: torch.Generator, *, p: float = 1.0, eps: float = 1e-5,
                   max_ratio: float | None = 2.0, partner: Tensor | None = None) -> Tensor:
    """Eq. 6 with a bounded gain: X^i_adain = r (X^i − μ(X^i)) + μ(X^j), r = σ(X^j) / σ(X^i) clipped to
    [1/max_ratio, max_ratio]; μ over joints, σ over time (std), per coordinate, joint and person.

    Eq. 6 divides the joint's offset from the body's centre (spatial μ) by its temporal σ: for a joint that
    barely moves, r is unbounded while the offset is the size of the body, so a static wrist of X^i under a
    waving partner lands metres away (34.8 % of synthetic sequences got a coordinate over 3× their maximum,
    worst 17×). Clipping r keeps AdaIN's intent (the partner's amplitude of motion, its centre) and bounds the
    result: |X_adain − μ(X^j)| ≤ max_ratio · |X^i − μ(X^i)|. max_ratio=None is eq. 6 as printed.
    Applied per sample with probability p; `partner` (N,) overrides the random partner (tests).
    """
    n = x.shape[0]
    if partner is None:
        partner = partner_index(n, generator, x.device)
    selected = torch.rand(n, generator=generator, device=x.device) < p
    mu = x.mean(dim=3, keepdim=True)  # (N, C, T, 1, M): spatial mean
    sigma = x.std(dim=2, keepdim=True, unbiased=False)  # (N, C, 1, V, M): temporal std
    gain = sigma[partner] / (sigma + eps)  # eq. 6's σ(X^j) / σ(X^i)
    if max_ratio is not None:
        gain = gain.clamp(1.0 / float(max_ratio), float(max_ratio))  # the bound (docstring)
    out = gain * (x - mu) + mu[partner]
    present = x.abs().amax(dim=(1, 2, 3), keepdim=True) > 0
    out = torch.where(present, out, torch.zeros_like(out))  # absent (all-zero) persons stay zero
    return torch.where(selected.view(-1, 1, 1, 1, 1), out, x)


def part_segment_mask(n: int, num_frames: int, layout: Layout | str, generator: torch.Generator,
                      device: torch.device | str, *, parts: Sequence[int] = (2, 3),
                      blocks: Sequence[int] = (3, 5), block_frames: int = 4) -> Tensor:
    """Bool (n, T, V): per sample, k ∈ parts body parts (whole parts of the layout) × a run of c ∈ blocks
    consecutive `block_frames`-frame blocks starting on a block boundary (clipped to the sequence)."""
    layout = get_layout(layout)
    part_of_joint = torch.as_tensor(layout.part_index(), device=device)
    num_parts = len(layout.parts)
    k = torch.randint(parts[0], parts[1] + 1, (n, 1), generator=generator, device=device).clamp_max(num_parts)
    rank = torch.rand(n, num_parts, generator=generator, device=device).argsort(dim=1).argsort(dim=1)
    chosen_part = rank < k  # (n, P): k parts chosen uniformly
    joint_mask = chosen_part.gather(1, part_of_joint.expand(n, -1))  # (n, V)

    num_blocks = -(-num_frames // block_frames)
    c = torch.randint(blocks[0], blocks[1] + 1, (n, 1), generator=generator, device=device).clamp_max(num_blocks)
    start = (torch.rand(n, 1, generator=generator, device=device) * (num_blocks - c + 1)).floor().long()
    block_of_frame = torch.arange(num_frames, device=device) // block_frames  # (T,)
    frame_mask = (block_of_frame >= start) & (block_of_frame < start + c)  # (n, T)
    return frame_mask[:, :, None] & joint_mask[:, None, :]


@dataclass
class Mix:
    """A Skeleton Mix of a batch with partners: x̃ = M̃ ⊙ x + (1 − M̃) ⊙ x' (eq. 46 of ActCLR+) at every position.

    mixed (N, C, T, V, M); keep (N, T, V): M̃, the share of the sample itself (1 outside the region, 0 inside
    it for CutMix and ResizeMix, 1 − λ everywhere for Mixup); partner (N,): the partner's index in the batch;
    partner_frames (N, T): the partner's frame that each mixed frame shows (the identity except for ResizeMix,
    which squeezes the partner's whole sequence into the region's frames); partner_span (N, T) bool: the
    frames the partner's (squeezed) sequence spans: all of them, or the region's frames for ResizeMix.
    mode (N,): 0 Mixup, 1 CutMix, 2 ResizeMix.
    """

    mixed: Tensor
    keep: Tensor
    partner: Tensor
    partner_frames: Tensor
    partner_span: Tensor
    mode: Tensor


def skeleton_mix_with_mask(x: Tensor, generator: torch.Generator, layout: Layout | str, *,
                           probs: Sequence[float] = (0.25, 0.5, 0.25), parts: Sequence[int] = (2, 3),
                           blocks: Sequence[int] = (3, 5), block_frames: int = 4,
                           partner: Tensor | None = None) -> Mix:
    """Skeleton Mix (per sample Mixup / CutMix / ResizeMix with probabilities `probs`) and its mixing mask."""
    n, _, t, _, _ = x.shape
    if partner is None:
        partner = partner_index(n, generator, x.device)
    other = x[partner]
    region = part_segment_mask(n, t, layout, generator, x.device, parts=parts, blocks=blocks,
                               block_frames=block_frames)  # (n, T, V)
    region5 = region[:, None, :, :, None]
    # Mixup: convex combination of the whole sequences.
    lam = torch.rand(n, generator=generator, device=x.device, dtype=x.dtype).view(-1, 1, 1, 1, 1)
    mixup = x * (1 - lam) + other * lam
    # CutMix: the partner's joints in the region.
    cutmix = torch.where(region5, other, x)
    # ResizeMix: the partner's whole sequence, resampled to the region's length, pasted in the region.
    frames = region.any(dim=2)  # (n, T)
    first = frames.float().argmax(dim=1, keepdim=True)
    length = frames.sum(dim=1, keepdim=True).clamp_min(1)
    offset = torch.arange(t, device=x.device)[None] - first
    source = ((offset.clamp_min(0).float() + 0.5) * t / length).floor().long().clamp(0, t - 1)  # (n, T)
    squeezed = other.gather(2, source[:, None, :, None, None].expand_as(other))
    resizemix = torch.where(region5, squeezed, x)

    choice = torch.rand(n, generator=generator, device=x.device)
    edges = torch.tensor(list(probs), device=x.device, dtype=torch.float32).cumsum(0)
    mode = (choice[:, None] >= edges[None, :-1]).sum(dim=1)  # 0 mixup, 1 cutmix, 2 resize
    mode5 = mode.view(-1, 1, 1, 1, 1)
    mixed = torch.where(mode5 == 0, mixup, torch.where(mode5 == 1, cutmix, resizemix))
    is_mixup, is_resize = (mode == 0).view(-1, 1, 1), (mode == 2).view(-1, 1)
    keep = torch.where(is_mixup, (1 - lam).view(-1, 1, 1).expand(n, t, region.shape[2]),
                       (~region).to(x.dtype))  # M̃ (eq. 46)
    identity = torch.arange(t, device=x.device).expand(n, t)
    partner_frames = torch.where(is_resize, source, identity)
    partner_span = torch.where(is_resize, frames, torch.ones_like(frames))
    return Mix(mixed, keep, partner, partner_frames, partner_span, mode)


def skeleton_mix(x: Tensor, generator: torch.Generator, layout: Layout | str, *,
                 probs: Sequence[float] = (0.25, 0.5, 0.25), parts: Sequence[int] = (2, 3),
                 blocks: Sequence[int] = (3, 5), block_frames: int = 4,
                 partner: Tensor | None = None) -> Tensor:
    """Skeleton Mix: per sample Mixup / CutMix / ResizeMix (probabilities `probs`) with a partner sequence."""
    return skeleton_mix_with_mask(x, generator, layout, probs=probs, parts=parts, blocks=blocks,
                                  block_frames=block_frames, partner=partner).mixed
