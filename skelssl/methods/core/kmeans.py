"""k-means on feature banks, written once: ActCLR+'s action prototypes (spherical k-means on the unit
hypersphere, ActCLR+ eq. 33) and ProSL's semantic codebook (k-means of key features).

Batched torch on the features' device, seeded by an explicit torch.Generator (k-means++ initialisation), so a
run that refreshes its prototypes draws nothing from the training stream. Lloyd iterations in chunks of rows,
so 40k x 128 features with k = 130 fit in a few MB.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from skelssl.console import Progress

__all__ = ["KMeansResult", "kmeans"]


@dataclass
class KMeansResult:
    centers: Tensor      # (k, D); unit norm when spherical
    assignments: Tensor  # (N,) long: the center of each row
    iterations: int      # Lloyd iterations run (stops early when no assignment changes)


def _scores(x: Tensor, centers: Tensor, spherical: bool) -> Tensor:
    """Similarity of rows to centers: cosine (spherical; rows and centers unit norm) or −squared distance."""
    if spherical:
        return x @ centers.t()
    return 2 * x @ centers.t() - centers.pow(2).sum(dim=1)[None, :]  # −|x−c|² up to the constant |x|²


def _assign(x: Tensor, centers: Tensor, spherical: bool, chunk: int) -> tuple[Tensor, Tensor]:
    """(nearest center, its score) of every row, in chunks of rows."""
    best, score = [], []
    for start in range(0, x.shape[0], chunk):
        s = _scores(x[start:start + chunk], centers, spherical)
        value, index = s.max(dim=1)
        best.append(index)
        score.append(value)
    return torch.cat(best), torch.cat(score)


def _init_plus_plus(x: Tensor, k: int, spherical: bool, generator: torch.Generator, chunk: int) -> Tensor:
    """k-means++: each next center drawn with probability proportional to its distance to the nearest so far."""
    n = x.shape[0]
    first = torch.randint(0, n, (1,), generator=generator, device=x.device)
    centers = x[first]
    distance = torch.full((n,), float("inf"), device=x.device, dtype=x.dtype)
    for _ in range(1, k):
        _, score = _assign(x, centers[-1:], spherical, chunk)
        # distance to the newest center: 1 − cos (spherical) or the squared distance
        new = (1 - score) if spherical else (x.pow(2).sum(dim=1) - score)
        distance = torch.minimum(distance, new.clamp_min(0))
        weights = distance if distance.sum() > 0 else torch.ones_like(distance)
        pick = torch.multinomial(weights, 1, generator=generator)
        centers = torch.cat([centers, x[pick]])
    return centers


def kmeans(features: Tensor, k: int, *, iterations: int = 30, spherical: bool = True,
           generator: torch.Generator | None = None, chunk: int = 8192, progress: bool = False,
           desc: str = "k-means") -> KMeansResult:
    """Cluster the rows of `features` (N, D) into k groups.

    spherical=True: rows are L2-normalised, points are assigned by cosine similarity and each center is the
    normalised mean of its points (k-means on the unit hypersphere). spherical=False: Euclidean k-means.
    A cluster left empty takes the point farthest from its own center. Deterministic given the generator.
    `progress`: a progress line over the Lloyd iterations (it ends early when the assignments converge).
    """
    if features.dim() != 2 or features.shape[0] == 0:
        raise ValueError(f"kmeans expects a non-empty (N, D) matrix, got shape {tuple(features.shape)}")
    n = features.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"kmeans: k must be between 1 and the number of points ({n}), got {k}")
    x = features.detach().float()
    if spherical:
        x = F.normalize(x, dim=1)
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(0)
    centers = _init_plus_plus(x, k, spherical, generator, chunk)
    assignments = torch.full((n,), -1, dtype=torch.long, device=x.device)
    done = 0
    bar = Progress(iterations, f"{desc} ({n} points, k = {k})", "iterations", enabled=progress)
    for done in range(1, iterations + 1):
        new, score = _assign(x, centers, spherical, chunk)
        bar.update()
        if torch.equal(new, assignments):
            break  # converged: the centers are the means of these assignments
        assignments = new
        sums = torch.zeros_like(centers).index_add_(0, assignments, x)
        counts = torch.bincount(assignments, minlength=k)
        empty = counts == 0
        if empty.any():  # refill empty clusters with the worst-fitted points
            worst = score.argsort()[: int(empty.sum())]
            sums[empty] = x[worst]
            counts = counts.clone()
            counts[empty] = 1
        centers = sums / counts[:, None].to(x.dtype)
        if spherical:
            centers = F.normalize(centers, dim=1)
    else:  # out of iterations: the assignments of the last centers
        assignments, _ = _assign(x, centers, spherical, chunk)
    bar.close()
    return KMeansResult(centers=centers, assignments=assignments, iterations=done)
