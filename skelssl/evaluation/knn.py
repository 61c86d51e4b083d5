"""KNN evaluation of frozen features, in the two variants the field reports.

- Weighted kNN of InstDisc (Wu et al. 2018, Sec. 3.4), used by ActCLR's KNN monitor with k ∈ {10, 20, 40},
  t = 0.1: cosine similarities of L2-normalised features, the k nearest training samples vote for their
  class with weight exp(sim / t), the class with the largest summed weight wins.
- 1-NN with cosine distance, as HiCo/CMD/A²MC report (they call scikit-learn; here it is a torch matmul).

Both work in chunks of test samples so memory stays at chunk_size × N_train similarities.
Ties (equal summed votes) go to the lowest class index.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _as_tensor(values: Tensor | np.ndarray | Sequence, device: torch.device | None = None) -> Tensor:
    tensor = values if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values))
    return tensor.to(device) if device is not None else tensor


def _normalized(features: Tensor | np.ndarray, device: torch.device | None = None) -> Tensor:
    return F.normalize(_as_tensor(features, device).float(), dim=1)


def weighted_knn_predict(
    train_feats: Tensor | np.ndarray,
    train_labels: Tensor | np.ndarray,
    test_feats: Tensor | np.ndarray,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> Tensor:
    """InstDisc weighted kNN predictions (N_test,) computed on the training features' device.

    k larger than the training set is clamped to its size.
    """
    train = _normalized(train_feats)
    device = train.device
    labels = _as_tensor(train_labels, device).long()
    k = min(int(k), train.shape[0])
    predictions = []
    for start in range(0, len(test_feats), chunk_size):
        test = _normalized(test_feats[start:start + chunk_size], device)
        similarity = test @ train.T                                 # cosine, (B, N_train)
        top_sim, top_idx = similarity.topk(k, dim=1)
        weights = (top_sim / temperature).exp()                     # InstDisc vote weight exp(s/t)
        votes = torch.zeros(test.shape[0], num_classes, device=device)
        votes.scatter_add_(1, labels[top_idx], weights)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long, device=device)


def nn1_cosine_predict(
    train_feats: Tensor | np.ndarray,
    train_labels: Tensor | np.ndarray,
    test_feats: Tensor | np.ndarray,
    chunk_size: int = 1024,
) -> Tensor:
    """1-nearest-neighbour predictions under cosine distance (= scikit-learn's metric="cosine")."""
    train = _normalized(train_feats)
    device = train.device
    labels = _as_tensor(train_labels, device).long()
    predictions = []
    for start in range(0, len(test_feats), chunk_size):
        test = _normalized(test_feats[start:start + chunk_size], device)
        predictions.append(labels[(test @ train.T).argmax(dim=1)])
    return torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long, device=device)


def accuracy(predictions: Tensor, labels: Tensor | np.ndarray) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    labels = _as_tensor(labels, predictions.device).long()
    if labels.numel() == 0:
        return float("nan")
    return (predictions == labels).sum().item() / labels.numel()


def knn_evaluate(
    train_feats: Tensor | np.ndarray,
    train_labels: Tensor | np.ndarray,
    test_feats: Tensor | np.ndarray,
    test_labels: Tensor | np.ndarray,
    num_classes: int,
    ks: Sequence[int] = (10, 20, 40),
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Top-1 accuracies in [0, 1]: {"1nn_cosine": .., "weighted_k10": .., "weighted_k20": .., ...}."""
    results = {"1nn_cosine": accuracy(nn1_cosine_predict(train_feats, train_labels, test_feats, chunk_size),
                                      test_labels)}
    for k in ks:
        predictions = weighted_knn_predict(train_feats, train_labels, test_feats, num_classes, k=k,
                                           temperature=temperature, chunk_size=chunk_size)
        results[f"weighted_k{k}"] = accuracy(predictions, test_labels)
    return results
