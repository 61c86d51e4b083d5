"""Skeleton layouts: joints, edges, body parts, left/right pairs, bones and the graph adjacency.

All indices are 0-based. Edges are stored as (joint, parent) pairs and form a tree (or several): every joint
has at most one parent and walking parents never returns to a joint (no cycle), so the bone stream is defined;
a joint without a parent (in the shipped layouts, the centre joint) has a zero bone.

A layout from a YAML file or a dict is checked before use: unknown or missing keys, values of the wrong kind
(a float or a boolean where a joint index belongs), indices out of range, duplicate joint names, a joint with
two parents, an edge cycle, parts that do not cover every joint once and joints in two left/right pairs each
raise LayoutError (a UserError and a ValueError) naming the file and the key.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.errors import UserError
from skelssl.yamlio import load_yaml

__all__ = ["Layout", "LayoutError", "NTU25", "KINECT20", "COCO17", "SBU15", "get_layout", "available_layouts"]


class LayoutError(UserError, ValueError):
    """A layout (YAML file, dict or built-in definition) is malformed; the message names the source and key."""


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
    source: str = field(default="", compare=False, repr=False)  # where it was read from, for messages

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
        """A layout from a mapping (a parsed YAML file, meta.json), checked key by key (see the module doc)."""
        if not isinstance(spec, dict):
            raise LayoutError(f"{source}: a layout must be a mapping of {list(_REQUIRED_KEYS + _OPTIONAL_KEYS)}, "
                              f"found {type(spec).__name__}")
        unknown = [str(k) for k in spec if k not in _REQUIRED_KEYS + _OPTIONAL_KEYS]
        if unknown:
            close = difflib.get_close_matches(unknown[0], _REQUIRED_KEYS + _OPTIONAL_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise LayoutError(f"{source}: unknown key '{unknown[0]}'{hint}; a layout has the keys "
                              f"{list(_REQUIRED_KEYS)} and optionally {list(_OPTIONAL_KEYS)}")
        missing = [k for k in _REQUIRED_KEYS if k not in spec]
        if missing:
            raise LayoutError(f"{source}: missing key(s) {missing}; a layout needs {list(_REQUIRED_KEYS)} "
                              f"(and optionally {list(_OPTIONAL_KEYS)})")
        name = spec["name"]
        if not isinstance(name, str) or not name.strip():
            raise LayoutError(f"{source}: 'name' must be a non-empty text, found {name!r}")
        names = _sequence(spec["joint_names"], source, "joint_names")
        for i, joint in enumerate(names):
            if not isinstance(joint, str) or not joint.strip():
                raise LayoutError(f"{source}: joint_names[{i}] must be a non-empty text, found {joint!r}")
        layout = cls(
            name=name,
            joint_names=tuple(names),
            edges=_pairs(spec["edges"], source, "edges"),
            center=_index(spec["center"], source, "center"),
            parts=_groups(spec["parts"], source, "parts"),
            hands=_groups(spec.get("hands") or {}, source, "hands"),
            left_right=_pairs(spec.get("left_right") or [], source, "left_right"),
            source=source,
        )
        return layout

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Layout":
        spec = load_yaml(path, "layout YAML file", LayoutError)
        return cls.from_dict(spec, source=str(path))


_REQUIRED_KEYS = ("name", "joint_names", "edges", "center", "parts")
_OPTIONAL_KEYS = ("hands", "left_right")


def _sequence(value: Any, source: str, key: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise LayoutError(f"{source}: '{key}' must be a list, found {type(value).__name__} {str(value)[:40]!r}")
    return list(value)


def _index(value: Any, source: str, key: str) -> int:
    # bool is an int in Python and YAML's `1.0` a float: neither is a joint index.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise LayoutError(f"{source}: {key} must be an integer joint index, found {value!r}")
    return int(value)


def _pairs(value: Any, source: str, key: str) -> tuple[tuple[int, int], ...]:
    pairs = []
    for i, pair in enumerate(_sequence(value, source, key)):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise LayoutError(f"{source}: {key}[{i}] must be a pair [a, b] of joint indices, found {pair!r}")
        pairs.append((_index(pair[0], source, f"{key}[{i}]"), _index(pair[1], source, f"{key}[{i}]")))
    return tuple(pairs)


def _groups(value: Any, source: str, key: str) -> dict[str, tuple[int, ...]]:
    if not isinstance(value, dict):
        raise LayoutError(f"{source}: '{key}' must be a mapping of group name -> joint indices, found "
                          f"{type(value).__name__}")
    return {str(name): tuple(_index(j, source, f"{key}.{name}") for j in _sequence(joints, source, f"{key}.{name}"))
            for name, joints in value.items()}


def validate_layout(layout: Layout) -> None:
    """Raise LayoutError naming the first inconsistency in a layout (see the module doc)."""
    v = len(layout.joint_names)
    where = layout.source or f"layout '{layout.name}'"
    if v == 0:
        raise LayoutError(f"{where}: no joints")
    seen: dict[str, int] = {}
    for i, joint in enumerate(layout.joint_names):
        if joint in seen:
            raise LayoutError(f"{where}: joint_names[{i}] '{joint}' repeats joint_names[{seen[joint]}]")
        seen[joint] = i
    if not 0 <= layout.center < v:
        raise LayoutError(f"{where}: centre joint {layout.center} is outside 0..{v - 1}")
    parent: dict[int, int] = {}
    for i, (a, b) in enumerate(layout.edges):
        if not (0 <= a < v and 0 <= b < v) or a == b:
            raise LayoutError(f"{where}: edges[{i}] ({a}, {b}) is not a pair of distinct joints in 0..{v - 1}")
        if a in parent:
            raise LayoutError(f"{where}: edges[{i}]: joint {a} already has the parent {parent[a]} (edges are "
                              "(joint, parent) and a joint has one parent)")
        parent[a] = b
    for start in parent:  # walking parents must end at a root: a joint on a cycle has no bone
        path, j = [start], parent[start]
        while j in parent and j not in path:
            path.append(j)
            j = parent[j]
        if j in path:
            cycle = path[path.index(j):] + [j]
            names = " -> ".join(layout.joint_names[k] for k in cycle)
            raise LayoutError(f"{where}: 'edges' contain a cycle ({names}); edges are (joint, parent) pairs "
                              "of a tree, so that every joint has a bone")
    covered = sorted(j for joints in layout.parts.values() for j in joints)
    if covered != list(range(v)):
        twice = sorted({j for j in covered if covered.count(j) > 1})
        absent = sorted(set(range(v)) - set(covered))
        outside = sorted({j for j in covered if not 0 <= j < v})
        raise LayoutError(f"{where}: 'parts' must cover every joint 0..{v - 1} exactly once (missing {absent[:5]}, "
                          f"twice {twice[:5]}, outside {outside[:5]})")
    in_pair: dict[int, int] = {}
    for i, (left, right) in enumerate(layout.left_right):
        if not (0 <= left < v and 0 <= right < v) or left == right:
            raise LayoutError(f"{where}: left_right[{i}] ({left}, {right}) is not a pair of distinct joints in "
                              f"0..{v - 1}")
        for joint in (left, right):
            if joint in in_pair:  # the flip must be a permutation
                raise LayoutError(f"{where}: left_right[{i}]: joint {joint} is already in left_right"
                                  f"[{in_pair[joint]}]")
            in_pair[joint] = i
    for name, joints in layout.hands.items():
        if any(not 0 <= j < v for j in joints):
            raise LayoutError(f"{where}: hands.{name} names a joint outside 0..{v - 1}")


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

# SBU Kinect Interaction's 15 joints (OpenNI / NiTE order, its README): no wrists, one hand point per arm, the
# torso is the centre.
SBU15 = Layout(
    name="sbu15",
    joint_names=(
        "head", "neck", "torso",
        "left_shoulder", "left_elbow", "left_hand",
        "right_shoulder", "right_elbow", "right_hand",
        "left_hip", "left_knee", "left_foot",
        "right_hip", "right_knee", "right_foot",
    ),
    edges=(
        (0, 1), (1, 2), (3, 1), (4, 3), (5, 4), (6, 1), (7, 6), (8, 7),
        (9, 2), (10, 9), (11, 10), (12, 2), (13, 12), (14, 13),
    ),
    center=2,
    parts={
        "trunk": (0, 1, 2),
        "left_arm": (3, 4, 5),
        "right_arm": (6, 7, 8),
        "left_leg": (9, 10, 11),
        "right_leg": (12, 13, 14),
    },
    hands={"left_hand": (5,), "right_hand": (8,)},
    left_right=((3, 6), (4, 7), (5, 8), (9, 12), (10, 13), (11, 14)),
)

_LAYOUTS = {layout.name: layout for layout in (NTU25, KINECT20, COCO17, SBU15)}


def available_layouts() -> list[str]:
    return sorted(_LAYOUTS)


def get_layout(spec: str | dict[str, Any] | Layout) -> Layout:
    """A layout by name ('ntu25', 'kinect20', 'coco17'), from a dict (custom data), or a path to a YAML file."""
    if isinstance(spec, Layout):
        return spec
    if isinstance(spec, dict):
        return Layout.from_dict(spec)
    if not isinstance(spec, (str, Path)):
        raise LayoutError(f"a layout is a name, a YAML file or a mapping, found {type(spec).__name__}")
    if spec in _LAYOUTS:
        return _LAYOUTS[spec]
    if str(spec).endswith((".yaml", ".yml")) and Path(spec).is_file():
        return Layout.from_yaml(spec)
    raise LayoutError(f"unknown skeleton layout '{spec}'; known layouts: {', '.join(available_layouts())} "
                     "(or give a layout YAML file)")
