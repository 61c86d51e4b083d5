"""Fuzzing the NTU `.skeleton` reader: generated files, randomly damaged, against a reference parser.

The reference below is written from the format's description (data/ntu.py docstring), independently of the
reader: for every input both reject it, or both return the same joints, tracking ids and body counts.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from skelssl.data.ntu import read_skeleton_file
from tests.fuzz.harness import Reject, against_reference, fuzz_settings, mutate, ref_float, ref_int, ref_lines

MAX_BODIES = 1  # small, so that bodies beyond it (checked, not kept) occur often
SPECIAL = ["-0", "1e-45", "3.4e38", "-3.4e38", "1e-50", "+2.5", "7", ".5", "5."]


def reference_ntu(data: bytes, max_bodies: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lines = ref_lines(data)
    while lines and not lines[-1].strip():
        lines.pop()
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(lines):
            raise Reject("ends early")
        pos += 1
        return lines[pos - 1]

    frames = ref_int(take().strip())
    if frames < 1:
        raise Reject("no frames")
    joints, ids, counts = [], [], []  # grown frame by frame: a huge frame count runs out of lines first
    for f in range(frames):
        joints.append(np.zeros((max_bodies, 25, 3), np.float32))
        ids.append(np.full(max_bodies, -1, np.int64))
        bodies = ref_int(take().strip())
        if bodies < 0:
            raise Reject("negative body count")
        counts.append(bodies)
        for b in range(bodies):
            info = take().split()
            if len(info) != 10:
                raise Reject("body line")
            if ref_int(take().strip()) != 25:
                raise Reject("joint count")
            xyz = []
            for _ in range(25):
                row = take().split()
                if len(row) != 12:
                    raise Reject("joint line")
                xyz.append([ref_float(t) for t in row[:3]])
            tracking = ref_int(info[0])
            if not -2**63 <= tracking < 2**63:
                raise Reject("tracking id")
            if b < max_bodies:
                joints[f][b] = np.array(xyz, dtype=np.float64).astype(np.float32)
                ids[f][b] = tracking
    if pos != len(lines):
        raise Reject("extra lines")
    return np.stack(joints), np.stack(ids), np.array(counts, np.int64)


@st.composite
def skeleton_file(draw) -> tuple[str, bytes]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frames = draw(st.integers(1, 3))
    lines = [str(frames)]
    targets: list[tuple[int, int | None]] = [(0, None)] * 5  # counts weigh more than one coordinate among many
    for _ in range(frames):
        bodies = draw(st.integers(0, 3))
        targets += [(len(lines), None)] * 3
        lines.append(str(bodies))
        for _ in range(bodies):
            tracking = draw(st.sampled_from([72057594037931768, 0, -5, 2**63 - 1]))
            targets += [(len(lines), 0)] * 2 + [(len(lines) + 1, None)] * 2
            lines.append(f"{tracking} 0 1 1 0 0 0 0.1 0.1 2")
            lines.append("25")
            xyz = rng.normal(scale=2.0, size=(25, 3)).astype(np.float32)
            for j in range(25):
                coords = [repr(float(v)) for v in xyz[j]]
                if rng.random() < 0.05:
                    coords[int(rng.integers(3))] = str(rng.choice(SPECIAL))
                if j in (0, 24) or rng.random() < 0.1:
                    targets += [(len(lines), int(rng.integers(3)))]
                lines.append(" ".join(coords) + " 260.5 180.2 1000.1 500.9 0.1 0.2 0.3 0.9 2")
    return mutate(draw, lines, targets)


@given(skeleton_file())
@fuzz_settings(examples=80)
def test_ntu_reader_agrees_with_reference_or_names_file_and_line(case):
    mutation, data = case
    both = against_reference("ntu .skeleton", "S001C001P001R001A001.skeleton", data,
                             lambda path: read_skeleton_file(path, max_bodies=MAX_BODIES),
                             lambda data: reference_ntu(data, MAX_BODIES), mutation)
    if both:
        value, (joints, ids, counts) = both
        np.testing.assert_array_equal(value.joints, joints)
        np.testing.assert_array_equal(value.body_ids, ids)
        np.testing.assert_array_equal(value.bodies_per_frame, counts)


def test_reference_reads_a_generated_file_as_written():
    """The reference itself: on an undamaged file it returns the values the generator wrote."""
    xyz = np.arange(75, dtype=np.float32).reshape(25, 3) / 7
    lines = ["1", "1", "5 0 1 1 0 0 0 0.1 0.1 2", "25"] + \
        [" ".join(repr(float(v)) for v in xyz[j]) + " 1 2 3 4 5 6 7 8 2" for j in range(25)]
    joints, ids, counts = reference_ntu("\n".join(lines).encode(), 2)
    np.testing.assert_array_equal(joints[0, 0], xyz)
    assert ids.tolist() == [[5, -1]] and counts.tolist() == [1]
    lines[3] = "24"
    try:
        reference_ntu("\n".join(lines).encode(), 2)
        raise AssertionError("the reference accepted 24 joints")
    except Reject:
        pass
