"""Skeleton layouts: joints, edges, body parts, left/right pairs, bones and the graph adjacency.

All indices are 0-based. Edges are stored as (joint, parent) pairs: walking parents from any joint reaches
the layout's centre joint, which is also the root of the bone stream (its own bone is zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Layout", "NTU25", "KINECT20", "COCO17", "get_layout", "available_layouts"]


@dataclass(frozen=True)
class Layout:
    """A skeleton layout.

    name: identifier used in configs and prepared-dataset metadata.
    joint_names: one name per joint, in data order.
    edges: (joint, parent) pairs, 0-based; the graph used by ST-GCN and the bone stream.
    center: the joint that the spatial partition of ST-GCN and centring use as reference.
    parts: a partition of all joints into body parts (every joint in exactly one part).
    hands: sub-groups of the arm parts (hand, fingers), for augmentations that act on hands.
    left_right: (left joint, right joint) pairs that a spatial flip swaps.
    """

    name: str
    joint_names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    center: int
    parts: dict[str, tuple[int, ...]] = field(hash=False)
    hands: dict[str, tuple[int, ...]] = field(hash=False)
    left_right: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        validate_layout(self)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def bone_pairs(self) -> tuple[tuple[int, int], ...]:
        """(joint, parent) for every joint, the centre paired with itself (zero bone)."""
        parent = dict(self.edges)
        return tuple((j, parent.get(j, j)) for j in range(self.num_joints))

    @property
    def flip_permutation(self) -> np.ndarray:
        """Joint permutation that swaps left and right."""
        perm = np.arange(self.num_joints)
        for left, right in self.left_right:
            perm[left], perm[right] = right, left
        return perm

    def adjacency(self, self_loops: bool = True) -> np.ndarray:
        """Symmetric 0/1 adjacency matrix (V, V)."""
        adj = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for a, b in self.edges:
            adj[a, b] = adj[b, a] = 1.0
        if self_loops:
            adj[np.arange(self.num_joints), np.arange(self.num_joints)] = 1.0
        return adj

    def hop_distance(self) -> np.ndarray:
        """Shortest-path hop count between joints (inf when disconnected)."""
        adj = self.adjacency(self_loops=False) > 0
        dist = np.full((self.num_joints, self.num_joints), np.inf)
        np.fill_diagonal(dist, 0)
        reach = np.eye(self.num_joints, dtype=bool)
        for hop in range(1, self.num_joints):
            reach_next = reach | (reach.astype(np.int64) @ adj.astype(np.int64) > 0)
            dist[reach_next & ~reach] = hop
            if (reach_next == reach).all():
                break
            reach = reach_next
        return dist

    def part_index(self) -> np.ndarray:
        """For each joint, the index of its body part in `parts` order."""
        index = np.full(self.num_joints, -1, dtype=np.int64)
        for i, joints in enumerate(self.parts.values()):
            index[list(joints)] = i
        return index

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "joint_names": list(self.joint_names),
            "edges": [list(e) for e in self.edges],
            "center": self.center,
            "parts": {k: list(v) for k, v in self.parts.items()},
            "hands": {k: list(v) for k, v in self.hands.items()},
            "left_right": [list(p) for p in self.left_right],
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any], source: str = "layout") -> "Layout":
        required = ["name", "joint_names", "edges", "center", "parts"]
        missing = [k for k in required if k not in spec]
        if missing:
            raise ValueError(f"{source}: missing key(s) {missing}; a layout needs {required} "
                             "(and optionally 'hands', 'left_right')")
        try:
            return cls(
                name=str(spec["name"]),
                joint_names=tuple(str(j) for j in spec["joint_names"]),
                edges=tuple((int(a), int(b)) for a, b in spec["edges"]),
                center=int(spec["center"]),
                parts={str(k): tuple(int(j) for j in v) for k, v in spec["parts"].items()},
                hands={str(k): tuple(int(j) for j in v) for k, v in (spec.get("hands") or {}).items()},
                left_right=tuple((int(a), int(b)) for a, b in (spec.get("left_right") or [])),
            )
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Layout":
        from omegaconf import OmegaConf

        spec = OmegaConf.to_container(OmegaConf.load(str(path)), resolve=True)
        if not isinstance(spec, dict):
            raise ValueError(f"{path}: a layout file must be a YAML mapping")
        return cls.from_dict(spec, source=str(path))


def validate_layout(layout: Layout) -> None:
    """Raise ValueError naming the first inconsistency in a layout."""
    v = len(layout.joint_names)
    where = f"layout '{layout.name}'"
    if v == 0:
        raise ValueError(f"{where}: no joints")
    if not 0 <= layout.center < v:
        raise ValueError(f"{where}: centre joint {layout.center} is outside 0..{v - 1}")
    for a, b in layout.edges:
        if not (0 <= a < v and 0 <= b < v) or a == b:
            raise ValueError(f"{where}: edge ({a}, {b}) is not a pair of distinct joints in 0..{v - 1}")
    children = [a for a, _ in layout.edges]
    if len(set(children)) != len(children):
        raise ValueError(f"{where}: a joint has more than one parent in 'edges' (edges are (joint, parent))")
    covered = sorted(j for joints in layout.parts.values() for j in joints)
    if covered != list(range(v)):
        raise ValueError(f"{where}: 'parts' must cover every joint exactly once")
    for left, right in layout.left_right:
        if not (0 <= left < v and 0 <= right < v) or left == right:
            raise ValueError(f"{where}: left/right pair ({left}, {right}) is invalid")
    for joints in layout.hands.values():
        if any(not 0 <= j < v for j in joints):
            raise ValueError(f"{where}: a hand group names a joint outside 0..{v - 1}")


def _edges_1based(pairs: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    return tuple((a - 1, b - 1) for a, b in pairs)


# NTU RGB+D (Kinect v2), 25 joints. Edges are ST-GCN's NTU graph (joint, parent), 1-based as in its paper.
NTU25 = Layout(
    name="ntu25",
    joint_names=(
        "spine_base", "spine_mid", "neck", "head",
        "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand",
        "left_hip", "left_knee", "left_ankle", "left_foot",
        "right_hip", "right_knee", "right_ankle", "right_foot",
        "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
    ),
    edges=_edges_1based([
        (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10),
        (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
        (22, 23), (23, 8), (24, 25), (25, 12),
    ]),
    center=20,
    # The five body parts of ActCLR / Skeleton Mix: trunk, two arms (with hands), two legs.
    parts={
        "trunk": (0, 1, 2, 3, 20),
        "left_arm": (4, 5, 6, 7, 21, 22),
        "right_arm": (8, 9, 10, 11, 23, 24),
        "left_leg": (12, 13, 14, 15),
        "right_leg": (16, 17, 18, 19),
    },
    hands={"left_hand": (6, 7, 21, 22), "right_hand": (10, 11, 23, 24)},
    left_right=_edges_1based([(5, 9), (6, 10), (7, 11), (8, 12), (13, 17), (14, 18), (15, 19), (16, 20),
                              (22, 24), (23, 25)]),
)

# Kinect v1, 20 joints, in the order NW-UCLA stores them (hip centre first).
KINECT20 = Layout(
    name="kinect20",
    joint_names=(
        "hip_center", "spine", "shoulder_center", "head",
        "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand",
        "left_hip", "left_knee", "left_ankle", "left_foot",
        "right_hip", "right_knee", "right_ankle", "right_foot",
    ),
    edges=(
        (0, 1), (1, 2), (3, 2), (4, 2), (5, 4), (6, 5), (7, 6), (8, 2), (9, 8), (10, 9), (11, 10),
        (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17), (19, 18),
    ),
    center=2,
    parts={
        "trunk": (0, 1, 2, 3),
        "left_arm": (4, 5, 6, 7),
        "right_arm": (8, 9, 10, 11),
        "left_leg": (12, 13, 14, 15),
        "right_leg": (16, 17, 18, 19),
    },
    hands={"left_hand": (6, 7), "right_hand": (10, 11)},
    left_right=((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19)),
)

# COCO-17 keypoints, as 2D pose estimators on video give them (OpenPose's COCO model, HRNet, RTMPose,
# ViTPose, YOLO-pose). It has no spine: the nose is the centre (the root of the bone tree); shoulders hang
# from the nose, hips from the shoulders of their side, eyes from the nose and ears from the eyes.
COCO17 = Layout(
    name="coco17",
    joint_names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    edges=(
        (1, 0), (2, 0), (3, 1), (4, 2), (5, 0), (6, 0), (7, 5), (8, 6), (9, 7), (10, 8),
        (11, 5), (12, 6), (13, 11), (14, 12), (15, 13), (16, 14),
    ),
    center=0,
    parts={
        "head": (0, 1, 2, 3, 4),
        "left_arm": (5, 7, 9),
        "right_arm": (6, 8, 10),
        "left_leg": (11, 13, 15),
        "right_leg": (12, 14, 16),
    },
    hands={"left_hand": (9,), "right_hand": (10,)},
    left_right=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
)

_LAYOUTS = {layout.name: layout for layout in (NTU25, KINECT20, COCO17)}


def available_layouts() -> list[str]:
    return sorted(_LAYOUTS)


def get_layout(spec: str | dict[str, Any] | Layout) -> Layout:
    """A layout by name ('ntu25', 'kinect20', 'coco17'), from a dict (custom data), or a path to a YAML file."""
    if isinstance(spec, Layout):
        return spec
    if isinstance(spec, dict):
        return Layout.from_dict(spec)
    if spec in _LAYOUTS:
        return _LAYOUTS[spec]
    if str(spec).endswith((".yaml", ".yml")) and Path(spec).is_file():
        return Layout.from_yaml(spec)
    raise ValueError(f"unknown skeleton layout '{spec}'; known layouts: {', '.join(available_layouts())} "
                     "(or give a layout YAML file)")
