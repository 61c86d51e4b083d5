"""k-means (methods.core.kmeans): separable points on the sphere and in the plane, checked against the known
groups and against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skelssl.methods.core.kmeans import kmeans


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to a renaming of the clusters."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_spherical_kmeans_finds_three_directions_and_their_normalised_means():
    g = torch.Generator().manual_seed(0)
    directions = torch.eye(3, 8)  # three orthogonal unit vectors in 8-D
    labels = torch.arange(3).repeat_interleave(40)
    points = directions[labels] * torch.empty(120, 1).uniform_(0.5, 3.0, generator=g)  # norms differ: ignored
    points = points + 0.08 * torch.randn(120, 8, generator=g)
    result = kmeans(points, 3, spherical=True, generator=torch.Generator().manual_seed(1))
    assert _same_partition(result.assignments.numpy(), labels.numpy())
    unit = F.normalize(points, dim=1).numpy()
    for c in range(3):  # each center is the normalised mean of its (unit) members, computed here with numpy
        members = unit[result.assignments.numpy() == c]
        expected = members.mean(axis=0) / np.linalg.norm(members.mean(axis=0))
        np.testing.assert_allclose(result.centers[c].numpy(), expected, atol=1e-5)
    assert torch.allclose(result.centers.norm(dim=1), torch.ones(3))


def test_euclidean_kmeans_agrees_with_scikit_learn():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [6, 0], [0, 6], [6, 6]], dtype=np.float32)
    labels = rng.integers(0, 4, 200)
    points = centers[labels] + rng.normal(scale=0.5, size=(200, 2)).astype(np.float32)
    ours = kmeans(torch.from_numpy(points), 4, spherical=False, generator=torch.Generator().manual_seed(0))
    theirs = KMeans(4, n_init=10, random_state=0).fit(points)
    assert _same_partition(ours.assignments.numpy(), theirs.labels_)
    order = [int(np.argmin(np.linalg.norm(theirs.cluster_centers_ - c, axis=1))) for c in ours.centers.numpy()]
    np.testing.assert_allclose(ours.centers.numpy(), theirs.cluster_centers_[order], atol=1e-4)


def test_deterministic_given_the_generator_and_bad_k_refused():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(3))
    a = kmeans(x, 5, generator=torch.Generator().manual_seed(9))
    b = kmeans(x, 5, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a.centers, b.centers) and torch.equal(a.assignments, b.assignments)
    with pytest.raises(ValueError, match="between 1"):
        kmeans(x, 51)
