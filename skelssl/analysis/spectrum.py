"""ActCLR+ §III-C: the number of clusters κ of the augmentation graph and the category diameter, from features.

ActCLR+ shows that contrastive learning is spectral clustering on the augmentation graph A (eqs. 2-5) and that at
equilibrium the feature similarities estimate A (eq. 9): A_xx' ∝ exp(f(x)ᵀ f(x')). So, from the features of a
trained encoder:
- the graph W_ij = exp((z_i·z_j − 1) / τ) on the L2-normalised embeddings z (eq. 9; τ the method's InfoNCE
  temperature, under which exp(f·f') was learnt; the −1 only rescales W, which the normalised Laplacian
  ignores), with no self-loops;
- its normalised Laplacian L = I − D^-1/2 W D^-1/2 and eigenvalues v_1 <= ... <= v_n (Fig. 1);
- κ = Σ_i 1[v_i < ε] (eq. 15): the number of tightly connected parts. Stronger augmentation connects more
  samples, so fewer clusters (Fig. 2); accuracy first rises then falls with κ (Fig. 3, eq. 17);
- the category diameter D = sup_{z_i, z_j of one class} |z_i − z_j| (eq. 19), averaged over the classes, beside
  the mean distance between class centres p = mean z (eq. 20), which eqs. 22-23 compare it with.

Choices (the paper gives no number for them): ε = 0.1 by default; the graph is built on at most `max_nodes`
samples of the test part (evenly spaced), since its eigen-decomposition costs O(n³); the embedding is the
projector output that the contrastive loss sees (f in eq. 1), the diameter uses the same unit-norm vectors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["augmentation_graph", "laplacian_eigenvalues", "cluster_count", "category_diameter", "spectrum_scores",
           "fit_accuracy_curve"]


def augmentation_graph(features: Tensor | np.ndarray, temperature: float) -> Tensor:
    """W (n, n) float64: exp((z_i·z_j − 1)/τ) of the L2-normalised rows (eq. 9), zero diagonal."""
    z = F.normalize(torch.as_tensor(np.asarray(features) if not isinstance(features, Tensor) else features)
                    .double(), dim=1)
    weights = torch.exp((z @ z.t() - 1.0) / float(temperature))
    weights.fill_diagonal_(0.0)
    return weights


def laplacian_eigenvalues(weights: Tensor | np.ndarray) -> Tensor:
    """Ascending eigenvalues of the normalised Laplacian I − D^-1/2 W D^-1/2 of a symmetric W >= 0.
    An isolated node (degree 0) is its own component: eigenvalue 0."""
    w = torch.as_tensor(np.asarray(weights) if not isinstance(weights, Tensor) else weights).double()
    if w.dim() != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"the graph must be a square matrix, got shape {tuple(w.shape)}")
    degree = w.sum(dim=1)
    scale = torch.where(degree > 0, degree.clamp_min(1e-300).rsqrt(), torch.zeros_like(degree))
    laplacian = torch.eye(w.shape[0], dtype=w.dtype) - scale[:, None] * w * scale[None, :]
    laplacian = torch.where(degree[:, None] > 0, laplacian, torch.zeros_like(laplacian))  # isolated rows: 0
    return torch.linalg.eigvalsh(0.5 * (laplacian + laplacian.t())).clamp_min(0.0)


def cluster_count(eigenvalues: Tensor | np.ndarray, epsilon: float = 0.1) -> int:
    """κ = Σ_i 1[v_i < ε] (ActCLR+ eq. 15)."""
    return int((torch.as_tensor(np.asarray(eigenvalues)) < epsilon).sum())


def category_diameter(features: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> dict[str, float]:
    """Mean over classes of the largest distance between two unit-norm features of the class (eq. 19), the
    mean distance between class centres (the means p of eq. 20), and the centre distance over the diameter."""
    z = F.normalize(torch.as_tensor(np.asarray(features)).double(), dim=1)
    labels = np.asarray(labels)
    diameters, centres = [], []
    for k in np.unique(labels):
        members = z[torch.from_numpy(labels == k)]
        centres.append(members.mean(dim=0))
        if members.shape[0] >= 2:
            diameters.append(torch.cdist(members, members).max().item())
    diameter = float(np.mean(diameters)) if diameters else float("nan")
    if len(centres) >= 2:
        c = torch.stack(centres)
        between = torch.cdist(c, c)
        n = c.shape[0]
        centre_distance = float(between.sum().item() / (n * (n - 1)))
    else:
        centre_distance = float("nan")
    return {"diameter": diameter, "centre_distance": centre_distance,
            "distance_to_diameter": centre_distance / diameter if diameter > 0 else float("nan")}


def spectrum_scores(embeddings: Tensor | np.ndarray, labels: Tensor | np.ndarray, temperature: float,
                    epsilon: float = 0.1) -> dict[str, Any]:
    """κ, the eigenvalues and the category diameter of one set of embeddings."""
    eigenvalues = laplacian_eigenvalues(augmentation_graph(embeddings, temperature))
    return {"kappa": cluster_count(eigenvalues, epsilon), "eigenvalues": eigenvalues.tolist(),
            "epsilon": float(epsilon), "temperature": float(temperature), "nodes": int(eigenvalues.numel()),
            **category_diameter(embeddings, labels)}


def fit_accuracy_curve(kappa: np.ndarray, accuracy: np.ndarray) -> tuple[float, float, float] | None:
    """Least-squares (a, b, c) of accuracy = a − b·κ − c/κ (the form of ActCLR+ eqs. 17-18); None with fewer than
    three distinct κ > 0."""
    kappa, accuracy = np.asarray(kappa, dtype=float), np.asarray(accuracy, dtype=float)
    keep = kappa > 0
    if len(np.unique(kappa[keep])) < 3:
        return None
    design = np.stack([np.ones(keep.sum()), -kappa[keep], -1.0 / kappa[keep]], axis=1)
    (a, b, c), *_ = np.linalg.lstsq(design, accuracy[keep], rcond=None)
    return float(a), float(b), float(c)
