"""Graph partitions for spatial-temporal graph convolutions.

ST-GCN (Yan et al., AAAI 2018, Sec. 3.4 "spatial configuration partitioning", Eq. 6-10): the neighbourhood
of every root joint is split into three subsets by each neighbour's distance to the skeleton's centre
compared with the root's: the root group (the root itself and neighbours at the same distance), the
centripetal group (neighbours closer to the centre) and the centrifugal group (neighbours farther away).
Each subset keeps the entries of the degree-normalised adjacency with self loops, so the three subsets add
up to it.
"""

from __future__ import annotations

import numpy as np

from skelssl.skeleton.layouts import Layout

__all__ = ["normalized_adjacency", "spatial_partition"]


def normalized_adjacency(layout: Layout, max_hop: int = 1) -> np.ndarray:
    """A Λ^-1 (Eq. 9): 0/1 adjacency of joints within `max_hop` hops (self loops included), each column
    divided by its degree. Convention used throughout: entry [v, w] weights joint v's message to joint w,
    so every column sums to 1 (joint w averages its neighbours)."""
    reach = (layout.hop_distance() <= max_hop).astype(np.float64)
    return (reach / reach.sum(axis=0, keepdims=True)).astype(np.float32)


def spatial_partition(layout: Layout, max_hop: int = 1, official_code: bool = False) -> np.ndarray:
    """The subsets of ST-GCN's spatial strategy, shape (K, V, V); K = 3 (root, centripetal, centrifugal).

    Entry [k, v, w] is the normalised weight of neighbour v for root joint w in subset k (the encoder
    contracts over v). The reference is the joint `layout.center` (the paper says "gravity centre"; its
    code, and AimCLR/ActCLR, use this fixed joint). Subsets follow Eq. 6 of the paper over all pairs within
    `max_hop` hops, with true hop distances to the centre.

    official_code=True reproduces the official ST-GCN graph (also used by AimCLR/ActCLR) exactly: it
    measures the distance to the centre with the hop matrix cut at `max_hop` (so with max_hop=1 every joint
    more than one hop from the centre is "at distance inf", and inf == inf), returns 1 + 2·max_hop subsets
    (self loops; per hop: same-or-farther neighbours; closer neighbours). The parameter count is the same
    for max_hop=1; the default is the paper's definition.
    """
    if max_hop < 1:
        raise ValueError(f"max_hop must be >= 1, got {max_hop}")
    norm = normalized_adjacency(layout, max_hop)
    hop = layout.hop_distance()
    if official_code:
        hop = np.where(hop <= max_hop, hop, np.inf)
    to_center = hop[:, layout.center]
    neighbour_d = to_center[:, None]  # distance of neighbour v (rows)
    root_d = to_center[None, :]  # distance of root w (columns)
    # numpy's inf == inf is True, like the official code's comparison: unreachable pairs count as "same".
    same, closer, farther = neighbour_d == root_d, neighbour_d < root_d, neighbour_d > root_d

    def keep(mask: np.ndarray) -> np.ndarray:
        return np.where(mask, norm, 0.0).astype(np.float32)

    if not official_code:
        within = hop <= max_hop
        return np.stack([keep(within & same), keep(within & closer), keep(within & farther)])
    subsets = [keep(hop == 0)]
    for hop_count in range(1, max_hop + 1):
        ring = hop == hop_count
        subsets += [keep(ring & (same | farther)), keep(ring & closer)]
    return np.stack(subsets)
