"""Fuzzing PKU-MMD: skeleton files, label files, split lists and the whole `prepare pkummd`, against a
reference written from the format's description (data/pkummd.py docstring), independently of the reader.

For the whole pipeline the output directory holds a previous dataset: on any failure it must be left exactly as
it was (and no OUT.partial left behind); on success the trimmed and untrimmed datasets must equal the
reference's.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from skelssl.data.pkummd import (ACTION_IDS, prepare_pkummd, read_pku_labels, read_pku_skeleton,
                                 read_split_list)
from skelssl.data.prepared import load_meta, open_data
from tests.conftest import snapshot, staging_left, write_earlier_dataset
from tests.fuzz.harness import (FLOAT32_MAX, Reject, against_reference, fuzz_settings, mutate, outcome, ref_float,
                                ref_int, ref_lines)

VIDEOS = ["0002-L", "0002-M", "0291-L"]


def ref_skeleton(data: bytes) -> np.ndarray:
    rows = []
    for line in ref_lines(data):
        if not line.strip():
            continue
        tokens = line.split()
        if len(tokens) != 150:
            raise Reject("row width")
        rows.append([ref_float(t) for t in tokens])
    if not rows:
        raise Reject("no rows")
    return np.array(rows, dtype=np.float64).astype(np.float32).reshape(-1, 2, 25, 3)


def ref_labels(data: bytes, part: int, frames: int | None = None) -> list[tuple[int, int, int]]:
    out = []
    for line in ref_lines(data):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 5 and fields[4] == "":
            fields = fields[:4]
        if len(fields) != 4 or "" in fields:
            raise Reject("fields")
        action, start, end = (ref_int(f) for f in fields[:3])
        ref_float(fields[3], limit=FLOAT32_MAX)
        if action not in ACTION_IDS[part] or start < 0 or end < start or (frames is not None and end >= frames):
            raise Reject("values")
        out.append((action, start, end))
    return out


def ref_split(data: bytes) -> tuple[set[str], set[str]]:
    train: set[str] = set()
    test: set[str] = set()
    current = None
    for line in ref_lines(data):
        low = line.lower()
        if "train" in low:
            current = train
        elif "valid" in low or "test" in low:
            current = test
        else:
            names = [n for n in re.split(r"[,\s]+", line) if n]
            if names and current is None:
                raise Reject("names before a header")
            if current is not None:
                current.update(names)
    if not train or not test or train & test:
        raise Reject("lists")
    return train, test


def skeleton_lines(rng: np.random.Generator, frames: int) -> tuple[list[str], list, str]:
    values = rng.normal(size=(frames, 150)).astype(np.float32)
    values[:, 75:] *= rng.random() < 0.5  # the second person absent (zeros) in half of the files
    lines = [" ".join(repr(float(v)) for v in row) for row in values]
    targets = [(int(rng.integers(frames)), int(rng.integers(150))) for _ in range(4)] + [(frames - 1, None)]
    return lines, targets, " "


def label_lines(rng: np.random.Generator, frames: int, part: int) -> tuple[list[str], list, str]:
    lines = []
    for _ in range(int(rng.integers(1, 4))):
        start = int(rng.integers(0, frames))
        end = int(rng.integers(start, frames))
        lines.append(f"{rng.choice(ACTION_IDS[part])},{start},{end},{rng.choice([1, 2])}")
    targets = [(i, None) for i in range(len(lines))] + [(i, k) for i in range(len(lines)) for k in range(4)]
    return lines, targets, ","


@st.composite
def pku_files(draw) -> dict:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    part = draw(st.sampled_from([1, 2]))
    files = {}
    for video in VIDEOS:
        frames = int(rng.integers(1, 8))
        files[f"raw/{video}.txt"] = skeleton_lines(rng, frames)
        files[f"labels/{video}.txt"] = label_lines(rng, frames, part)
    files["split/cross-subject.txt"] = (["Training videos:", "0002-L, 0002-M,", "Validataion videos:", "0291-L,"],
                                        [(0, None), (1, None), (1, 1), (2, None), (3, 0)], ", ")
    target = draw(st.sampled_from(sorted(files) + ["split/cross-subject.txt"] * 3))  # the one list: more often
    out = {name: ("\n".join(lines) + "\n").encode() for name, (lines, _, _) in files.items()}
    mutation, out[target] = mutate(draw, *files[target])
    return {"part": part, "files": out, "mutation": f"{mutation} in {target}", "target": target}


def _earlier_output(out: Path) -> dict[str, bytes]:
    """An earlier `prepare pkummd` output at `out` (two tiny prepared datasets); returns its files' bytes."""
    for name in ("trimmed", "untrimmed"):
        write_earlier_dataset(out / name)
    return snapshot(out)


def _write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


@given(pku_files())
@fuzz_settings(examples=40)
def test_single_file_readers_agree_with_reference(case):
    part, name = case["part"], case["target"]
    if name.startswith("raw/"):
        reader, read, ref = "pku-mmd skeleton", read_pku_skeleton, ref_skeleton
    elif name.startswith("labels/"):
        reader, ref = "pku-mmd labels", lambda data: ref_labels(data, part)
        read = lambda path: [a[:3] for a in read_pku_labels(path, part=part)]  # noqa: E731
    else:
        reader, read, ref = "pku-mmd split list", read_split_list, ref_split
    both = against_reference(reader, Path(name).name, case["files"][name], read, ref, case["mutation"])
    if both:
        value, expected = both
        if isinstance(expected, np.ndarray):
            np.testing.assert_array_equal(value, expected)
        else:
            assert value == expected


def reference_prepare(files: dict[str, bytes], part: int) -> dict:
    seqs, instances = {}, []
    for video in VIDEOS:
        seqs[video] = ref_skeleton(files[f"raw/{video}.txt"])
        labels = ref_labels(files[f"labels/{video}.txt"], part, len(seqs[video]))
        instances += [(video, k, inst) for k, inst in enumerate(labels)]
    if not instances:
        raise Reject("no instance")
    train, test = ref_split(files["split/cross-subject.txt"])
    t = min(max(e - s + 1 for _, _, (_, s, e) in instances), 300)
    data = np.zeros((len(instances), 3, t, 25, 2), np.float32)
    for i, (video, _, (_, s, e)) in enumerate(instances):
        clip = seqs[video][s:e + 1][:t]
        data[i, :, :len(clip)] = clip.transpose(3, 0, 2, 1)
    names = [f"{v}_{k}" for v, k, _ in instances]
    return {"data": data, "names": names,
            "labels": [ACTION_IDS[part].index(a) for _, _, (a, _, _) in instances],
            "train": [i for i, (v, _, _) in enumerate(instances) if v in train],
            "test": [i for i, (v, _, _) in enumerate(instances) if v in test],
            "full_lengths": [len(seqs[v]) for v in VIDEOS]}


@given(pku_files())
@fuzz_settings(examples=40)
def test_prepare_pkummd_is_all_or_nothing(case):
    part, files = case["part"], case["files"]
    try:
        expected = reference_prepare(files, part)
    except Reject:
        expected = None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root, files)
        out = root / "out"
        earlier = _earlier_output(out)  # what an earlier prepare wrote there: replaced only on success
        kind, value = outcome("pku-mmd prepare (whole dir)", lambda: prepare_pkummd(
            root / "raw", root / "labels", out, part=part, split_dir=root / "split", progress=False, recipe=None),
            root / case["target"])  # a skeleton's error may name its label file: the same file name
        if expected is None or kind == "error":
            assert expected is None, f"{case['mutation']}: refused valid input: {value}"
            assert kind == "error", f"{case['mutation']}: accepted what the format rejects"
            assert snapshot(out) == earlier, "--out was changed"
            assert not staging_left(root)
            return
        meta = load_meta(out / "trimmed")
        np.testing.assert_array_equal(open_data(out / "trimmed"), expected["data"])
        assert meta.sample_names == expected["names"] and meta.labels.tolist() == expected["labels"]
        assert meta.splits["xsub"]["train"].tolist() == expected["train"]
        assert meta.splits["xsub"]["test"].tolist() == expected["test"]
        assert load_meta(out / "untrimmed").lengths.tolist() == expected["full_lengths"]
        assert snapshot(out) != earlier and not staging_left(root)
