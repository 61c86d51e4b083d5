"""Reading what a user hands to `skelssl prepare custom`, with an error naming the file (and key) for
every input that is not what it should be: arrays of the wrong kind or shape, unreadable or truncated files,
labels, splits and lengths of the wrong length, kind or range.

Two sources of recordings:
- one array file: .npy, or .npz with the array under a key, of shape (N, T, V, C) or (N, C, T, V, M);
- a folder of .npy files, one recording each, (T, V, C) or (T, M, V, C), of any lengths, with a labels
  CSV `file,label[,split]` (the file name with or without .npy; label a class index or a class name).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.data.prepared import COORDINATE_LIMIT, usable_values
from skelssl.errors import UserError

MAX_CLASSES = 10_000  # more classes than this without --class-names is a labelling mistake, not a dataset


def _describe(path: Path, key: str | None) -> str:
    return f"{path} (array '{key}')" if key else str(path)


def load_array(path: Path, key: str | None, what: str, mmap: bool = True) -> np.ndarray:
    """The array in a .npy file, or under `key` in a .npz file; never unpickles.

    Any failure to read the file (not a NumPy file, truncated, a broken zip, pickled objects) is a
    UserError naming the file and key.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} file '{path}' does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        loaded = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as err:  # a user's file in any state: every parse failure is the same message
        raise UserError(f"{path}: cannot read the {what} as a NumPy .npy/.npz file "
                        f"({type(err).__name__}: {str(err)[:200]})") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded as archive:
        if key is None or key not in archive.files:
            hint = f"no array '{key}'" if key else "a .npz holds several arrays"
            raise UserError(f"{path}: {hint} in the .npz (it holds {sorted(archive.files)}); pass the {what} "
                            "as a .npy file or name its key")
        try:
            return archive[key]
        except Exception as err:
            raise UserError(f"{_describe(path, key)}: cannot read the {what} ({type(err).__name__}: "
                            f"{str(err)[:200]})") from None


def npz_keys(path: Path) -> list[str]:
    """The keys of a .npz file ([] for a .npy or unreadable file: load_array reports those)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return list(archive.files)
    except Exception:
        return []


def check_numeric(arr: np.ndarray, source: str, what: str) -> None:
    """Coordinates must be real numbers: refuse booleans, complex numbers, strings, objects, records."""
    kind = arr.dtype.kind
    if kind in "fiu":
        return
    reasons = {"b": "booleans", "c": "complex numbers", "O": "Python objects", "U": "text", "S": "bytes",
               "V": "records", "M": "dates", "m": "time spans"}
    raise UserError(f"{source}: the {what} hold {reasons.get(kind, arr.dtype.name)} ({arr.dtype}); "
                    "expected real numbers (float or int)")


def per_sample(arr: np.ndarray, n: int, source: str, what: str) -> np.ndarray:
    """A (n,) or (n, 1) array as (n,); anything else is an error naming its shape."""
    arr = np.asarray(arr)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or len(arr) != n:
        raise UserError(f"{source}: {what} of shape {arr.shape}; expected one per sample, ({n},)")
    return arr


def _integers(arr: np.ndarray, source: str, what: str) -> np.ndarray:
    """Integral values as int64 (floats such as 3.0 are accepted, 3.7 or NaN are not)."""
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and len(arr) and arr.max() > np.iinfo(np.int64).max:
            raise UserError(f"{source}: {what} value {arr.max()} is too large")
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (np.abs(arr) > 2**53)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(f"{source}: {what} of sample {i} is {arr[i]!r}, not an integer")
        return arr.astype(np.int64)
    kind = {"b": "booleans", "c": "complex numbers", "U": "text", "S": "bytes", "O": "objects"}
    raise UserError(f"{source}: {what} hold {kind.get(arr.dtype.kind, str(arr.dtype))}; expected integers")


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} file '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read the {what} as UTF-8 text ({err})") from None


def read_class_names(path: str | Path) -> list[str]:
    path = Path(path)
    text = _read_text(path, "class names")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UserError(f"{path}: no class names (expected one name a line)")
    return names


def _check_distinct(names: list[str], source: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UserError(f"{source}: class name '{name}' appears twice")
        seen.add(name)


def labels_and_classes(raw: np.ndarray, source: str, n: int,
                       class_names: list[str] | None, names_source: str) -> tuple[np.ndarray, list[str]]:
    """(labels int64 (n,), class names) from class indices 0..K-1 or from class names (text)."""
    raw = per_sample(raw, n, source, "labels")
    if class_names is not None:
        _check_distinct(class_names, names_source)
    if raw.dtype.kind in "US":
        text = [str(v).strip() for v in raw.astype(str)]
        if class_names is None:
            class_names = sorted(set(text))
        index = {name: k for k, name in enumerate(class_names)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise UserError(f"{source}: label(s) {unknown[:3]} are not in the class names of {names_source}")
        return np.array([index[t] for t in text], dtype=np.int64), list(class_names)
    labels = _integers(raw, source, "label")
    if len(labels) and labels.min() < 0:
        i = int(np.argmin(labels))
        raise UserError(f"{source}: label of sample {i} is {labels[i]}; labels are class indices 0..K-1")
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    if class_names is not None:
        if num_classes > len(class_names):
            raise UserError(f"{source}: label {num_classes - 1} but {names_source} names only "
                            f"{len(class_names)} classes")
        return labels, list(class_names)
    if num_classes > MAX_CLASSES:
        i = int(np.argmax(labels))
        raise UserError(f"{source}: label {labels[i]} of sample {i} would make {num_classes} classes; labels are "
                        f"class indices 0..K-1 (renumber them, or give --class-names for more than "
                        f"{MAX_CLASSES} classes)")
    return labels, [f"class_{k}" for k in range(num_classes)]


def split_mask(raw: np.ndarray, source: str, n: int) -> np.ndarray:
    """Per sample True = train, from 'train'/'test' text or 1/0 (bools too)."""
    raw = per_sample(raw, n, source, "split")
    if raw.dtype.kind in "US":
        values = np.char.lower(np.char.strip(raw.astype(str)))
        unknown = sorted(set(values.tolist()) - {"train", "test"})
        if unknown:
            raise UserError(f"{source}: split values must be 'train' or 'test', found {unknown[:3]}")
        return values == "train"
    if raw.dtype.kind in "biuf":
        if raw.dtype.kind != "b" and not np.isin(raw, [0, 1]).all():
            i = int(np.flatnonzero(~np.isin(raw, [0, 1]))[0])
            raise UserError(f"{source}: split of sample {i} is {raw[i]!r}; numeric split values must be 1 "
                            "(train) or 0 (test)")
        return raw.astype(bool)
    raise UserError(f"{source}: split holds {raw.dtype}; expected 'train'/'test' text or 1/0")


def given_lengths(raw: np.ndarray, source: str, n: int, frames: int) -> np.ndarray:
    lengths = _integers(per_sample(raw, n, source, "lengths"), source, "length")
    bad = (lengths < 1) | (lengths > frames)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{source}: length of sample {i} is {lengths[i]}; lengths must be 1..{frames} "
                        "(the frames of the array)")
    return lengths


# ---------------------------------------------------------------------------------------------------------
# Sources of recordings


@dataclass
class Recordings:
    """N recordings, each read as (T_i, M, V, C) float32 on demand.

    `frames` is the array's T (for a folder: the longest recording); `lengths` the lengths that come with the
    recordings (a folder's file lengths), or None; `labels`, `split` the raw arrays found beside them.
    """

    source: str
    num: int
    frames: int
    joints: int
    channels: int
    persons: int
    shape: tuple[int, ...]
    reader: Any
    names: list[str] | None  # file names of a folder's recordings; None for one array (sample numbers)
    lengths: np.ndarray | None = None
    labels: np.ndarray | None = None
    labels_source: str = ""
    split: np.ndarray | None = None
    split_source: str = ""

    def read(self, i: int) -> np.ndarray:
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: reported just below
            seq = self.reader(i)
        if not usable_values(seq).all():
            t, m, v, _ = np.argwhere(~usable_values(seq))[0]
            raise UserError(f"{self.where(i)}: NaN or infinite coordinate (or one beyond ±{COORDINATE_LIMIT:.0e}) at "
                            f"frame {t}, person {m}, joint {v}")
        return seq

    def where(self, i: int) -> str:
        return f"{self.source}: sample {i}" if self.names is None else f"{self.source}/{self.names[i]}.npy"


def array_recordings(path: Path, data_key: str) -> Recordings:
    """One .npy / .npz array of (N, T, V, C) or (N, C, T, V, M) recordings."""
    data = load_array(path, data_key, "skeletons")
    source = _describe(path, data_key if path.suffix == ".npz" or npz_keys(path) else None)
    check_numeric(data, source, "skeletons")
    if data.ndim == 4:
        n, t, v, c = data.shape
        m = 1

        def reader(i: int) -> np.ndarray:
            return np.asarray(data[i], dtype=np.float32)[:, None]
    elif data.ndim == 5:
        n, c, t, v, m = data.shape

        def reader(i: int) -> np.ndarray:
            return np.ascontiguousarray(np.asarray(data[i], dtype=np.float32).transpose(1, 3, 2, 0))
    else:
        raise UserError(f"{source}: skeletons must be (N, T, V, C) or (N, C, T, V, M), got shape {data.shape}")
    empty = [name for name, size in zip("NTVCM", (n, t, v, c, m)) if size == 0]
    if empty:
        raise UserError(f"{source}: shape {data.shape} has no {', '.join(empty)} (zero-length axis)")
    return Recordings(source=source, num=n, frames=t, joints=v, channels=c, persons=m, shape=tuple(data.shape),
                      reader=reader, names=None)


def folder_recordings(folder: Path, labels_csv: Path | None) -> Recordings:
    """A folder of .npy recordings, (T, V, C) or (T, M, V, C) each, with a labels CSV."""
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise UserError(f"{folder}: no .npy recordings in the folder")
    if labels_csv is None:
        raise UserError(f"{folder}: a folder of recordings needs --labels FILE.csv with lines "
                        "'file,label[,split]'")
    table = _read_label_csv(Path(labels_csv))
    by_stem = {f.stem: f for f in files}
    unknown = [name for name in table if name not in by_stem]
    if unknown:
        raise UserError(f"{labels_csv}: '{unknown[0]}' names no .npy file in {folder}")
    unlabelled = [f.name for f in files if f.stem not in table]
    if unlabelled:
        raise UserError(f"{folder}/{unlabelled[0]}: no line for it in {labels_csv} "
                        f"({len(unlabelled)} recording(s) unlabelled)")
    names = list(table)
    shapes = []
    for name in names:
        arr = load_array(by_stem[name], None, "recording")
        check_numeric(arr, str(by_stem[name]), "coordinates")
        if arr.ndim not in (3, 4) or 0 in arr.shape:
            raise UserError(f"{by_stem[name]}: a recording is (T, V, C) or (T, M, V, C) with no empty axis, "
                            f"got shape {arr.shape}")
        shapes.append(arr.shape if arr.ndim == 4 else (arr.shape[0], 1) + arr.shape[1:])
    first = shapes[0][1:]
    for name, shape in zip(names, shapes):
        if shape[1:] != first:
            raise UserError(f"{by_stem[name]}: (M, V, C) = {shape[1:]} differs from {by_stem[names[0]]}'s {first}")
    lengths = np.array([s[0] for s in shapes], dtype=np.int64)
    m, v, c = first

    def reader(i: int) -> np.ndarray:
        arr = np.asarray(np.load(by_stem[names[i]], allow_pickle=False), dtype=np.float32)
        return arr if arr.ndim == 4 else arr[:, None]

    rows = list(table.values())
    has_split = [len(r) > 1 for r in rows]
    if any(has_split) and not all(has_split):
        raise UserError(f"{labels_csv}: give a split for every recording or for none")
    return Recordings(source=str(folder), num=len(names), frames=int(lengths.max()), joints=v, channels=c,
                      persons=m, shape=(len(names), int(lengths.max()), m, v, c), reader=reader, names=names,
                      lengths=lengths, labels=np.array([r[0] for r in rows]), labels_source=str(labels_csv),
                      split=np.array([r[1] for r in rows]) if all(has_split) else None,
                      split_source=str(labels_csv))


def _read_label_csv(path: Path) -> dict[str, list[str]]:
    """file -> [label, (split)] from a CSV; an optional header line starts with 'file'."""
    text = _read_text(path, "labels")
    table: dict[str, list[str]] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or (number == 1 and cells[0].lower() == "file"):
            continue
        if len(cells) not in (2, 3) or not cells[0] or not cells[1]:
            raise UserError(f"{path}:{number}: expected 'file,label' or 'file,label,split', got {row}")
        name = cells[0][:-4] if cells[0].endswith(".npy") else cells[0]
        if name in table:
            raise UserError(f"{path}:{number}: '{name}' is listed twice")
        table[name] = cells[1:]
    if not table:
        raise UserError(f"{path}: no labelled recordings")
    return table


def csv_labels(raw: np.ndarray, source: str) -> np.ndarray:
    """Labels from a CSV are text: a column of integers becomes class indices, anything else class names."""
    text = [str(v) for v in raw]
    if all(t.lstrip("-").isdigit() for t in text):
        values = [int(t) for t in text]
        if max(abs(v) for v in values) > 2**62:
            raise UserError(f"{source}: label {max(values, key=abs)} is not a class index 0..K-1")
        return np.array(values, dtype=np.int64)
    return np.array(text)
