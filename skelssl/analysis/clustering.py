"""How well k-means on a model's features recovers the classes: NMI and the Davies-Bouldin index.

k-means (skelssl.methods.core.kmeans, spherical: on L2-normalised features, as the KNN protocol compares them by
cosine) with as many clusters as classes, seeded; then
- NMI between the clusters and the classes (scikit-learn's normalized_mutual_info_score, arithmetic mean
  normalisation): 1 = the clusters are the classes, 0 = independent of them;
- the Davies-Bouldin index of the clustering on the normalised features (scikit-learn): the mean, over clusters,
  of the largest (spread_i + spread_j) / distance(centre_i, centre_j); lower = tighter, better separated.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from skelssl.methods.core.kmeans import kmeans

__all__ = ["cluster_scores"]


def cluster_scores(features: Tensor | np.ndarray, labels: np.ndarray, num_clusters: int | None = None,
                   seed: int = 0, iterations: int = 50) -> dict[str, float]:
    """{"nmi": in [0, 1], "davies_bouldin": >= 0, "clusters": k} of seeded spherical k-means on `features`."""
    from sklearn.metrics import davies_bouldin_score, normalized_mutual_info_score

    x = F.normalize(torch.as_tensor(np.asarray(features)).float(), dim=1)
    labels = np.asarray(labels)
    k = int(num_clusters or len(np.unique(labels)))
    result = kmeans(x, k, iterations=iterations, spherical=True,
                    generator=torch.Generator(device=x.device).manual_seed(seed), progress=True)
    assignments = result.assignments.cpu().numpy()
    nmi = normalized_mutual_info_score(labels, assignments)
    used = len(np.unique(assignments))
    db = davies_bouldin_score(x.cpu().numpy(), assignments) if 1 < used < len(x) else float("nan")
    return {"nmi": float(nmi), "davies_bouldin": float(db), "clusters": k}
