"""κ (ActCLR+ eq. 15) on graphs whose cluster count is known, the eq. 9 graph and the category diameter by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skelssl.analysis.spectrum import (augmentation_graph, category_diameter, cluster_count, fit_accuracy_curve,
                                       laplacian_eigenvalues, spectrum_scores)


def complete_blocks(sizes, between=0.0):
    n = sum(sizes)
    w = np.full((n, n), between)
    start = 0
    for size in sizes:
        w[start:start + size, start:start + size] = 1.0
        start += size
    np.fill_diagonal(w, 0.0)
    return w


def test_eigenvalues_of_disjoint_complete_graphs():
    # K_m's normalised Laplacian has eigenvalues 0 (once) and m/(m-1) (m-1 times)
    got = laplacian_eigenvalues(complete_blocks([4, 5, 6])).numpy()
    expected = sorted([0.0] * 3 + [4 / 3] * 3 + [5 / 4] * 4 + [6 / 5] * 5)
    np.testing.assert_allclose(got, expected, atol=1e-10)
    assert cluster_count(got, 0.1) == 3
    assert cluster_count(laplacian_eigenvalues(complete_blocks([7])), 0.1) == 1


def test_weak_links_between_clusters_keep_the_count():
    eigenvalues = laplacian_eigenvalues(complete_blocks([5, 5, 5, 5], between=1e-3))
    assert cluster_count(eigenvalues, 0.1) == 4
    assert 0 < eigenvalues[1] < 0.01 and eigenvalues[4] > 1.0  # three small but non-zero, then a gap
    # strong links merge them into one cluster
    assert cluster_count(laplacian_eigenvalues(complete_blocks([5, 5, 5, 5], between=1.0)), 0.1) == 1


def test_graph_from_features_is_eq9_kernel():
    z = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])  # normalised inside: rows 1 and 3 coincide
    w = augmentation_graph(z, temperature=0.5).numpy()
    np.testing.assert_allclose(w, [[0, np.exp(-2), 1], [np.exp(-2), 0, np.exp(-2)], [1, np.exp(-2), 0]])


def blobs_on_sphere(centres, per_class=30, spread=0.02, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, dtype=float)
    labels = np.repeat(np.arange(len(centres)), per_class)
    points = centres[labels] + rng.normal(scale=spread, size=(len(labels), centres.shape[1]))
    return points / np.linalg.norm(points, axis=1, keepdims=True), labels


def test_kappa_counts_feature_clusters():
    eye = np.eye(8)
    features, labels = blobs_on_sphere(eye[:4])
    scores = spectrum_scores(features, labels, temperature=0.1)
    assert scores["kappa"] == 4 and scores["nodes"] == 120
    # two of the centres moved together (as a stronger augmentation would connect them): one cluster fewer
    merged = eye[:4].copy()
    merged[1] = eye[0] + 0.02 * eye[5]
    assert spectrum_scores(*blobs_on_sphere(merged), temperature=0.1)["kappa"] == 3


def test_category_diameter_by_hand():
    features = [[1, 0], [0, 1], [-1, 0], [0, -1], [0, -1]]
    labels = [0, 0, 0, 1, 1]
    got = category_diameter(features, labels)
    # class 0: |(1,0) - (-1,0)| = 2; class 1: two equal points, 0 -> mean 1.0
    # centres (0, 1/3) and (0, -1): 4/3 apart
    assert got["diameter"] == pytest.approx(1.0)
    assert got["centre_distance"] == pytest.approx(4 / 3)
    assert got["distance_to_diameter"] == pytest.approx(4 / 3)


def test_accuracy_curve_recovers_eq17_form():
    kappa = np.array([5.0, 10, 20, 40, 80, 160])
    accuracy = 60.97 - 0.069 * kappa - 63.64 / kappa  # ActCLR+ eq. 17
    np.testing.assert_allclose(fit_accuracy_curve(kappa, accuracy), (60.97, 0.069, 63.64), rtol=1e-8)
    assert fit_accuracy_curve(np.array([5.0, 5.0, 10.0]), np.array([1.0, 2.0, 3.0])) is None
