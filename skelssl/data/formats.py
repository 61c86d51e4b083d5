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

from skelssl.data.prepared import PreparedMeta, PreparedWriter, PrepareReport, provenance
from skelssl.errors import UserError
from skelssl.skeleton.layouts import get_layout

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


def _lengths(chunk: np.ndarray) -> np.ndarray:
    """Last non-zero frame + 1 of each (C, T, V, M) sample of a chunk."""
    nonzero = np.abs(chunk).sum(axis=(1, 3, 4)) > 0
    return np.where(nonzero.any(1), chunk.shape[2] - np.argmax(nonzero[:, ::-1], axis=1), 0)


def _report(out_dir: Path, meta: PreparedMeta, start: float) -> PrepareReport:
    counts = {s: {p: int(len(i)) for p, i in parts.items()} for s, parts in meta.splits.items()}
    return PrepareReport(str(out_dir), len(meta.labels), counts, [], time.perf_counter() - start)


def _class_names(labels: np.ndarray, layout_name: str) -> list[str]:
    num = int(labels.max()) + 1 if len(labels) else 0
    if layout_name == "ntu25" and num in (60, 120):
        from skelssl.data.ntu import NTU120_CLASS_NAMES

        return list(NTU120_CLASS_NAMES[:num])
    return [f"class_{k}" for k in range(num)]


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
        if not path.is_file():
            raise UserError(f"'{path}' does not exist")
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        content = load_trusted_pickle(lab, trust_pickle)
        try:
            sample_names, sample_labels = content
        except (TypeError, ValueError):
            raise UserError(f"{lab}: expected a pickle of (sample_names, labels)") from None
        if arr.ndim != 5 or len(sample_labels) != arr.shape[0]:
            raise UserError(f"{path}: shape {arr.shape} with {len(sample_labels)} labels; expected "
                            "(N, C, T, V, M) and N labels")
        arrays.append(arr)
        names += [str(n).split(".")[0] for n in sample_names]
        labels.append(np.asarray(sample_labels, dtype=np.int64))
    if len({a.shape[1:] for a in arrays}) != 1:
        raise UserError(f"train and test arrays differ in shape: {[a.shape for a in arrays]}")
    all_labels = np.concatenate(labels)
    all_labels = all_labels - all_labels.min() if all_labels.min() > 0 else all_labels
    n_train = arrays[0].shape[0]
    n = sum(a.shape[0] for a in arrays)
    lay = get_layout(layout)
    with PreparedWriter(out_dir, (n,) + arrays[0].shape[1:]) as writer:
        lengths = np.zeros(n, dtype=np.int64)
        row = 0
        for arr in arrays:
            for lo in range(0, arr.shape[0], CHUNK):
                chunk = np.asarray(arr[lo:lo + CHUNK], dtype=np.float32)
                writer.data[row:row + len(chunk)] = chunk
                lengths[row:row + len(chunk)] = _lengths(chunk)
                row += len(chunk)
        meta = PreparedMeta(dataset="aimclr-import", layout=lay, class_names=_class_names(all_labels, lay.name),
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
    archive = np.load(npz_path, allow_pickle=False)
    missing = [k for k in ("x_train", "y_train") if k not in archive.files]
    if missing:
        raise UserError(f"{npz_path}: missing {missing}; a CTR-GCN file holds x_train, y_train, x_test, y_test")
    parts = [("train", "x_train", "y_train")] + ([("test", "x_test", "y_test")]
                                                 if "x_test" in archive.files else [])
    xs = [archive[x] for _, x, _ in parts]  # .npz members cannot be memory-mapped
    ys = []
    for (_, x, y), arr in zip(parts, xs):
        onehot = archive[y]
        if arr.ndim != 3 or arr.shape[2] != 150:
            raise UserError(f"{npz_path}: {x} has shape {arr.shape}, expected (N, T, 150)")
        ys.append(onehot.argmax(axis=1) if onehot.ndim == 2 else onehot.astype(np.int64))
    n = sum(len(a) for a in xs)
    t = xs[0].shape[1]
    lay = get_layout(layout)
    labels = np.concatenate(ys).astype(np.int64)
    with PreparedWriter(out_dir, (n, 3, t, 25, 2)) as writer:
        lengths = np.zeros(n, dtype=np.int64)
        row = 0
        for arr in xs:
            for lo in range(0, len(arr), CHUNK):
                chunk = np.asarray(arr[lo:lo + CHUNK], dtype=np.float32).reshape(-1, t, 2, 25, 3)
                chunk = chunk.transpose(0, 4, 1, 3, 2)  # (n, 3, T, 25, 2)
                writer.data[row:row + len(chunk)] = chunk
                lengths[row:row + len(chunk)] = _lengths(chunk)
                row += len(chunk)
        n_train = len(xs[0])
        meta = PreparedMeta(dataset="ctrgcn-import", layout=lay, class_names=_class_names(labels, lay.name),
                            labels=labels, lengths=lengths, sample_names=[f"sample_{i:06d}" for i in range(n)],
                            splits={"default": {"train": np.arange(n_train), "test": np.arange(n_train, n)}},
                            provenance=provenance("prepare convert --format ctrgcn", input=str(npz_path)))
        writer.finalize(meta)
    return _report(Path(out_dir), meta, start)


def convert_pyskl(pkl_path: str | Path, out_dir: str | Path, trust_pickle: bool = False,
                  layout: str | None = None, max_persons: int = 2) -> PrepareReport:
    start = time.perf_counter()
    content = load_trusted_pickle(pkl_path, trust_pickle)
    if not isinstance(content, dict) or "annotations" not in content:
        raise UserError(f"{pkl_path}: expected a dict with 'split' and 'annotations' (pyskl format)")
    annotations = content["annotations"]
    if not annotations:
        raise UserError(f"{pkl_path}: no annotations")
    shapes = []
    for k, ann in enumerate(annotations):
        if "keypoint" not in ann or "label" not in ann:
            raise UserError(f"{pkl_path}: annotation {k} has no 'keypoint' or 'label'")
        kp = np.asarray(ann["keypoint"])
        if kp.ndim != 4:
            raise UserError(f"{pkl_path}: annotation {k} ('{ann.get('frame_dir')}') keypoint has shape "
                            f"{kp.shape}, expected (M, T, V, C)")
        shapes.append(kp.shape)
    v, c = shapes[0][2], shapes[0][3]
    if any(s[2:] != (v, c) for s in shapes):
        raise UserError(f"{pkl_path}: annotations differ in joints/coordinates")
    if layout is None and v != 25:
        raise UserError(f"{pkl_path}: {v} joints per frame; pass --layout with a layout YAML for them")
    try:
        lay = get_layout(layout or "ntu25")
    except ValueError as err:
        raise UserError(str(err)) from None
    if lay.num_joints != v:
        raise UserError(f"{pkl_path}: {v} joints but layout '{lay.name}' has {lay.num_joints}")
    t = max(s[1] for s in shapes)
    m = min(max(s[0] for s in shapes), max_persons)
    names = [str(ann.get("frame_dir", f"sample_{i:06d}")) for i, ann in enumerate(annotations)]
    labels = np.array([int(ann["label"]) for ann in annotations], dtype=np.int64)
    with PreparedWriter(out_dir, (len(annotations), c, t, v, m)) as writer:
        lengths = np.zeros(len(annotations), dtype=np.int64)
        for i, ann in enumerate(annotations):
            kp = np.asarray(ann["keypoint"], dtype=np.float32)[:m]  # (M, T, V, C)
            writer.data[i, :, :kp.shape[1], :, :kp.shape[0]] = kp.transpose(3, 1, 2, 0)
            lengths[i] = int(ann.get("total_frames", kp.shape[1]))
        index = {name: i for i, name in enumerate(names)}
        splits: dict[str, dict[str, np.ndarray]] = {}
        for key, members in (content.get("split") or {}).items():
            base, _, part = str(key).rpartition("_")
            if part not in ("train", "val", "test") or not base:
                base, part = str(key), "train"
            part = "test" if part in ("val", "test") else "train"
            splits.setdefault(base, {"train": np.zeros(0, np.int64), "test": np.zeros(0, np.int64)})
            splits[base][part] = np.array([index[mbr] for mbr in members if mbr in index], dtype=np.int64)
        if not splits:
            splits = {"all": {"train": np.arange(len(names)), "test": np.zeros(0, np.int64)}}
        meta = PreparedMeta(dataset="pyskl-import", layout=lay, class_names=_class_names(labels, lay.name),
                            labels=labels, lengths=lengths, sample_names=names, splits=splits,
                            provenance=provenance("prepare convert --format pyskl", input=str(pkl_path)))
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
