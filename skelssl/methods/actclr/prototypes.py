"""ActCLR+'s anchors for actionlet selection (ActCLR+ §IV-A, eqs. 33-36): action prototypes and the triplet
objective, the second anchor strategy of the one `ActionletSelector` (actionlet.py).

- Action prototypes P = SPHERE_CLUSTER(z) (eq. 33): spherical k-means (methods.core.kmeans) of the offline
  embeddings z = g_k(GAP(f_k(x))) of the training sequences, unit vectors on the hypersphere.
- Triplet objective (eq. 36): I = [−sim(z, b) + sim(z, p) + γ]_+ with p = argmax_{p∈P} sim(z, p) the nearest
  prototype (the positive anchor) and b the embedding of the average motion (the static, negative anchor),
  sim the cosine. The sign is the paper's, consistent with eq. 39 (I = [L/2 − D/4 + γ]_+ with D/4 = 1 − zᵀp
  and L/2 = 1 − zᵀb) and with ActCLR's −sim(z, z̄): its gradient's positive part (eq. 37) keeps the channels
  that move z towards its prototype and away from the static anchor. A sequence already closer to b than to
  its prototype by more than γ gives I = 0, hence no gradient and an empty actionlet: it does not move.
Choices (docs/fidelity_actclr_plus.md): γ = 0.2 (not given; the usual triplet margin on unit vectors); the
nearest prototype is chosen without gradient (argmax).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skelssl.methods.actclr.actionlet import Objective, size_buffers_to_saved
from skelssl.methods.core.kmeans import kmeans

__all__ = ["ActionPrototypes", "TripletObjective", "triplet_objective", "cluster_prototypes"]


def cluster_prototypes(embeddings: Tensor, k: int, generator: torch.Generator, iterations: int = 30) -> Tensor:
    """Eq. 33: k spherical k-means centers (k, D), unit rows, of embeddings (N, D); k is cut to N."""
    return kmeans(embeddings, min(int(k), embeddings.shape[0]), iterations=iterations, spherical=True,
                  generator=generator, progress=True, desc="ActCLR+ prototypes: k-means").centers


class ActionPrototypes(nn.Module):
    """The prototypes P (K, D) and the epoch they were computed at; saved in and resumed from checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("centers", torch.zeros(0))
        self.register_buffer("epoch", torch.tensor(-1, dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        size_buffers_to_saved(self, state_dict, prefix, ("centers",))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def is_set(self) -> bool:
        return self.centers.numel() > 0

    def set(self, centers: Tensor, epoch: int) -> None:
        self.centers = F.normalize(centers.detach().float(), dim=1).to(self.epoch.device)
        self.epoch.fill_(int(epoch))

    def nearest(self, z: Tensor) -> Tensor:
        """Index (N,) of the nearest prototype of each unit embedding z (N, D): argmax sim(z, p) (eq. 36)."""
        return (z.detach().float() @ self.centers.t()).argmax(dim=1)


class TripletObjective:
    """Eq. 36 as an objective of the pooled offline features (see `triplet_objective`); after each call
    `active` (N,) says for which sequences the hinge's argument was positive (their gradient is non-zero)."""

    def __init__(self, head: Callable[[Tensor], Tensor], prototypes: ActionPrototypes, static_embedding: Tensor,
                 margin: float = 0.2, hinge: bool = True) -> None:
        if not prototypes.is_set:
            raise RuntimeError("ActCLR+ has no action prototypes yet: refresh them (ActCLRPlus.refresh_prototypes) "
                               "before selecting actionlets")
        self.head, self.prototypes, self.margin, self.hinge = head, prototypes, float(margin), bool(hinge)
        self.static = F.normalize(static_embedding.detach(), dim=1)
        self.active: Tensor | None = None

    def __call__(self, pooled: Tensor) -> Tensor:
        z = F.normalize(self.head(pooled), dim=1)
        p = self.prototypes.centers[self.prototypes.nearest(z)].to(z.dtype)
        value = (z * p).sum(dim=1) - (z * self.static).sum(dim=1) + self.margin  # eq. 36 inside [.]_+
        self.active = (value > 0).detach()
        return torch.relu(value) if self.hinge else value

    @property
    def active_share(self) -> Tensor:
        """The share of the last call's sequences whose eq. 36 hinge is active."""
        if self.active is None:
            raise RuntimeError("the triplet objective has not been evaluated yet")
        return self.active.float().mean()


def triplet_objective(head: Callable[[Tensor], Tensor], prototypes: ActionPrototypes, static_embedding: Tensor,
                      margin: float = 0.2, hinge: bool = True) -> TripletObjective:
    """Eq. 36 as an objective of the pooled offline features: I(h) = [sim(z, p) − sim(z, b) + γ]_+ with
    z = g_k(h) normalised, p its nearest prototype and b = static_embedding (1, D) normalised.

    hinge=False drops the [.]_+: where eq. 36's hinge is zero (z nearer the static anchor than its prototype
    by more than γ) its gradient, and so the actionlet and the FGSM step made from it, is zero; without the
    hinge every sequence gets the gradient of sim(z, p) − sim(z, b)."""
    return TripletObjective(head, prototypes, static_embedding, margin, hinge)
