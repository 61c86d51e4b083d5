"""ProSL's semantic parts (§3.3-3.4), as functions of features, centroids and assignments:

- the cosine similarity distribution y of a feature over the k semantic centroids, softmax(cos / τ);
- the semantic loss with its outlier filter (eqs. 2-3, and eq. 9 for the semantic branch);
- eq. 10's KL between the semantic branch's and the query's similarity distributions over the bank;
- which bank entries stay negatives (eq. 4): those in another semantic cluster than the sample;
- the semantic coefficients of the joints (eq. 7) and the masking probabilities (eq. 8), and the adaptive mask.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["similarity_distribution", "semantic_loss", "branch_kl", "nearest_centroid", "codebook_keep",
           "semantic_coefficients", "masking_probabilities", "adaptive_joint_mask"]


def similarity_distribution(z: Tensor, centers: Tensor, temperature: float) -> Tensor:
    """log y (N, k): y = softmax over the centroids of cos(z, c_j) / τ (z and centers unit length)."""
    with torch.autocast(z.device.type, enabled=False):
        return F.log_softmax(z.float() @ centers.float().t() / temperature, dim=1)


def semantic_loss(log_y: Tensor, assigned: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """eqs. 2-3: −Σ_{b ∈ B} log y_b[SCoBo{z_b}], divided by the batch size N (the paper writes the sum; every
    other loss here is a batch mean, and dividing by N keeps the filtered samples at weight zero).
    B keeps a sample when its most similar centroid is its assigned one and that probability exceeds ξ
    (`threshold`); `assigned` (N,) long, −1 for a sample without an assignment (never kept).
    Returns (loss, kept (N,) bool)."""
    best_prob, best = log_y.exp().max(dim=1)
    kept = (assigned >= 0) & (best == assigned) & (best_prob > threshold)
    picked = log_y.gather(1, assigned.clamp_min(0)[:, None]).squeeze(1)
    loss = -(picked * kept.to(picked.dtype)).sum() / log_y.shape[0]
    return loss, kept


def branch_kl(branch_logits: Tensor, query_logits: Tensor) -> Tensor:
    """eq. 10: KL(P_z' ‖ P_z) = Σ_i P_z'(i) (log P_z'(i) − log P_z(i)), averaged over the batch, where
    P = softmax(logits) over the bank (each side's z·M / τ). P_z is the teacher ("to supervise z'"): detached.
    The order matters: KL(P_z ‖ P_z') (what a cross-entropy against P_z minimises) weighs the bank entries by
    the query's distribution instead of the branch's."""
    with torch.autocast(branch_logits.device.type, enabled=False):
        log_p_branch = F.log_softmax(branch_logits.float(), dim=1)
        log_p_query = F.log_softmax(query_logits.detach().float(), dim=1)
        return (log_p_branch.exp() * (log_p_branch - log_p_query)).sum(dim=1).mean()


def nearest_centroid(z: Tensor, centers: Tensor) -> Tensor:
    """(N,) index of the most similar centroid (cosine) of each row of z."""
    with torch.autocast(z.device.type, enabled=False):
        return (z.float() @ centers.float().t()).argmax(dim=1)


def codebook_keep(sample_clusters: Tensor, entry_clusters: Tensor) -> Tensor:
    """eq. 4: (N, K) True where bank entry j lies in another semantic cluster than sample n (a negative)."""
    return entry_clusters[None, :] != sample_clusters[:, None]


@torch.no_grad()
def semantic_coefficients(encode: Callable[[Tensor], Tensor], x: Tensor, centers: Tensor,
                          temperature: float) -> Tensor:
    """eq. 7: p_v = KL(y(ẑ) ‖ y(ẑ_v)) (N, V), where ẑ = encode(x), ẑ_v = encode(x with joint v zeroed in every
    frame and person) and y the similarity distribution over the centroids: how much the sample's semantic
    assignment moves when the joint is missing (large: a joint rich in semantics)."""
    log_y = similarity_distribution(encode(x), centers, temperature)
    coefficients = []
    for v in range(x.shape[3]):
        without = x.clone()
        without[:, :, :, v] = 0
        log_y_v = similarity_distribution(encode(without), centers, temperature)
        coefficients.append((log_y.exp() * (log_y - log_y_v)).sum(dim=1))
    return torch.stack(coefficients, dim=1).clamp_min(0.0)


def masking_probabilities(coefficients: Tensor, mask_ratio: float, eps: float = 1e-6) -> Tensor:
    """eq. 8: p_mask_v = φ / p_v, φ chosen so that the probabilities average `mask_ratio` over the joints, each
    clipped to [0, 1]. Coefficients are floored at eps times their largest (a joint that changes nothing
    is masked with the highest probability instead of dividing by zero)."""
    floor = coefficients.amax(dim=-1, keepdim=True).clamp_min(1e-12) * eps
    inverse = 1.0 / torch.maximum(coefficients, floor)
    phi = mask_ratio * coefficients.shape[-1] / inverse.sum(dim=-1, keepdim=True)
    return (phi * inverse).clamp(0.0, 1.0)


def adaptive_joint_mask(x: Tensor, probabilities: Tensor, generator: torch.Generator) -> Tensor:
    """Zero joint v of a sample (every frame, person and channel) with probability probabilities[v] ((V,) or
    (N, V)), independently per sample and joint."""
    n, _, _, v, _ = x.shape
    draws = torch.rand(n, v, generator=generator, device=x.device)
    masked = draws < probabilities.to(x.device).expand(n, v)
    return x.masked_fill(masked.view(n, 1, 1, v, 1), 0.0)
