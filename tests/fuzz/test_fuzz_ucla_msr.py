"""Fuzzing the NW-UCLA JSON and MSR Action3D text readers and their `prepare` commands, against references
written from the formats' descriptions (data/ucla.py, data/msr.py docstrings), independently of the readers."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from skelssl.data.msr import prepare_msr_action3d, read_msr_file
from skelssl.data.prepared import load_meta
from skelssl.data.ucla import prepare_nw_ucla, read_ucla_json
from tests.fuzz.harness import (COORDINATE_LIMIT, Reject, against_reference, fuzz_settings, mutate, outcome,
                                ref_float, ref_lines)
from tests.conftest import snapshot, staging_left, write_earlier_dataset

# ---------------------------------------------------------------------------------------------- NW-UCLA

HOSTILE_JSON = [3.7, True, False, "3", None, -1, 0, 11, 3.0, [3], {"a": 1}, 1e39, float("nan"), float("inf"),
                "", [], [[]], "abc", 10**30]


def ref_ucla(data: bytes) -> tuple[np.ndarray, int]:
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Reject("not JSON") from None
    if not isinstance(raw, dict) or not {"file_name", "skeletons", "label"} <= set(raw):
        raise Reject("keys")
    frames = raw["skeletons"]
    if not isinstance(frames, list) or not frames:
        raise Reject("skeletons")
    for frame in frames:
        if not isinstance(frame, list) or len(frame) != 20:
            raise Reject("frame")
        for joint in frame:
            if not isinstance(joint, list) or len(joint) != 3:
                raise Reject("joint")
            for v in joint:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not abs(v) <= COORDINATE_LIMIT:
                    raise Reject("value")
    label = raw["label"]
    if isinstance(label, bool) or not isinstance(label, (int, float)) or not math.isfinite(label) or \
            label != int(label) or not 1 <= label <= 10:
        raise Reject("label")
    return np.array(frames, dtype=np.float64).astype(np.float32), int(label) - 1


@st.composite
def ucla_file(draw) -> tuple[str, bytes]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frames = int(rng.integers(1, 5))
    doc = {"file_name": "a01_s01_e01_v01", "skeletons": rng.normal(size=(frames, 20, 3)).round(4).tolist(),
           "label": int(rng.integers(1, 11))}
    kind = draw(st.sampled_from(["none", "label", "value", "frame", "key", "top", "bytes", "deep"]))
    if kind == "label":
        doc["label"] = draw(st.sampled_from(HOSTILE_JSON))
    elif kind == "value":
        doc["skeletons"][int(rng.integers(frames))][int(rng.integers(20))][int(rng.integers(3))] = \
            draw(st.sampled_from(HOSTILE_JSON))
    elif kind == "frame":
        frame = int(rng.integers(frames))
        doc["skeletons"][frame] = draw(st.sampled_from([doc["skeletons"][frame][:19], [], "x",
                                                        doc["skeletons"][frame] + [[0, 0, 0]], [[0, 0]] * 20]))
    elif kind == "key":
        doc.pop(draw(st.sampled_from(["file_name", "skeletons", "label"])))
        doc[draw(st.sampled_from(["lable", "extra"]))] = 1
    elif kind == "top":
        doc = draw(st.sampled_from([[doc], 3, "text", None]))
    if kind == "deep":
        return kind, b"[" * 50000 + b"]" * 50000
    text = json.dumps(doc)  # writes NaN / Infinity for float nan / inf, as Python's json does
    if kind == "bytes":
        return mutate(draw, [text])
    return kind, text.encode()


@given(ucla_file())
@fuzz_settings(examples=60)
def test_ucla_reader_agrees_with_reference_or_names_file(case):
    mutation, data = case
    both = against_reference("nw-ucla json", "a01_s01_e01_v01.json", data, read_ucla_json, ref_ucla, mutation)
    if both:
        (joints, label, _), (expected_joints, expected_label) = both
        np.testing.assert_array_equal(joints, expected_joints)
        assert label == expected_label


# ---------------------------------------------------------------------------------------------- MSR Action3D


def ref_msr(data: bytes) -> np.ndarray:
    rows = []
    for line in ref_lines(data):
        if not line.strip():
            continue
        tokens = line.split()
        if len(tokens) != 4:
            raise Reject("width")
        rows.append([ref_float(t) for t in tokens][:3])
    if not rows or len(rows) % 20:
        raise Reject("rows")
    return np.array(rows, dtype=np.float64).astype(np.float32).reshape(-1, 20, 3)


@st.composite
def msr_file(draw) -> tuple[str, bytes]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frames = int(rng.integers(1, 4))
    values = rng.normal(size=(frames * 20, 3)).astype(np.float32)
    lines = [" ".join(repr(float(v)) for v in row) + f" {int(rng.integers(0, 2))}" for row in values]
    targets = [(int(rng.integers(len(lines))), int(rng.integers(4))) for _ in range(6)] + [(len(lines) - 1, None)]
    return mutate(draw, lines, targets)


@given(msr_file())
@fuzz_settings(examples=60)
def test_msr_reader_agrees_with_reference_or_names_file_and_line(case):
    mutation, data = case
    both = against_reference("msr-action3d text", "a01_s01_e01_skeleton3D.txt", data, read_msr_file, ref_msr,
                             mutation)
    if both:
        value, expected = both
        assert value.shape == expected.shape
        for got, want in zip(value, expected):  # the same joints in each frame (their order is remapped)
            assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, want.tolist()))


# ---------------------------------------------------------------------------------------------- whole prepare


@given(ucla_file(), msr_file())
@fuzz_settings(examples=25)
def test_prepare_leaves_out_untouched_on_failure(ucla_case, msr_case):
    for name, prepare, file_name, good, (mutation, data), ref in (
            ("nw-ucla prepare (whole dir)", prepare_nw_ucla, "a01_s01_e01_v01.json",
             json.dumps({"file_name": "a02_s01_e01_v03", "skeletons": [[[0.5, 1, 2]] * 20] * 3, "label": 2}),
             ucla_case, ref_ucla),
            ("msr prepare (whole dir)", prepare_msr_action3d, "a01_s01_e01_skeleton3D.txt",
             "\n".join(["0.5 1 2 1"] * 40), msr_case, ref_msr)):
        try:
            ref(data)
            valid = True
        except Reject:
            valid = False
        with tempfile.TemporaryDirectory() as tmp:
            raw, out = Path(tmp) / "raw", Path(tmp) / "out"
            raw.mkdir()
            (raw / file_name).write_bytes(data)
            (raw / file_name.replace("a01_s01", "a02_s02")).write_text(good)
            write_earlier_dataset(out)
            earlier = snapshot(out)
            kind, value = outcome(name, lambda: prepare(raw, out, frames=8, workers=1, progress=False),
                                  raw / file_name)
            if not valid:
                assert kind == "error", f"{mutation}: accepted what the format rejects"
                assert snapshot(out) == earlier, "--out was changed"
                assert not staging_left(Path(tmp))
            else:
                assert kind == "result", f"{mutation}: refused valid input: {value}"
                assert load_meta(out).sample_names[0].startswith("a01_s01")
