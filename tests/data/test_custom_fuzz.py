"""Property-based tests of `skelssl prepare custom`'s inputs (issue 14 §2, the custom reader).

Hypothesis makes arrays of every shape and dtype (complex, object, bool, int, text), zero-length axes,
broken and truncated .npy/.npz files, labels, splits and lengths of the wrong length, kind or range (a label
of 10^12 among them). For each input the outcome must be one of:
- a prepared dataset that matches the input, when the input is acceptable by the rules of docs/data.md
  (restated independently in `acceptable` below): same labels, same samples (with normalisation off, the
  same coordinates), nothing non-finite;
- skelssl's UserError naming the file the problem is in, with the output directory untouched.
Anything else (another exception, a dataset made from an unacceptable input, a refused acceptable input) fails.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skelssl.data.custom import prepare_custom
from skelssl.data.normalize import OFF, NormalizeOptions
from skelssl.data.prepared import load_meta, open_data
from skelssl.errors import UserError
from skelssl.skeleton.layouts import KINECT20
from tests.data.test_custom import time_limit
from tests.conftest import snapshot, staging_left, write_earlier_dataset

EXAMPLES = 250


FAULTS = {  # case key -> the values that break an otherwise good input
    "ndim": [3, 6], "n": [0], "t": [0], "v": [19, 0], "c": [1, 4, 0], "m": [0],
    "dtype": ["bool", "complex64", "<U3"], "rare": ["nan", "inf", "huge", "all_zero"],
    "container": ["npz_other_key"], "corrupt": ["truncate", "garbage", "empty", "object"],
    "labels": ["float_frac", "negative", "huge", "nan", "bool", "complex", "short", "long", "2d", "missing"],
    "split": ["bad_text", "two", "short", "object"], "lengths": ["zero", "too_long", "fraction", "short"],
}


GOOD = {"ndim": [4, 5], "n": [1, 2, 3, 4], "t": [1, 2, 3, 4, 5], "v": [20], "c": [3, 2], "m": [1, 2],
        "dtype": ["float32", "float64", "float16", "int16", "int64", "uint8"], "rare": ["none", "trailing_zero"],
        "container": ["npy", "npz"], "corrupt": ["none"], "labels": ["ok", "float_int", "text"],
        "labels_file": [False, True], "split": ["none", "text", "int", "bool", "float"],
        "lengths": ["none", "ok"], "normalize": ["off", "off", "defaults", "pad"], "skip_bad": [False, True]}


def with_shape(case: dict) -> dict:
    if case["ndim"] != 5:
        case["m"] = 1
    n, t, v, c, m = (case[k] for k in "ntvcm")
    case["shape"] = {4: (n, t, v, c), 5: (n, c, t, v, m), 3: (n, t, v), 6: (n, c, t, v, m, 1)}[case["ndim"]]
    return case


@st.composite
def cases(draw) -> dict:
    """A good input (all sorts of good: shapes, dtypes, containers, label and split kinds), with 0-2 faults."""
    case = {key: draw(st.sampled_from(values)) for key, values in GOOD.items()}
    case["seed"] = draw(st.integers(0, 2**16))
    for key in draw(st.lists(st.sampled_from(sorted(FAULTS)), max_size=2, unique=True)):
        case[key] = draw(st.sampled_from(FAULTS[key]))
    return with_shape(case)


SINGLE_FAULTS = [(key, value) for key, values in sorted(FAULTS.items()) for value in values]


def make_data(case: dict) -> np.ndarray:
    rng = np.random.default_rng(case["seed"])
    shape, dtype = case["shape"], case["dtype"]
    values = rng.normal(0, 1, shape) * 2
    if dtype == "<U3":
        return values.astype(int).astype(str)
    if dtype == "bool":
        return values > 0
    if dtype == "complex64":
        return (values + 1j * values).astype(np.complex64)
    if np.dtype(dtype).kind in "iu":
        values = np.abs(values) * 10 if np.dtype(dtype).kind == "u" else values * 10
    data = values.astype(dtype)
    if data.size and np.dtype(dtype).kind == "f":
        flat = data.reshape(shape[0], -1)
        rare = case["rare"]
        if rare in ("nan", "inf") or (rare == "huge" and dtype == "float64"):
            flat[rng.integers(shape[0]), rng.integers(flat.shape[1])] = {"nan": np.nan, "inf": np.inf,
                                                                          "huge": 1e39}[rare]
    if data.size and case["rare"] == "all_zero":
        data[rng.integers(shape[0])] = 0
    if data.size and case["rare"] == "trailing_zero" and len(shape) == 4:
        data[:, shape[1] // 2:] = 0
    return data


def make_labels(case: dict) -> np.ndarray | None:
    n, kind = case["n"], case["labels"]
    base = np.arange(n) % 3
    return {"ok": base, "float_int": base.astype(float), "float_frac": base + 0.5, "negative": base - 1,
            "huge": np.r_[base[:-1], 10**12] if n else base, "nan": np.full(n, np.nan), "bool": base > 0,
            "text": np.array(["wave", "kick", "sit"])[base], "complex": base + 1j, "short": base[:-1],
            "long": np.r_[base, 0], "2d": np.stack([base, base]), "missing": None}[kind]


def make_split(case: dict) -> np.ndarray | None:
    n, kind = case["n"], case["split"]
    train = np.arange(n) % 2 == 0
    return {"none": None, "text": np.where(train, "Train ", "test"), "int": train.astype(int), "bool": train,
            "float": train.astype(float), "bad_text": np.where(train, "train", "val"),
            "two": train.astype(int) * 2, "short": train[:-1].astype(int),
            "object": np.array([None] * n, dtype=object)}[kind]


def make_lengths(case: dict, frames: int) -> np.ndarray | None:
    n, kind = case["n"], case["lengths"]
    given = np.random.default_rng(case["seed"]).integers(1, max(frames, 1) + 1, n)
    return {"none": None, "ok": given, "zero": np.zeros(n, int),
            "too_long": np.full(n, frames + 1), "fraction": np.full(n, 1.5), "short": np.ones(max(n - 1, 0), int)
            }[kind]


def write(path: Path, arrays: dict[str, np.ndarray], npz: bool) -> None:
    if npz:
        np.savez(path, **arrays)
    else:
        np.save(path, arrays["data"], allow_pickle=True)


def corrupt(path: Path, how: str, seed: int) -> None:
    raw = path.read_bytes()
    if how == "truncate":
        path.write_bytes(raw[:max(1, len(raw) * 2 // 3)])
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(seed).bytes(200))
    elif how == "empty":
        path.write_bytes(b"")


def _per_sample_ok(arr: np.ndarray, n: int) -> np.ndarray | None:
    arr = np.asarray(arr)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr if arr.ndim == 1 and len(arr) == n else None


def acceptable(case: dict, data: np.ndarray, labels, split, lengths) -> tuple[bool, np.ndarray | None]:
    """The rules of docs/data.md, restated: (input acceptable, kept sample indices)."""
    if case["corrupt"] != "none" or data.dtype.kind not in "fiu" or data.ndim not in (4, 5) or 0 in data.shape:
        return False, None
    n, t, v, c = data.shape if data.ndim == 4 else (data.shape[0], data.shape[2], data.shape[3], data.shape[1])
    if v != 20 or c not in (2, 3) or labels is None:
        return False, None
    lab = _per_sample_ok(labels, n)
    if lab is None or lab.dtype.kind not in "iufU":
        return False, None
    if lab.dtype.kind in "iuf":
        if not np.isfinite(lab).all() or (lab != np.round(lab)).any() or lab.min() < 0 or lab.max() >= 10_000:
            return False, None
    if split is not None:
        sp = _per_sample_ok(split, n)
        if sp is None or sp.dtype.kind not in "Ubiuf":
            return False, None
        if sp.dtype.kind == "U" and not set(np.char.lower(np.char.strip(sp))) <= {"train", "test"}:
            return False, None
        if sp.dtype.kind in "iuf" and not np.isin(sp, [0, 1]).all():
            return False, None
    if lengths is not None:
        ln = _per_sample_ok(lengths, n)
        if ln is None or (ln != np.round(ln)).any() or ln.min() < 1 or ln.max() > t:
            return False, None
    with np.errstate(over="ignore"):
        samples = np.asarray(data, dtype=np.float32)
    if data.ndim == 4:
        samples = samples[..., None].transpose(0, 3, 1, 2, 4)  # (N, C, T, V, 1)
    good = []
    for i in range(n):
        sample = samples[i] if lengths is None else samples[i][:, :int(lengths[i])]
        good.append(bool((np.abs(samples[i]) <= 1e15).all() and  # NaN, inf, beyond the prepared format's bound
                          (sample[:c if c < 3 else 3] != 0).any()))
    good = np.array(good)
    if not good.all() and (not case["skip_bad"] or not good.any()):
        return False, None
    return True, np.flatnonzero(good)


def run_case(case: dict, root: Path) -> str:
    data = make_data(case)
    labels, split = make_labels(case), make_split(case)
    frames = data.shape[1] if data.ndim == 4 else (data.shape[2] if data.ndim >= 3 else 0)
    lengths = make_lengths(case, frames)
    arrays_path = root / ("data.npy" if case["container"] == "npy" else "data.npz")
    key = "other" if case["container"] == "npz_other_key" else "data"
    npz = case["container"] != "npy"
    stored = {key: data.astype(object) if case["corrupt"] == "object" else data}
    side: dict[str, Path | None] = {"labels": None, "split": None, "lengths": None}
    for name, value in (("labels", labels), ("split", split), ("lengths", lengths)):
        if value is None:
            continue
        if npz and not (name == "labels" and case["labels_file"]):
            stored[name] = value
        else:
            side[name] = root / f"{name}.npy"
            np.save(side[name], value, allow_pickle=True)
    write(arrays_path, {"data": stored[key]} if not npz else stored, npz)
    corrupt(arrays_path, case["corrupt"], case["seed"])
    out = root / "out"
    write_earlier_dataset(out)
    earlier = snapshot(out)
    normalization = {"off": OFF, "defaults": NormalizeOptions(), "pad": NormalizeOptions(temporal="pad", frames=0,
                                                                                       align="none")}
    ok, kept = acceptable(case, data, labels, split, lengths)
    if npz and key != "data":
        ok = False  # the skeletons are not under the key the command looks for
    if case["corrupt"] == "object":
        ok = False
    try:
        prepare_custom(arrays_path, KINECT20, out, labels=side["labels"], split=side["split"],
                       lengths=side["lengths"], normalization=normalization[case["normalize"]],
                       skip_bad=case["skip_bad"])
    except UserError as err:
        message = str(err)
        named = [str(p) for p in [arrays_path, *side.values()] if p is not None]
        assert any(p in message for p in named), f"error names no input file: {message}"
        assert snapshot(out) == earlier, "the output directory was changed"
        assert not staging_left(root)
        assert not ok, f"an acceptable input was refused: {message}\n{case}"
        return "refused"
    assert ok, f"a dataset was made from an unacceptable input: {case}"
    meta, prepared = load_meta(out), np.asarray(open_data(out))
    assert prepared.shape[0] == len(kept) and np.isfinite(prepared).all()
    lab = np.asarray(labels).reshape(-1)
    if lab.dtype.kind == "U":
        assert [meta.class_names[k] for k in meta.labels] == lab[kept].tolist()
    else:
        assert meta.labels.tolist() == lab[kept].astype(int).tolist()
    if case["normalize"] == "off":
        source = np.asarray(data, dtype=np.float32)  # finite here: the input was acceptable
        source = source[..., None].transpose(0, 3, 1, 2, 4) if data.ndim == 4 else source
        for row, i in enumerate(kept):
            expected = source[i].copy()
            if lengths is not None:
                expected[:, int(np.asarray(lengths).reshape(-1)[i]):] = 0
            np.testing.assert_array_equal(prepared[row], expected)
    return "prepared"


@pytest.mark.parametrize("key, value", SINGLE_FAULTS, ids=[f"{k}={v}" for k, v in SINGLE_FAULTS])
def test_each_fault_alone_is_refused_naming_the_file(key, value, tmp_path):
    """Every fault in a good input, alone (the random mix below may hide one behind another): refused
    (all_zero with skip_bad: prepared without that recording)."""
    needs = {"m": {"ndim": 5}, "rare": {"dtype": "float64"}, "split": {"split": "text"},
             "lengths": {"lengths": "ok"}}.get(key, {})  # where the fault can show
    case = with_shape({**{k: v[0] for k, v in GOOD.items()}, "n": 3, "t": 4, "seed": 1,
                       "labels_file": True, **needs, key: value})
    assert run_case(case, tmp_path) == "refused"


def test_fuzz_prepare_custom_inputs():
    outcomes: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=cases())
    def check(case):
        with tempfile.TemporaryDirectory() as tmp, time_limit(30):  # a hang fails, never blocks the suite
            outcomes[run_case(case, Path(tmp))] += 1

    check()
    total = sum(outcomes.values())
    print(f"\nprepare custom fuzz: {total} inputs tried: {dict(outcomes)}")
    assert outcomes["prepared"] >= total // 10 and outcomes["refused"] >= total // 10, dict(outcomes)
