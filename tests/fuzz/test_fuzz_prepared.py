"""Fuzzing prepared datasets whose meta.json and data.npy disagree (or hold NaN): `skelssl info` (summarize) and
the dataset that pretraining and evaluation read (SkeletonDataset, in memory and memory-mapped), against a
reference validator of the format (skelssl/data/prepared.py docstring)."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from skelssl.data.dataset import SkeletonDataset
from skelssl.data.prepared import summarize
from tests.fuzz.harness import Reject, fuzz_settings, mutate, outcome
from tests.fuzz.test_fuzz_layouts import ref_layout

JOINTS = {"ntu25": 25, "kinect20": 20}
HOSTILE = [1.5, True, None, "0", -1, 99, [0], {"a": 0}, "", [], 10**12]


def ref_prepared(meta_bytes: bytes, data_bytes: bytes) -> tuple[dict, np.ndarray]:
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Reject("meta.json") from None

    def ints(values, low, high) -> list[int]:
        if not isinstance(values, list) or any(isinstance(v, bool) or not isinstance(v, int) or not low <= v < high
                                               for v in values):
            raise Reject("integers")
        return values

    if not isinstance(meta, dict) or meta.get("format") != "skelssl-prepared":
        raise Reject("format")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version > 1:
        raise Reject("version")
    names = meta.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names) or \
            len(set(names)) != len(names):
        raise Reject("class names")
    labels = ints(meta.get("labels"), 0, len(names))
    n = len(labels)
    lengths = ints(meta.get("lengths"), 0, 2**62)
    samples = meta.get("sample_names")
    if len(lengths) != n or not isinstance(samples, list) or len(samples) != n or \
            not all(isinstance(s, str) for s in samples):
        raise Reject("per-sample lists")
    splits = meta.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise Reject("splits")
    for parts in splits.values():
        if not isinstance(parts, dict) or not parts or not set(parts) <= {"train", "test"}:
            raise Reject("split parts")
        for idx in parts.values():
            if len(set(ints(idx, 0, n))) != len(idx):
                raise Reject("index twice")
        if set(parts.get("train", [])) & set(parts.get("test", [])):
            raise Reject("train/test overlap")
    layout = meta.get("layout")
    if isinstance(layout, dict):
        joints = len(ref_layout(layout)["joint_names"])
    elif isinstance(layout, str) and layout in JOINTS:
        joints = JOINTS[layout]
    else:
        raise Reject("layout")
    if not isinstance(meta.get("dataset"), str) or not isinstance(meta.get("provenance", {}), dict) or \
            not isinstance(meta.get("extra_arrays", []), list) or \
            not all(isinstance(e, str) and e.isidentifier() for e in meta.get("extra_arrays", [])):
        raise Reject("dataset, provenance, extra_arrays")
    try:
        data = np.load(io.BytesIO(data_bytes), allow_pickle=False)
    except Exception:
        raise Reject("data.npy") from None
    if data.ndim != 5 or data.dtype.kind != "f" or data.shape[0] != n or data.shape[3] != joints or \
            (lengths and max(lengths) > data.shape[2]):
        raise Reject("data.npy against meta.json")
    return meta, data


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


@st.composite
def prepared_dir(draw) -> dict:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, t = 6, 5
    data = rng.normal(size=(n, 3, t, 20, 1)).astype(np.float32)
    meta = {"format": "skelssl-prepared", "version": 1, "dataset": "fuzzed", "layout": "kinect20",
            "class_names": ["a", "b", "c"], "labels": rng.integers(0, 3, size=n).tolist(),
            "lengths": rng.integers(1, t + 1, size=n).tolist(), "sample_names": [f"s{i}" for i in range(n)],
            "splits": {"xsub": {"train": [0, 1, 2, 3], "test": [4, 5]}}, "provenance": {}, "extra_arrays": []}
    key = draw(st.sampled_from(sorted(meta)))
    kind = draw(st.sampled_from(["none", "none", "nan", "value", "entry", "length", "split", "missing", "data",
                                 "meta_bytes", "layout"]))
    if kind == "nan":
        data[int(rng.integers(n)), int(rng.integers(3)), int(rng.integers(t))] = draw(st.sampled_from(
            [np.nan, np.inf, -np.inf]))
    elif kind == "value":
        meta[key] = draw(st.sampled_from(HOSTILE))
    elif kind == "entry" and isinstance(meta[key], list) and meta[key]:
        meta[key][int(rng.integers(len(meta[key])))] = draw(st.sampled_from(HOSTILE + [t + 1, 2, "s0", "a"]))
    elif kind == "length" and isinstance(meta[key], list):
        meta[key] = meta[key][:-1] if rng.random() < 0.5 else meta[key] + meta[key][:1]
    elif kind == "split":
        meta["splits"] = draw(st.sampled_from([
            {"xsub": {"train": [0, 1, 2, 3], "test": [4, 6]}}, {"xsub": {"train": [0, -1], "test": [4]}},
            {"xsub": {"train": [0, 0], "test": [4]}}, {"xsub": {"train": [0, 1], "test": [1, 4]}},
            {"xsub": {"train": [0, 1.0], "test": [4]}}, {"xsub": {"training": [0], "test": [4]}},
            {"xsub": {}}, {}, {"xsub": [0, 1]}, {"xsub": {"train": [0, 1, 2, 3, 4, 5]}}]))
    elif kind == "missing":
        meta.pop(key)
    elif kind == "layout":
        meta["layout"] = draw(st.sampled_from(["ntu25", "ntu26", 3, {"name": "x"}, None]))
    if kind == "data":
        data_kind = draw(st.sampled_from(["rows", "joints", "frames", "ndim", "dtype", "object", "truncate",
                                          "garbage"]))
        arr = {"rows": data[:-1], "joints": data[:, :, :, :19], "frames": data[:, :, :1], "ndim": data[..., 0],
               "dtype": data.astype(np.int16), "object": np.array([None] * n, dtype=object)}.get(data_kind, data)
        data_bytes = _npy(arr)
        if data_kind == "truncate":
            data_bytes = data_bytes[:len(data_bytes) // 2]
        elif data_kind == "garbage":
            data_bytes = b"\x93NUMPY garbage"
        kind = f"data {data_kind}"
    else:
        data_bytes = _npy(data)
    meta_bytes = json.dumps(meta).encode()
    if kind == "meta_bytes":
        kind, meta_bytes = mutate(draw, json.dumps(meta, indent=1).split("\n"))
    return {"meta": meta_bytes, "data": data_bytes, "what": f"{kind} {key}"}


@given(prepared_dir())
@fuzz_settings(examples=60)
def test_info_and_dataset_agree_with_reference(case):
    try:
        meta, data = ref_prepared(case["meta"], case["data"])
    except Reject:
        meta = data = None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "prepared"
        root.mkdir()
        (root / "meta.json").write_bytes(case["meta"])
        (root / "data.npy").write_bytes(case["data"])
        named = [root / "meta.json", root / "data.npy"]
        kind, info = outcome("prepared dir: skelssl info", lambda: summarize(root), named)
        if meta is None:
            assert kind == "error", f"{case['what']}: info accepted a directory the format rejects"
        else:
            assert kind == "result", f"{case['what']}: info refused a valid directory: {info}"
            bad = [i for i in range(len(data)) if not (np.abs(data[i]) <= 1e15).all()]  # NaN, inf, or unusably large
            assert info["values"]["nonfinite_samples"] == len(bad)
            assert info["values"]["first_nonfinite"] == (meta["sample_names"][bad[0]] if bad else None)
            for split, parts in meta["splits"].items():
                for part, idx in parts.items():
                    counts = np.bincount(np.asarray(meta["labels"], dtype=int)[idx], minlength=3)
                    assert [info["splits"][split][part]["per_class"][c] for c in meta["class_names"]] == \
                        counts.tolist()
        for split, parts in (meta["splits"] if meta else {"xsub": {"train": None, "test": None}}).items():
            for part, idx in parts.items():
                for in_memory in (True, False):
                    def read():
                        ds = SkeletonDataset(root, split, part, in_memory=in_memory)
                        return ds.array().copy(), [ds[i]["x"].numpy() for i in range(len(ds))], ds.labels
                    kind, value = outcome("prepared dir: dataset (evaluate, pretrain)", read, named)
                    if meta is None:
                        assert kind == "error", f"{case['what']}: the dataset accepted a bad directory"
                        continue
                    if any(not np.isfinite(data[i]).all() for i in idx):
                        assert kind == "error" and "NaN" in value, f"{case['what']}: NaN read silently"
                        continue
                    assert kind == "result", f"{case['what']}: {value}"
                    array, items, labels = value
                    np.testing.assert_array_equal(array, data[idx])
                    np.testing.assert_array_equal(np.stack(items) if items else array, data[idx])
                    assert labels.tolist() == [meta["labels"][i] for i in idx]
