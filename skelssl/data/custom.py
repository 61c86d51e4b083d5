"""Your own skeletons: an .npy/.npz array + labels (+ split) + a layout YAML -> prepared dataset.

Accepted shapes: (N, T, V, C) — one person — or (N, C, T, V, M). Labels: integers 0..K-1, from a separate
.npy or the `labels` key of the .npz. Split (optional): per sample 'train'/'test' (or 1/0, True/False),
from a .npy or the `split` key; without it every sample is in the train part of a split named "all".
The layout YAML gives joints, edges (joint, parent), centre, parts, hands and left/right pairs (see
docs/data.md for a worked example). The valid length of a sample is its last non-zero frame + 1.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from skelssl.data.prepared import PreparedMeta, PreparedWriter, PrepareReport, provenance
from skelssl.errors import UserError
from skelssl.skeleton.layouts import Layout, get_layout

CHUNK = 256


def _load_array(path: Path, key: str | None, what: str) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{what} file '{path}' does not exist")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive:
                raise UserError(f"{path}: no array '{key}' in the .npz (it holds {sorted(archive.files)}); "
                                f"pass the {what} separately or rename the array")
            return archive[key]
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise UserError(f"{path}: cannot read as a .npy array ({err})") from None


def _split_mask(split: np.ndarray, source: str) -> np.ndarray:
    if split.dtype.kind in "US":
        values = np.char.lower(split.astype(str))
        unknown = sorted(set(values.tolist()) - {"train", "test"})
        if unknown:
            raise UserError(f"{source}: split values must be 'train' or 'test', found {unknown[:3]}")
        return values == "train"
    if split.dtype.kind in "biu":
        if not np.isin(split, [0, 1]).all():
            raise UserError(f"{source}: numeric split values must be 1 (train) or 0 (test)")
        return split.astype(bool)
    raise UserError(f"{source}: split must hold 'train'/'test' strings or 1/0")


def prepare_custom(arrays: str | Path, layout: str | Path | Layout, out_dir: str | Path,
                   labels: str | Path | None = None, split: str | Path | None = None,
                   class_names: str | Path | list[str] | None = None, name: str = "custom",
                   data_key: str = "data") -> PrepareReport:
    start = time.perf_counter()
    arrays = Path(arrays)
    try:
        layout = layout if isinstance(layout, Layout) else get_layout(str(layout))
    except (ValueError, OSError) as err:
        raise UserError(f"layout: {err}") from None
    data = _load_array(arrays, data_key, "skeleton")
    if data.ndim == 4:
        n, t, v, c = data.shape
        m = 1
    elif data.ndim == 5:
        n, c, t, v, m = data.shape
    else:
        raise UserError(f"{arrays}: skeletons must be (N, T, V, C) or (N, C, T, V, M), got shape {data.shape}")
    if v != layout.num_joints:
        raise UserError(f"{arrays}: {v} joints per frame but layout '{layout.name}' has {layout.num_joints}"
                        f" (with (N, T, V, C) the third axis is V; check the layout or the array's shape)")
    if c > 3:
        raise UserError(f"{arrays}: {c} coordinates per joint; at most 3 (x, y, z) are supported")
    label_arr = np.asarray(_load_array(Path(labels), None, "labels") if labels
                           else _load_array(arrays, "labels", "labels")).reshape(-1)
    if len(label_arr) != n:
        raise UserError(f"{len(label_arr)} labels for {n} samples")
    if label_arr.dtype.kind not in "iu" or label_arr.min() < 0:
        raise UserError("labels must be non-negative integers (class indices 0..K-1)")
    num_classes = int(label_arr.max()) + 1
    if class_names is None:
        names = [f"class_{k}" for k in range(num_classes)]
    elif isinstance(class_names, (str, Path)):
        names = [line.strip() for line in Path(class_names).read_text().splitlines() if line.strip()]
    else:
        names = list(class_names)
    if len(names) < num_classes:
        raise UserError(f"{len(names)} class names for labels up to {num_classes - 1}")
    if split:
        split_arr = np.asarray(_load_array(Path(split), None, "split")).reshape(-1)
    elif arrays.suffix == ".npz" and "split" in np.load(arrays).files:
        split_arr = np.asarray(_load_array(arrays, "split", "split")).reshape(-1)
    else:
        split_arr = None
    if split_arr is not None:
        if len(split_arr) != n:
            raise UserError(f"{len(split_arr)} split entries for {n} samples")
        train = _split_mask(split_arr, str(split or arrays))
        splits = {"default": {"train": np.nonzero(train)[0], "test": np.nonzero(~train)[0]}}
    else:
        splits = {"all": {"train": np.arange(n), "test": np.zeros(0, dtype=np.int64)}}
    lengths = np.zeros(n, dtype=np.int64)
    with PreparedWriter(out_dir, (n, c, t, v, m)) as writer:
        for lo in range(0, n, CHUNK):
            chunk = np.asarray(data[lo:lo + CHUNK], dtype=np.float32)
            if data.ndim == 4:
                chunk = chunk.transpose(0, 3, 1, 2)[..., None]
            if not np.isfinite(chunk).all():
                bad = lo + int(np.nonzero(~np.isfinite(chunk).reshape(len(chunk), -1).all(1))[0][0])
                raise UserError(f"{arrays}: sample {bad} holds NaN or infinite values")
            writer.data[lo:lo + len(chunk)] = chunk
            nonzero = np.abs(chunk).sum(axis=(1, 3, 4)) > 0  # (n, T)
            lengths[lo:lo + len(chunk)] = np.where(nonzero.any(1), t - np.argmax(nonzero[:, ::-1], axis=1), 0)
        meta = PreparedMeta(dataset=name, layout=layout, class_names=names[:max(num_classes, len(names))],
                            labels=label_arr.astype(np.int64), lengths=lengths,
                            sample_names=[f"{name}_{i:06d}" for i in range(n)], splits=splits,
                            provenance=provenance("prepare custom", arrays=str(arrays.resolve()),
                                                  source_shape=list(data.shape)))
        writer.finalize(meta)
    counts = {s: {part: int(len(idx)) for part, idx in parts.items()} for s, parts in splits.items()}
    return PrepareReport(str(out_dir), n, counts, [], time.perf_counter() - start)
