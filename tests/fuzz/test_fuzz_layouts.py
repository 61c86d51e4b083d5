"""Fuzzing layout YAML files: generated valid layouts with one damage, against a reference validator written
from the rules in skelssl/skeleton/layouts.py's docstring. A layout that passes must have a bone stream: no
joint on an edge cycle."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import yaml
from hypothesis import given
from hypothesis import strategies as st

from skelssl.skeleton.layouts import Layout, get_layout
from tests.fuzz.harness import Reject, fuzz_settings, mutate, outcome

KEYS = {"name", "joint_names", "edges", "center", "parts", "hands", "left_right"}
REQUIRED = {"name", "joint_names", "edges", "center", "parts"}
HOSTILE_VALUES = [1.5, 1.0, True, None, "1", -1, 99, [0], [0, 1, 2], {"a": 0}, "", float("nan")]


def _parse_yaml(data: bytes):
    """YAML as a layout file is read: by OmegaConf (a key given twice is an error), interpolations resolved.
    The YAML syntax is the library's; the layout rules checked below are the reference's own."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.create(data.decode("utf-8")), resolve=True)
    except Exception:
        raise Reject("not YAML") from None


def _int(v) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise Reject(f"not an index: {v!r}")
    return v


def ref_layout(spec) -> dict:
    if not isinstance(spec, dict) or not set(spec) <= KEYS or not REQUIRED <= set(spec):
        raise Reject("keys")
    if not isinstance(spec["name"], str) or not spec["name"].strip():
        raise Reject("name")
    names = spec["joint_names"]
    if not isinstance(names, list) or not names or \
            not all(isinstance(n, str) and n.strip() for n in names) or len(set(names)) != len(names):
        raise Reject("joint names")
    v = len(names)

    def pairs(value) -> list[tuple[int, int]]:
        if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
            raise Reject("pairs")
        out = [(_int(a), _int(b)) for a, b in value]
        if any(not (0 <= a < v and 0 <= b < v) or a == b for a, b in out):
            raise Reject("pair range")
        return out

    def groups(value) -> dict:
        if not isinstance(value, dict) or not all(isinstance(g, list) for g in value.values()):
            raise Reject("groups")
        return {k: [_int(j) for j in g] for k, g in value.items()}

    edges = pairs(spec["edges"])
    parent = {}
    for a, b in edges:
        if a in parent:
            raise Reject("two parents")
        parent[a] = b
    for joint in range(v):  # at most v steps up to a root, else a cycle
        j, steps = joint, 0
        while j in parent:
            j, steps = parent[j], steps + 1
            if steps > v:
                raise Reject("cycle")
    center = _int(spec["center"])
    if not 0 <= center < v:
        raise Reject("center")
    parts = groups(spec["parts"])
    if sorted(j for g in parts.values() for j in g) != list(range(v)):
        raise Reject("parts cover")
    hands = groups(spec.get("hands") or {})
    if any(not 0 <= j < v for g in hands.values() for j in g):
        raise Reject("hands range")
    left_right = pairs(spec.get("left_right") or [])
    flat = [j for p in left_right for j in p]
    if len(set(flat)) != len(flat):
        raise Reject("joint in two pairs")
    return {"edges": tuple(edges), "center": center, "joint_names": tuple(names), "left_right": tuple(left_right)}


@st.composite
def layout_spec(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    v = int(rng.integers(2, 9))
    order = rng.permutation(v)
    edges = [[int(order[i]), int(order[rng.integers(0, i)])] for i in range(1, v)]  # a tree rooted at order[0]
    cut = sorted(rng.choice(np.arange(1, v), size=min(2, v - 1), replace=False).tolist())
    groups = np.split(rng.permutation(v), cut)
    spec = {"name": "fuzzed", "joint_names": [f"j{i}" for i in range(v)], "edges": edges,
            "center": int(order[0]), "parts": {f"p{k}": g.tolist() for k, g in enumerate(groups) if len(g)},
            "hands": {"h": [int(rng.integers(v))]}, "left_right": [[int(order[0]), int(order[1])]]}
    kind = draw(st.sampled_from(["none", "unknown_key", "missing_key", "edge_value", "cycle", "two_parents",
                                 "dup_name", "name_value", "center_value", "parts_gap", "parts_twice",
                                 "parts_value", "lr_overlap", "lr_value", "hands_value", "yaml_bytes",
                                 "joint_names_text"]))
    if kind == "unknown_key":
        spec[draw(st.sampled_from(["left_rigth", "edge", "centre", "hand", "Parts", "joints"]))] = []
    elif kind == "missing_key":
        spec.pop(draw(st.sampled_from(sorted(KEYS))))
    elif kind == "edge_value" and edges:
        edges[int(rng.integers(len(edges)))][int(rng.integers(2))] = draw(st.sampled_from(HOSTILE_VALUES))
    elif kind == "cycle":  # the root gets a parent below it: every joint on the way is on a cycle
        edges.append([int(order[0]), int(order[-1])])
    elif kind == "two_parents" and v > 2:
        edges.append([int(order[-1]), int(order[0]) if edges[-1][1] != order[0] else int(order[1])])
    elif kind == "dup_name":
        spec["joint_names"][-1] = spec["joint_names"][0]
    elif kind == "name_value":
        spec["name"] = draw(st.sampled_from(HOSTILE_VALUES))
    elif kind == "center_value":
        spec["center"] = draw(st.sampled_from(HOSTILE_VALUES + [v]))
    elif kind == "parts_gap":
        first = next(iter(spec["parts"]))
        spec["parts"][first] = spec["parts"][first][1:]
    elif kind == "parts_twice":
        first = next(iter(spec["parts"]))
        spec["parts"][first] = spec["parts"][first] + spec["parts"][first][:1]
    elif kind == "parts_value":
        spec["parts"] = draw(st.sampled_from([[0, 1], "all", None, {"a": 0}, {"a": [1.5]}]))
    elif kind == "lr_overlap":
        spec["left_right"].append([int(order[1]), int(order[-1])] if v > 2 else [int(order[0]), int(order[1])])
    elif kind == "lr_value":
        spec["left_right"] = draw(st.sampled_from([[[0]], [[0, 0]], [[0, v]], [0, 1], "x", [[True, 0]]]))
    elif kind == "hands_value":
        spec["hands"] = draw(st.sampled_from([{"h": [v]}, {"h": [-1]}, {"h": 3}, [0], "h"]))
    elif kind == "joint_names_text":
        spec["joint_names"] = draw(st.sampled_from(["abc", 3, [1, 2], ["a", None], ["a", ""]]))
    text = yaml.safe_dump(spec, default_flow_style=None)
    if kind == "yaml_bytes":
        return kind, spec, mutate(draw, text.split("\n"))[1]
    return kind, spec, text.encode()


@given(layout_spec())
@fuzz_settings(examples=50)
def test_layout_yaml_agrees_with_reference_and_has_no_cycle(case):
    kind, spec, data = case
    try:
        expected = ref_layout(_parse_yaml(data))
    except Reject:
        expected = None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layout.yaml"
        path.write_bytes(data)
        result, value = outcome("layout yaml", lambda: get_layout(str(path)), path,
                                lines=data.count(b"\n") + 1)
    if expected is None:
        assert result == "error", f"{kind}: accepted a layout the rules reject: {spec}"
        return
    assert result == "result", f"{kind}: refused a valid layout: {value}"
    assert value.edges == expected["edges"] and value.center == expected["center"]
    assert value.joint_names == expected["joint_names"] and value.left_right == expected["left_right"]
    parents = [p for _, p in value.bone_pairs]
    for joint in range(value.num_joints):  # the bone stream: every joint reaches a root (zero bone)
        j, steps = joint, 0
        while parents[j] != j:
            j, steps = parents[j], steps + 1
            assert steps <= value.num_joints, f"{kind}: joint {joint} is on a cycle"
    assert sorted(value.flip_permutation.tolist()) == list(range(value.num_joints))


@given(layout_spec())
@fuzz_settings(examples=40)
def test_layout_dict_from_meta_json_agrees_with_reference(case):
    kind, spec, _ = case
    try:
        ref_layout(spec)
        valid = True
    except Reject:
        valid = False
    result, value = outcome("layout dict (meta.json)", lambda: Layout.from_dict(spec, source="meta.json"),
                            "meta.json")
    assert (result == "result") == valid, f"{kind}: {value}"
