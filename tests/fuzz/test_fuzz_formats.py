"""Fuzzing `prepare convert`: CrosSCLR/AimCLR npy + label pickle, CTR-GCN npz and pyskl pickles (trusted), with
arrays and labels of the wrong shape, kind or length, NaN, damaged files; against a reference written from the
formats' descriptions (data/formats.py docstring). --out holds an earlier dataset that a failure must leave."""

from __future__ import annotations

import io
import math
import pickle
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from skelssl.data.formats import convert_aimclr, convert_ctrgcn, convert_pyskl
from skelssl.data.prepared import load_meta, open_data
from tests.fuzz.harness import COORDINATE_LIMIT, Reject, fuzz_settings, outcome
from tests.conftest import snapshot, staging_left, write_earlier_dataset

MAX_CLASSES = 10_000
HOSTILE_LABELS = [3.7, True, "3", None, -1, 10**12, MAX_CLASSES, float("nan"), [1], 2.0]


def ref_values(arr: np.ndarray, shape_ok) -> np.ndarray:
    if arr.dtype.kind not in "iuf" or not shape_ok(arr.shape) or 0 in arr.shape:
        raise Reject("array kind or shape")
    if not (np.abs(arr.astype(np.float64)) <= COORDINATE_LIMIT).all():
        raise Reject("not finite in float32")
    return arr.astype(np.float32)


def ref_labels(values) -> list[int]:
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise Reject(f"label {v!r}")
        if not math.isfinite(v) or v != int(v) or not 0 <= v < MAX_CLASSES:
            raise Reject(f"label {v!r}")
        out.append(int(v))
    return out


def ref_lengths(data: np.ndarray) -> list[int]:
    """Last frame with any non-zero value, + 1, per (C, T, V, M) sample (0 for an all-zero sample)."""
    out = []
    for sample in data:
        frames = [t for t in range(sample.shape[1]) if np.any(sample[:, t] != 0)]
        out.append(frames[-1] + 1 if frames else 0)
    return out


def hostile_array(draw, rng: np.random.Generator, good_shape: tuple[int, ...]) -> tuple[str, np.ndarray]:
    kind = draw(st.sampled_from(["none", "none", "nan", "inf", "big", "dtype", "shape", "empty"]))
    arr = rng.normal(size=good_shape).astype(np.float32)
    arr[..., -1:] *= rng.random() < 0.5  # sometimes trailing zeros (shorter valid length)
    if kind == "nan":
        arr.flat[int(rng.integers(arr.size))] = np.nan
    elif kind == "inf":
        arr.flat[int(rng.integers(arr.size))] = -np.inf
    elif kind == "big":
        arr = arr.astype(np.float64)
        arr.flat[int(rng.integers(arr.size))] = 1e39
    elif kind == "dtype":
        arr = arr.astype(draw(st.sampled_from([np.complex64, np.bool_, np.int16, np.float64, np.float16, "U3"])))
    elif kind == "shape":
        arr = arr.reshape(draw(st.sampled_from([(-1,), (good_shape[0], -1), good_shape[:-1] + (good_shape[-1], 1)])))
    elif kind == "empty":
        arr = np.zeros((0,) + good_shape[1:], np.float32)
    return kind, arr


def npy_bytes(draw, arr: np.ndarray) -> tuple[str, bytes]:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    data = buf.getvalue()
    kind = draw(st.sampled_from(["none", "none", "none", "truncate", "garbage", "object"]))
    if kind == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif kind == "garbage":
        data = b"not an npy file at all"
    elif kind == "object":
        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        data = buf.getvalue()
    return kind, data


def ref_npy(data: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception:
        raise Reject("unreadable npy") from None


def convert_against_reference(reader: str, files: dict[str, bytes], convert, reference, what: str
                              ) -> tuple[object, np.ndarray, object] | None:
    """Write `files` to a fresh directory whose `out` holds an earlier dataset, run convert(root, out) and
    reference(). Both reject (the converter with a one-line error naming one of the files, `out` untouched), or
    both accept: then (expected, data.npy, meta) is returned for the caller to compare; None otherwise."""
    try:
        expected = reference()
    except Reject:
        expected = Reject
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, data in files.items():
            (root / name).write_bytes(data)
        out = root / "out"
        write_earlier_dataset(out)
        earlier = snapshot(out)
        kind, value = outcome(reader, lambda: convert(root, out), [root / name for name in files])
        if expected is Reject:
            assert kind == "error", f"{what}: accepted what the format rejects"
            assert snapshot(out) == earlier, "--out was changed"
            assert not staging_left(root)
            return None
        assert kind == "result", f"{what}: refused valid input: {value}"
        return expected, np.array(open_data(out)), load_meta(out)


# ---------------------------------------------------------------------------------------------- aimclr


@st.composite
def aimclr_case(draw) -> dict:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = int(rng.integers(1, 4))
    array_kind, arr = hostile_array(draw, rng, (n, 3, 4, 25, 2))
    file_kind, npy = npy_bytes(draw, arr)
    names = [f"S001C001P001R001A{i + 1:03d}.skeleton" for i in range(n)]
    labels: list = rng.integers(0, 60, size=n).tolist()
    label_kind = draw(st.sampled_from(["none", "none", "value", "length", "names", "content", "truncate"]))
    content: object = (names, labels)
    if label_kind == "value":
        labels[int(rng.integers(n))] = draw(st.sampled_from(HOSTILE_LABELS))
    elif label_kind == "length":
        content = (names, labels + [0])
    elif label_kind == "names":
        content = (names[:1] * n, labels)
    elif label_kind == "content":
        content = draw(st.sampled_from([{"a": 1}, 3, (names, labels, labels), (names,), "text"]))
    pkl = pickle.dumps(content)
    if label_kind == "truncate":
        pkl = pkl[:len(pkl) // 2]
    return {"npy": npy, "pkl": pkl, "what": f"array {array_kind}, file {file_kind}, labels {label_kind}"}


def ref_aimclr(npy: bytes, pkl: bytes) -> tuple[np.ndarray, list[int], list[str]]:
    data = ref_values(ref_npy(npy), lambda s: len(s) == 5 and s[3] == 25)
    try:
        names, labels = pickle.loads(pkl)
        names, labels = list(names), list(labels)
    except Exception:
        raise Reject("label pickle") from None
    if len(names) != len(data) or len(labels) != len(data):
        raise Reject("lengths")
    names = [str(n).split(".")[0] for n in names]
    if len(set(names)) != len(names):
        raise Reject("duplicate names")
    return data, ref_labels(labels), names


@given(aimclr_case())
@fuzz_settings(examples=50)
def test_convert_aimclr_agrees_with_reference(case):
    result = convert_against_reference(
        "convert aimclr (npy + pickle)", {"train_position.npy": case["npy"], "train_label.pkl": case["pkl"]},
        lambda root, out: convert_aimclr(root / "train_position.npy", root / "train_label.pkl", out,
                                         trust_pickle=True),
        lambda: ref_aimclr(case["npy"], case["pkl"]), case["what"])
    if result:
        (data, labels, names), written, meta = result
        np.testing.assert_array_equal(written, data)
        assert meta.labels.tolist() == labels and meta.sample_names == names
        assert meta.lengths.tolist() == ref_lengths(data)
        assert meta.num_classes == max(labels) + 1


# ---------------------------------------------------------------------------------------------- ctrgcn


@st.composite
def ctrgcn_case(draw) -> dict:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, t, k = int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(2, 8))
    array_kind, x = hostile_array(draw, rng, (n, t, 150))
    y = np.eye(k)[rng.integers(0, k, size=n)]
    y_kind = draw(st.sampled_from(["none", "none", "tie", "zero", "soft", "indices", "length", "text", "nan"]))
    if y_kind == "tie":
        y[0, :2] = 1
    elif y_kind == "zero":
        y[0] = 0
    elif y_kind == "soft":
        y[0] = 1 / k
    elif y_kind == "indices":
        y = y.argmax(axis=1)
    elif y_kind == "length":
        y = y[:-1] if n > 1 else np.vstack([y, y])
    elif y_kind == "text":
        y = np.array(["a"] * n)
    elif y_kind == "nan":
        y[0, 0] = np.nan
    members = {"x_train": x, "y_train": y}
    test_kind = draw(st.sampled_from(["none", "test", "test", "x_only", "other_frames", "missing_y_train"]))
    if test_kind in ("test", "x_only", "other_frames"):
        members["x_test"] = x[:1] if test_kind != "other_frames" else np.zeros((1, t + 1, 150), np.float32)
        if test_kind != "x_only":
            members["y_test"] = np.eye(k)[[k - 1]]
    elif test_kind == "missing_y_train":
        members.pop("y_train")
    buf = io.BytesIO()
    np.savez(buf, **members)
    data = buf.getvalue()
    file_kind = draw(st.sampled_from(["none", "none", "none", "truncate", "garbage"]))
    if file_kind == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif file_kind == "garbage":
        data = b"PK\x03\x04 not really a zip"
    return {"npz": data, "what": f"x {array_kind}, y {y_kind}, test {test_kind}, file {file_kind}"}


def ref_onehot(y: np.ndarray) -> tuple[list[int], int]:
    if y.ndim == 1:
        labels = ref_labels(y.tolist())
        return labels, max(labels) + 1
    if y.ndim != 2 or y.dtype.kind not in "iufb":
        raise Reject("label array")
    rows = []
    for row in y.tolist():
        if sorted(row) != [0] * (len(row) - 1) + [1]:
            raise Reject("not one-hot")
        rows.append(row.index(1))
    return rows, y.shape[1]


def ref_ctrgcn(npz: bytes) -> tuple[np.ndarray, list[int], int]:
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as archive:
            members = {k: archive[k] for k in archive.files}
    except Exception:
        raise Reject("unreadable npz") from None
    if "x_train" not in members or "y_train" not in members or ("x_test" in members) != ("y_test" in members):
        raise Reject("members")
    xs, labels, width = [], [], 0
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        if x_key not in members:
            continue
        x = ref_values(members[x_key], lambda s: len(s) == 3 and s[2] == 150)
        part_labels, part_width = ref_onehot(members[y_key])
        if len(part_labels) != len(x):
            raise Reject("lengths")
        xs.append(x)
        labels += part_labels
        width = max(width, part_width)
    if len({x.shape[1] for x in xs}) != 1:
        raise Reject("frames differ")
    data = np.concatenate(xs).reshape(-1, xs[0].shape[1], 2, 25, 3).transpose(0, 4, 1, 3, 2)
    return data, labels, width


@given(ctrgcn_case())
@fuzz_settings(examples=50)
def test_convert_ctrgcn_agrees_with_reference(case):
    result = convert_against_reference(
        "convert ctrgcn (npz)", {"NTU60_CS.npz": case["npz"]},
        lambda root, out: convert_ctrgcn(root / "NTU60_CS.npz", out), lambda: ref_ctrgcn(case["npz"]),
        case["what"])
    if result:
        (data, labels, width), written, meta = result
        np.testing.assert_array_equal(written, data)
        assert meta.labels.tolist() == labels and meta.num_classes == width
        assert meta.lengths.tolist() == ref_lengths(data)


# ---------------------------------------------------------------------------------------------- pyskl


@st.composite
def pyskl_case(draw) -> dict:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = int(rng.integers(1, 4))
    annotations = []
    for i in range(n):
        m, t = int(rng.integers(1, 4)), int(rng.integers(1, 6))
        annotations.append({"frame_dir": f"s{i}", "label": int(rng.integers(0, 5)), "total_frames": t,
                            "keypoint": rng.normal(size=(m, t, 25, 3)).astype(np.float32)})
    content: object = {"split": {"xsub_train": [f"s{i}" for i in range(n - 1)], "xsub_val": [f"s{n - 1}"]},
                       "annotations": annotations}
    kind = draw(st.sampled_from(["none", "none", "label", "keypoint", "total", "name", "split", "ann", "top"]))
    victim = annotations[int(rng.integers(n))]
    if kind == "label":
        victim["label"] = draw(st.sampled_from(HOSTILE_LABELS))
    elif kind == "keypoint":
        victim["keypoint"] = draw(st.sampled_from([
            np.zeros((1, 2, 25), np.float32), np.full((1, 2, 25, 3), np.nan, np.float32),
            np.zeros((0, 2, 25, 3), np.float32), np.zeros((1, 2, 24, 3), np.float32),
            np.array([[1, "a"]], dtype=object), "text", [[[[1.0, 2.0, 3.0]] * 25]] * 1]))
    elif kind == "total":
        victim["total_frames"] = draw(st.sampled_from([0, -1, 10**6, 2.5, "3", True]))
    elif kind == "name":
        victim["frame_dir"] = annotations[0]["frame_dir"]
    elif kind == "split":
        content["split"] = draw(st.sampled_from([
            {"xsub_train": ["s0", "s0"], "xsub_val": []}, {"xsub_train": ["s0"], "xsub_val": ["s0"]},
            {"xsub_train": "s0"}, [], {"xsub_train": [0]}, {"xsub_train": ["unknown"], "xsub_val": []}]))
    elif kind == "ann":
        annotations[0] = draw(st.sampled_from([[1, 2], "x", {"label": 0}, {"keypoint": np.zeros((1, 1, 25, 3))}]))
    elif kind == "top":
        content = draw(st.sampled_from([[annotations], {"annotations": []}, {"annotations": "x"}, None]))
    return {"pkl": pickle.dumps(content), "what": kind}


def ref_pyskl(pkl: bytes) -> dict:
    content = pickle.loads(pkl)
    if not isinstance(content, dict) or not isinstance(content.get("annotations"), (list, tuple)) or \
            not content["annotations"]:
        raise Reject("top level")
    names, labels, totals, kps = [], [], [], []
    for i, ann in enumerate(content["annotations"]):
        if not isinstance(ann, dict) or "keypoint" not in ann or "label" not in ann:
            raise Reject("annotation")
        try:
            kp = np.asarray(ann["keypoint"])
        except Exception:
            raise Reject("keypoint") from None
        kp = ref_values(kp, lambda s: len(s) == 4 and s[2] == 25)
        total = ann.get("total_frames", kp.shape[1])
        if isinstance(total, bool) or not isinstance(total, int) or not 1 <= total <= kp.shape[1]:
            raise Reject("total_frames")
        names.append(str(ann.get("frame_dir", f"sample_{i:06d}")))
        labels.append(ann["label"])
        totals.append(total)
        kps.append(kp)
    labels = ref_labels(labels)
    if len(set(names)) != len(names) or len({kp.shape[3] for kp in kps}) != 1:
        raise Reject("names or coordinates")
    split = content.get("split") or {}
    if not isinstance(split, dict) or not all(isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)
                                              for v in split.values()):
        raise Reject("split")
    parts: dict[str, set] = {}
    for key, members in split.items():
        if len(set(members)) != len(members):
            raise Reject("member twice")
        parts[key] = {m for m in members if m in names}
    if parts.get("xsub_train", set()) & parts.get("xsub_val", set()):
        raise Reject("train and test overlap")
    t, m = max(kp.shape[1] for kp in kps), min(max(kp.shape[0] for kp in kps), 2)
    data = np.zeros((len(kps), kps[0].shape[3], t, 25, m), np.float32)
    for i, kp in enumerate(kps):
        data[i, :, :kp.shape[1], :, :min(kp.shape[0], m)] = kp[:m].transpose(3, 1, 2, 0)
    return {"data": data, "labels": labels, "names": names, "totals": totals}


@given(pyskl_case())
@fuzz_settings(examples=50)
def test_convert_pyskl_agrees_with_reference(case):
    result = convert_against_reference(
        "convert pyskl (pickle)", {"ann.pkl": case["pkl"]},
        lambda root, out: convert_pyskl(root / "ann.pkl", out, trust_pickle=True), lambda: ref_pyskl(case["pkl"]),
        case["what"])
    if result:
        expected, written, meta = result
        np.testing.assert_array_equal(written, expected["data"])
        assert meta.labels.tolist() == expected["labels"] and meta.sample_names == expected["names"]
        assert meta.lengths.tolist() == expected["totals"]
