"""Skeleton layouts: valid edges, trees rooted at the centre, mirrored left/right pairs, bones, parts."""

from __future__ import annotations

import numpy as np
import pytest

from skelssl.skeleton.layouts import KINECT20, NTU25, Layout, get_layout

LAYOUTS = [NTU25, KINECT20]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l.name)
def test_edges_form_a_tree_rooted_at_the_centre(layout):
    v = layout.num_joints
    assert len(layout.edges) == v - 1
    parent = dict(layout.edges)
    assert layout.center not in parent
    for joint in range(v):  # every joint reaches the centre by walking parents, without cycles
        seen, j = set(), joint
        while j != layout.center:
            assert j not in seen
            seen.add(j)
            j = parent[j]
    assert np.isfinite(layout.hop_distance()).all()


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l.name)
def test_left_right_pairs_mirror_by_name(layout):
    names = layout.joint_names
    for left, right in layout.left_right:
        assert names[left].startswith("left_") and names[right].startswith("right_")
        assert names[left][len("left_"):] == names[right][len("right_"):]
    perm = layout.flip_permutation
    assert sorted(perm.tolist()) == list(range(layout.num_joints))
    assert (perm[perm] == np.arange(layout.num_joints)).all()  # flipping twice is the identity
    # every left_* joint has its right_* partner
    lefts = {n[len("left_"):] for n in names if n.startswith("left_")}
    rights = {n[len("right_"):] for n in names if n.startswith("right_")}
    assert lefts == rights and len(layout.left_right) == len(lefts)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l.name)
def test_mirrored_edges_are_edges(layout):
    perm = layout.flip_permutation
    edges = {frozenset(e) for e in layout.edges}
    assert {frozenset((perm[a], perm[b])) for a, b in layout.edges} == edges


def test_ntu_known_joints_and_bones():
    assert NTU25.center == 20 and NTU25.joint_names[20] == "spine_shoulder"
    bones = dict(NTU25.bone_pairs)
    assert bones[20] == 20  # the centre's bone is zero
    assert bones[3] == 2 and bones[7] == 6 and bones[0] == 1  # head->neck, hand->wrist, base->mid spine
    assert NTU25.adjacency().sum() == 25 + 2 * 24


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l.name)
def test_parts_partition_and_part_index(layout):
    index = layout.part_index()
    assert (index >= 0).all()
    assert set(layout.parts) == {"trunk", "left_arm", "right_arm", "left_leg", "right_leg"}
    for hand in layout.hands.values():
        assert all(layout.joint_names[j].startswith(("left", "right")) for j in hand)


def test_custom_layout_roundtrip_and_errors(tmp_path):
    spec = NTU25.to_dict() | {"name": "mine"}
    assert Layout.from_dict(spec).edges == NTU25.edges
    path = tmp_path / "layout.yaml"
    path.write_text("name: bad\njoint_names: [a, b]\nedges: [[0, 5]]\ncenter: 0\nparts: {all: [0, 1]}\n")
    with pytest.raises(ValueError, match="edge"):
        Layout.from_yaml(path)
    with pytest.raises(ValueError, match="unknown skeleton layout"):
        get_layout("ntu26")
