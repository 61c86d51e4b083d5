"""Readers for other projects' preprocessed files -> the prepared format (`skelssl prepare convert`).

- aimclr: CrosSCLR/AimCLR/ActCLR `train_position.npy` (N, 3, T, 25, 2) + a label pickle holding
  (sample_names, labels); optionally `val_position.npy` + its pickle for the test part.
- ctrgcn: CTR-GCN `.npz` with `x_train`, `y_train` (one-hot), `x_test`, `y_test`; x is (N, T, 150) =
  (N, T, 2 persons x 25 joints x 3).
- pyskl: pyskl / mmaction2 annotation pickle: {"split": {"xsub_train": [names], "xsub_val": [...], ...},
  "annotations": [{"frame_dir", "label", "keypoint" (M, T, V, C), "total_frames", ...}]}.

Pickle files run code when loaded: they are read only with trust_pickle=True (`--trust-pickle`).
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.data.ntu import NTU120_CLASS_NAMES
from skelssl.data.prepared import PreparedMeta, PreparedWriter, PrepareReport, provenance, usable_values
from skelssl.errors import UserError
from skelssl.skeleton.layouts import Layout, get_layout

CHUNK = 256


def load_trusted_pickle(path: str | Path, trust_pickle: bool) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"'{path}' does not exist")
    if not trust_pickle:
        raise UserError(f"'{path}' is a pickle file: loading a pickle runs code stored in it. Pass "
                        "--trust-pickle (trust_pickle=True) only if you trust where the file comes from")
    with open(path, "rb") as handle:
        try:
            return pickle.load(handle)
        except Exception as err:  # a corrupt or foreign pickle
            raise UserError(f"{path}: cannot read the pickle ({type(err).__name__}: {err})") from None


MAX_CLASSES = 10_000  # a larger label is taken for a mistake (one label of 10^12 would name 10^12 classes)


def _lengths(chunk: np.ndarray) -> np.ndarray:
    """Last non-zero frame + 1 of each (C, T, V, M) sample of a chunk."""
    nonzero = np.abs(chunk).sum(axis=(1, 3, 4)) > 0
    return np.where(nonzero.any(1), chunk.shape[2] - np.argmax(nonzero[:, ::-1], axis=1), 0)


def _report(out_dir: Path, meta: PreparedMeta, start: float) -> PrepareReport:
    counts = {s: {p: int(len(i)) for p, i in parts.items()} for s, parts in meta.splits.items()}
    return PrepareReport(str(out_dir), len(meta.labels), counts, [], time.perf_counter() - start)


def _class_names(num: int, layout_name: str) -> list[str]:
    if layout_name == "ntu25" and num in (60, 120):
        return list(NTU120_CLASS_NAMES[:num])
    return [f"class_{k}" for k in range(num)]


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"'{path}' does not exist")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # not .npy, truncated, object arrays (they need pickle)
        raise UserError(f"{path}: cannot read as a .npy array ({_first_line(err)})") from None


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:120]


def _check_array(arr: np.ndarray, source: str, shape_text: str, ndim: int) -> None:
    """Numbers (integers or floats: not complex, bool, text or objects), `ndim` axes, none of them empty."""
    if arr.dtype.kind not in "iuf":
        raise UserError(f"{source}: {arr.dtype} values; skeletons must be real numbers (float or integer)")
    if arr.ndim != ndim or 0 in arr.shape:
        raise UserError(f"{source}: shape {arr.shape}; expected {shape_text} with no empty axis")


def _check_finite(chunk: np.ndarray, source: str, first_row: int) -> None:
    """UserError naming the first sample of the chunk with NaN, inf or a value beyond prepared.COORDINATE_LIMIT."""
    wide = np.asarray(chunk, dtype=np.float64).reshape(len(chunk), -1)
    bad = ~usable_values(wide).all(axis=1)
    if bad.any():
        raise UserError(f"{source}: sample {first_row + int(np.argmax(bad))} holds NaN, infinite or out-of-range "
                        "values")


def _check_labels(values: Any, source: str) -> np.ndarray:
    """Whole numbers 0..MAX_CLASSES-1 as int64; UserError naming the first bad entry otherwise."""
    try:
        arr = np.asarray(values)
    except Exception:
        arr = np.zeros(0, dtype=object)
    if arr.dtype.kind in "iuf" and any(isinstance(v, (bool, np.bool_)) for v in values):
        arr = np.zeros(0, dtype=object)  # True among the labels: numpy would make it class 1
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        raise UserError(f"{source}: labels must be a list of integers, found {arr.dtype} of shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr != np.floor(arr)) | (arr < 0) | (arr >= MAX_CLASSES) \
        if arr.dtype.kind == "f" else (arr < 0) | (arr >= MAX_CLASSES)
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(f"{source}: label {arr[i].item()!r} of sample {i} is not a class index "
                        f"0..{MAX_CLASSES - 1}")
    return arr.astype(np.int64)


def _get_layout(layout: str, source: str, joints: int) -> Layout:
    lay = get_layout(layout)  # LayoutError is a UserError
    if lay.num_joints != joints:
        raise UserError(f"{source}: {joints} joints per frame but layout '{lay.name}' has {lay.num_joints} "
                        "(pass --layout)")
    return lay


def convert_aimclr(data_path: str | Path, label_path: str | Path, out_dir: str | Path, trust_pickle: bool = False,
                   test_data: str | Path | None = None, test_labels: str | Path | None = None,
                   layout: str = "ntu25") -> PrepareReport:
    start = time.perf_counter()
    parts = [(Path(data_path), label_path)]
    if test_data:
        if not test_labels:
            raise UserError("--test-input needs --test-labels (the val label pickle)")
        parts.append((Path(test_data), test_labels))
    arrays, names, labels = [], [], []
    for path, lab in parts:
        if lab is None:
            raise UserError(f"{path}: the aimclr format needs its label pickle (--labels)")
        arr = _load_npy(path)
        _check_array(arr, str(path), "(N, C, T, V, M)", 5)
        content = load_trusted_pickle(lab, trust_pickle)
        try:
            sample_names, sample_labels = content
            sample_names, sample_labels = list(sample_names), list(sample_labels)
        except (TypeError, ValueError):
            raise UserError(f"{lab}: expected a pickle of (sample_names, labels)") from None
        if len(sample_labels) != arr.shape[0] or len(sample_names) != arr.shape[0]:
            raise UserError(f"{path}: {arr.shape[0]} samples but {lab} holds {len(sample_names)} names and "
                            f"{len(sample_labels)} labels")
        arrays.append(arr)
        names += [str(n).split(".")[0] for n in sample_names]
        labels.append(_check_labels(sample_labels, str(lab)))
    if len({a.shape[1:] for a in arrays}) != 1:
        raise UserError(f"train and test arrays differ in shape: {[a.shape for a in arrays]}")
    if len(set(names)) != len(names):
        raise UserError(f"{', '.join(str(lab) for _, lab in parts)}: sample name "
                        f"'{next(n for n in names if names.count(n) > 1)}' appears twice")
    all_labels = np.concatenate(labels)
    n_train = arrays[0].shape[0]
    n = sum(a.shape[0] for a in arrays)
    lay = _get_layout(layout, str(parts[0][0]), arrays[0].shape[3])
    with PreparedWriter(out_dir, (n,) + arrays[0].shape[1:]) as writer:
        lengths = np.zeros(n, dtype=np.int64)
        row = 0
        for (path, _), arr in zip(parts, arrays):
            for lo in range(0, arr.shape[0], CHUNK):
                chunk = np.asarray(arr[lo:lo + CHUNK])
                _check_finite(chunk, str(path), lo)
                writer.data[row:row + len(chunk)] = chunk
                lengths[row:row + len(chunk)] = _lengths(chunk)
                row += len(chunk)
        num_classes = int(all_labels.max()) + 1
        meta = PreparedMeta(dataset="aimclr-import", layout=lay, class_names=_class_names(num_classes, lay.name),
                            labels=all_labels, lengths=lengths, sample_names=names,
                            splits={"default": {"train": np.arange(n_train), "test": np.arange(n_train, n)}},
                            provenance=provenance("prepare convert --format aimclr",
                                                  inputs=[str(p) for p, _ in parts]))
        writer.finalize(meta)
    return _report(Path(out_dir), meta, start)


def convert_ctrgcn(npz_path: str | Path, out_dir: str | Path, layout: str = "ntu25") -> PrepareReport:
    start = time.perf_counter()
    npz_path = Path(npz_path)
    if not npz_path.is_file():
        raise UserError(f"'{npz_path}' does not exist")
    try:
        with np.load(npz_path, allow_pickle=False) as archive:
            members = set(archive.files)
            missing = [k for k in ("x_train", "y_train") if k not in members]
            if missing:
                raise UserError(f"{npz_path}: missing {missing}; a CTR-GCN file holds x_train, y_train, x_test, "
                                "y_test")
            if ("x_test" in members) != ("y_test" in members):
                raise UserError(f"{npz_path}: x_test and y_test come together; this file holds only one of them")
            names = [("x_train", "y_train")] + ([("x_test", "y_test")] if "x_test" in members else [])
            loaded = [(archive[x], archive[y]) for x, y in names]  # .npz members cannot be memory-mapped
    except UserError:
        raise
    except Exception as err:  # not a zip, truncated, object arrays
        raise UserError(f"{npz_path}: cannot read as a CTR-GCN .npz ({_first_line(err)})") from None
    xs, ys, widths = [], [], []
    for (x, y), (arr, target) in zip(names, loaded):
        _check_array(arr, f"{npz_path} {x}", "(N, T, 150)", 3)
        if arr.shape[2] != 150:
            raise UserError(f"{npz_path}: {x} has shape {arr.shape}, expected (N, T, 150) = 2 persons x 25 joints "
                            "x 3")
        if len(target) != len(arr):
            raise UserError(f"{npz_path}: {len(arr)} samples in {x} but {len(target)} labels in {y}")
        xs.append(arr)
        ys.append(_onehot_labels(target, f"{npz_path} {y}"))
        widths.append(target.shape[1] if target.ndim == 2 else int(ys[-1].max()) + 1)
    if len({a.shape[1] for a in xs}) != 1:
        raise UserError(f"{npz_path}: x_train and x_test differ in frames: {[a.shape for a in xs]}")
    n = sum(len(a) for a in xs)
    t = xs[0].shape[1]
    lay = _get_layout(layout, str(npz_path), 25)
    labels = np.concatenate(ys).astype(np.int64)
    with PreparedWriter(out_dir, (n, 3, t, 25, 2)) as writer:
        lengths = np.zeros(n, dtype=np.int64)
        row = 0
        for (x, _), arr in zip(names, xs):
            for lo in range(0, len(arr), CHUNK):
                chunk = np.asarray(arr[lo:lo + CHUNK])
                _check_finite(chunk, f"{npz_path} {x}", lo)
                chunk = chunk.astype(np.float32).reshape(-1, t, 2, 25, 3).transpose(0, 4, 1, 3, 2)  # (n,3,T,25,2)
                writer.data[row:row + len(chunk)] = chunk
                lengths[row:row + len(chunk)] = _lengths(chunk)
                row += len(chunk)
        n_train = len(xs[0])
        meta = PreparedMeta(dataset="ctrgcn-import", layout=lay, class_names=_class_names(max(widths), lay.name),
                            labels=labels, lengths=lengths, sample_names=[f"sample_{i:06d}" for i in range(n)],
                            splits={"default": {"train": np.arange(n_train), "test": np.arange(n_train, n)}},
                            provenance=provenance("prepare convert --format ctrgcn", input=str(npz_path)))
        writer.finalize(meta)
    return _report(Path(out_dir), meta, start)


def _onehot_labels(target: np.ndarray, source: str) -> np.ndarray:
    """Class indices from CTR-GCN's one-hot rows (exactly one 1, the rest 0) or from a vector of indices."""
    if target.ndim == 1:
        return _check_labels(target, source)
    if target.ndim != 2 or target.dtype.kind not in "iufb" or not 0 < target.shape[1] <= MAX_CLASSES:
        raise UserError(f"{source}: labels of shape {target.shape} ({target.dtype}); expected one-hot (N, classes)"
                        " or class indices (N,)")
    values = target.astype(np.float64)
    bad = ~(((values == 0) | (values == 1)).all(axis=1) & (values.sum(axis=1) == 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(f"{source}: row {i} is not one-hot (exactly one 1): {values[i][:8].tolist()}...")
    return values.argmax(axis=1).astype(np.int64)


def convert_pyskl(pkl_path: str | Path, out_dir: str | Path, trust_pickle: bool = False,
                  layout: str | None = None, max_persons: int = 2) -> PrepareReport:
    start = time.perf_counter()
    content = load_trusted_pickle(pkl_path, trust_pickle)
    if not isinstance(content, dict) or not isinstance(content.get("annotations"), (list, tuple)):
        raise UserError(f"{pkl_path}: expected a dict with 'split' and a list 'annotations' (pyskl format)")
    annotations = content["annotations"]
    if not annotations:
        raise UserError(f"{pkl_path}: no annotations")
    keypoints, names, labels, totals = [], [], [], []
    for k, ann in enumerate(annotations):
        where = f"{pkl_path}: annotation {k}"
        if not isinstance(ann, dict) or "keypoint" not in ann or "label" not in ann:
            raise UserError(f"{where} is not a dict with 'keypoint' and 'label'")
        name = ann.get("frame_dir", f"sample_{k:06d}")
        where = f"{where} ('{name}')"
        try:
            kp = np.asarray(ann["keypoint"])
        except Exception:
            kp = np.zeros(0, dtype=object)
        _check_array(kp, f"{where} keypoint", "(M, T, V, C)", 4)
        _check_finite(kp[None], f"{where} keypoint", 0)
        total = ann.get("total_frames", kp.shape[1])
        if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or not 0 < total <= kp.shape[1]:
            raise UserError(f"{where}: total_frames {total!r} is not a frame count 1..{kp.shape[1]}")
        keypoints.append(kp)
        names.append(str(name))
        labels.append(ann["label"])
        totals.append(int(total))
    labels_arr = _check_labels(labels, f"{pkl_path} (labels of the annotations)")
    if len(set(names)) != len(names):
        raise UserError(f"{pkl_path}: frame_dir '{next(n for n in names if names.count(n) > 1)}' appears twice")
    v, c = keypoints[0].shape[2:]
    if any(kp.shape[2:] != (v, c) for kp in keypoints):
        raise UserError(f"{pkl_path}: annotations differ in joints/coordinates")
    if layout is None and v != 25:
        raise UserError(f"{pkl_path}: {v} joints per frame; pass --layout with a layout YAML for them")
    lay = _get_layout(layout or "ntu25", str(pkl_path), v)
    t = max(kp.shape[1] for kp in keypoints)
    m = min(max(kp.shape[0] for kp in keypoints), max_persons)
    split_spec = content.get("split") or {}
    if not isinstance(split_spec, dict) or not all(isinstance(members, (list, tuple)) and
                                                   all(isinstance(x, str) for x in members)
                                                   for members in split_spec.values()):
        raise UserError(f"{pkl_path}: 'split' must map split names to lists of frame_dir names")
    index = {name: i for i, name in enumerate(names)}
    splits: dict[str, dict[str, np.ndarray]] = {}
    unknown = 0
    for key, members in split_spec.items():
        base, _, part = str(key).rpartition("_")
        if part not in ("train", "val", "test") or not base:
            base, part = str(key), "train"
        part = "test" if part in ("val", "test") else "train"
        splits.setdefault(base, {"train": np.zeros(0, np.int64), "test": np.zeros(0, np.int64)})
        splits[base][part] = np.array([index[mbr] for mbr in members if mbr in index], dtype=np.int64)
        unknown += sum(mbr not in index for mbr in members)
        if len(set(members)) != len(members):
            raise UserError(f"{pkl_path}: split '{key}' lists '{next(x for x in members if members.count(x) > 1)}'"
                            " twice")
    for base, parts in splits.items():
        both = np.intersect1d(parts["train"], parts["test"])
        if len(both):
            raise UserError(f"{pkl_path}: '{names[both[0]]}' is in both the train and the test list of split "
                            f"'{base}'")
    if not splits:
        splits = {"all": {"train": np.arange(len(names)), "test": np.zeros(0, np.int64)}}
    with PreparedWriter(out_dir, (len(annotations), c, t, v, m)) as writer:
        for i, kp in enumerate(keypoints):
            kp = kp.astype(np.float32)[:m]  # (M, T, V, C)
            writer.data[i, :, :kp.shape[1], :, :kp.shape[0]] = kp.transpose(3, 1, 2, 0)
        meta = PreparedMeta(dataset="pyskl-import", layout=lay,
                            class_names=_class_names(int(labels_arr.max()) + 1, lay.name), labels=labels_arr,
                            lengths=np.array(totals, dtype=np.int64), sample_names=names, splits=splits,
                            provenance=provenance("prepare convert --format pyskl", input=str(pkl_path),
                                                  split_members_not_in_annotations=unknown))
        writer.finalize(meta)
    return _report(Path(out_dir), meta, start)


def convert(fmt: str, input_path: str | Path, out_dir: str | Path, labels: str | Path | None = None,
            trust_pickle: bool = False, test_input: str | Path | None = None,
            test_labels: str | Path | None = None, layout: str | None = None) -> PrepareReport:
    """Dispatch for `skelssl prepare convert --format aimclr|ctrgcn|pyskl`."""
    if fmt == "aimclr":
        return convert_aimclr(input_path, labels, out_dir, trust_pickle=trust_pickle, test_data=test_input,
                              test_labels=test_labels, layout=layout or "ntu25")
    if fmt == "ctrgcn":
        return convert_ctrgcn(input_path, out_dir, layout=layout or "ntu25")
    if fmt == "pyskl":
        return convert_pyskl(input_path, out_dir, trust_pickle=trust_pickle, layout=layout)
    raise UserError(f"unknown format '{fmt}' (aimclr, ctrgcn or pyskl)")
