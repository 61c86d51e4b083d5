"""NMI and Davies-Bouldin of k-means on features, against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from skelssl.analysis.clustering import cluster_scores


def test_two_tight_pairs_by_hand():
    theta = 0.1
    c, s = np.cos(theta), np.sin(theta)
    features = np.array([[c, s], [c, -s], [s, c], [-s, c]])  # pairs around (1, 0) and (0, 1)
    got = cluster_scores(features, np.array([0, 0, 1, 1]))
    # centroids (c, 0) and (0, c); each point at distance s from its centroid; DB = (s + s) / (sqrt(2) c)
    assert got["nmi"] == pytest.approx(1.0)
    assert got["davies_bouldin"] == pytest.approx(np.sqrt(2) * np.tan(theta))


def test_nmi_of_clusters_that_ignore_the_labels():
    # two clear clusters, but the labels cut across both: the clusters carry no information about them
    features = np.array([[1, 0.01], [1, -0.01], [0.01, 1], [-0.01, 1]])
    assert cluster_scores(features, np.array([0, 1, 0, 1]))["nmi"] == pytest.approx(0.0, abs=1e-12)
