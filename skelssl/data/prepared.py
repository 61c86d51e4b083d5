"""The prepared-dataset format: one memory-mapped array plus a JSON file.

A prepared dataset is a directory:

    DIR/data.npy     float32 (N, C, T, V, M): every sample, zero-padded to T frames
    DIR/meta.json    {"format": "skelssl-prepared", "version": 1, "dataset", "layout", "class_names",
                      "labels" [N], "lengths" [N], "sample_names" [N],
                      "splits": {split: {"train": [indices], "test": [indices]}}, "provenance": {...},
                      "extra_arrays": [names of further DIR/<name>.npy files, e.g. "actionlets"]}

Writers fill a hidden staging directory beside DIR and rename it into place only when complete, so an
interrupted `prepare` never leaves a half-written dataset behind; DIR may replace only an earlier prepared
dataset (skelssl.outputs: a folder of the user's or a file is refused, untouched).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.console import track
from skelssl.data.normalize import dataset_warnings
# the value rule, re-exported: readers and users import it from here too
from skelssl.data.values import COORDINATE_LIMIT, unusable_problem, unusable_rows, usable_values  # noqa: F401
from skelssl.errors import BadInputError, UserError
from skelssl.outputs import check_replaceable, is_staging_name, list_entries, move_into_place, staging_dir
from skelssl.skeleton.layouts import Layout, get_layout

FORMAT_NAME = "skelssl-prepared"
FORMAT_VERSION = 1
DATA_FILE = "data.npy"
META_FILE = "meta.json"
SKIPPED_FILE = "skipped.json"  # the input files a prepare left out, and why


class PreparedDatasetError(UserError):
    """A prepared dataset is missing or malformed."""


@dataclass
class PreparedMeta:
    dataset: str
    layout: Layout
    class_names: list[str]
    labels: np.ndarray
    lengths: np.ndarray
    sample_names: list[str]
    splits: dict[str, dict[str, np.ndarray]]
    provenance: dict[str, Any] = field(default_factory=dict)
    extra_arrays: list[str] = field(default_factory=list)
    # What each of the C channels holds, e.g. ["x", "y", "score"]; empty = coordinates x, y (, z).
    channel_names: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> dict[str, Any]:
        layout = self.layout.name if _is_builtin(self.layout) else self.layout.to_dict()
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "dataset": self.dataset,
            "layout": layout,
            "class_names": list(self.class_names),
            "labels": [int(v) for v in self.labels],
            "lengths": [int(v) for v in self.lengths],
            "sample_names": list(self.sample_names),
            "splits": {s: {part: [int(i) for i in idx] for part, idx in parts.items()}
                       for s, parts in self.splits.items()},
            "provenance": self.provenance,
            "extra_arrays": list(self.extra_arrays),
            **({"channel_names": list(self.channel_names)} if self.channel_names else {}),
        }


def _is_builtin(layout: Layout) -> bool:
    try:
        return get_layout(layout.name) == layout
    except ValueError:
        return False


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def prepared_owner_problem(folder: Path) -> str | None:
    """None when `folder` is skelssl's own prepared output (outputs.check_replaceable): a prepared dataset
    (its meta.json carries the format marker) holding only the files it writes, or a folder of such datasets
    (PKU-MMD's trimmed/ and untrimmed/); else what shows it is not."""
    names = list_entries(folder)
    meta_path = folder / META_FILE
    if meta_path.is_file():
        try:
            raw = json.loads(meta_path.read_text())
        except (ValueError, OSError):
            raw = None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
            return f"its {META_FILE} is not a skelssl dataset's"
        extra = raw.get("extra_arrays") if isinstance(raw.get("extra_arrays"), list) else []
        known = {DATA_FILE, META_FILE, SKIPPED_FILE} | {f"{name}.npy" for name in extra if isinstance(name, str)}
        foreign = [name for name in names if name not in known and not name.endswith(".tmp")]
        return f"beside a prepared dataset it holds {', '.join(foreign[:4])}" if foreign else None
    if names and all((folder / name).is_dir() and (folder / name / META_FILE).is_file() and
                     prepared_owner_problem(folder / name) is None for name in names):
        return None
    return f"it holds {', '.join(names[:4])}{' ...' if len(names) > 4 else ''} and no skelssl {META_FILE}"


def check_prepared_out(out_dir: str | Path) -> None:
    """Refuse an --out that is not absent, empty, or an earlier prepared output of skelssl's (nothing touched)."""
    check_replaceable(out_dir, prepared_owner_problem, "prepared dataset")


def remove_stale_staging(out_dir: Path) -> None:
    """Staging folders of an earlier prepare into `out_dir` that was killed (hidden, named by outputs.py)."""
    if out_dir.parent.is_dir():
        for path in out_dir.parent.glob(f".{out_dir.name}.*"):
            if is_staging_name(path.name) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


class PreparedWriter:
    """Streams samples into DIR/data.npy without holding the dataset in memory.

    Use as a context manager; the dataset appears at `out_dir` only after `finalize()` succeeds.
    An existing dataset at `out_dir` is replaced only then, so a failure leaves it untouched; an `out_dir`
    that is not an earlier prepared dataset (a folder of other files, a file) is refused at once.
    """

    def __init__(self, out_dir: str | Path, shape: tuple[int, int, int, int, int]):
        self.out_dir = Path(out_dir)
        check_prepared_out(self.out_dir)
        remove_stale_staging(self.out_dir)
        self.tmp_dir = staging_dir(self.out_dir)
        self.shape = tuple(int(s) for s in shape)
        self.data = np.lib.format.open_memmap(self.tmp_dir / DATA_FILE, mode="w+", dtype=np.float32,
                                              shape=self.shape)
        self._extra: dict[str, np.memmap] = {}
        self._done = False

    def add_array(self, name: str, shape: tuple[int, ...], dtype: Any = np.float32) -> np.memmap:
        """A further per-dataset array saved as DIR/<name>.npy (e.g. ground-truth actionlets)."""
        arr = np.lib.format.open_memmap(self.tmp_dir / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
        self._extra[name] = arr
        return arr

    def finalize(self, meta: PreparedMeta, keep_rows: np.ndarray | None = None) -> Path:
        """Write meta.json and move the dataset into place.

        keep_rows: if given, only these rows of data.npy (and of every extra array with the same first
        dimension) are kept, in this order — for pipelines that reserve one row per input file and skip
        bad files; the rewrite streams chunk by chunk.
        """
        n_out = self.shape[0] if keep_rows is None else len(keep_rows)
        if len(meta.labels) != n_out:
            raise PreparedDatasetError(f"{len(meta.labels)} labels for {n_out} samples")
        meta.extra_arrays = sorted(self._extra)
        self.data.flush()
        extra_rows = {name: arr.shape[0] if arr.ndim else 0 for name, arr in self._extra.items()}
        for arr in self._extra.values():
            arr.flush()
        del self.data
        self._extra.clear()
        if keep_rows is not None and n_out != self.shape[0] or (
                keep_rows is not None and not np.array_equal(keep_rows, np.arange(self.shape[0]))):
            keep = np.asarray(keep_rows, dtype=np.int64)
            compact_rows(self.tmp_dir / DATA_FILE, keep)
            for name, rows in extra_rows.items():
                if rows == self.shape[0]:
                    compact_rows(self.tmp_dir / f"{name}.npy", keep)
            self.shape = (n_out,) + self.shape[1:]
        write_json_atomic(self.tmp_dir / META_FILE, meta.to_json())
        try:  # never put in place a dataset that would not read back
            _, written = open_prepared(self.tmp_dir)
            bad = unusable_rows(written, first_only=True)
            if bad:
                raise PreparedDatasetError(f"sample {bad[0]} ('{meta.sample_names[bad[0]]}') "
                                           f"{unusable_problem(written[bad[0]])}")
            del written
        except PreparedDatasetError as err:
            raise PreparedDatasetError(f"the dataset for {self.out_dir} fails its own checks, nothing was written: "
                                       f"{err}") from None
        move_into_place(self.tmp_dir, self.out_dir, prepared_owner_problem, "prepared dataset")
        self._done = True
        return self.out_dir

    def abort(self) -> None:
        if not self._done and self.tmp_dir.exists():
            self.data = None  # type: ignore[assignment]
            self._extra.clear()
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def __enter__(self) -> "PreparedWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._done:
            self.abort()


def write_prepared(out_dir: str | Path, data: np.ndarray, meta: PreparedMeta,
                   extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write an in-memory dataset (small data, tests, synthetic) in the prepared format."""
    with PreparedWriter(out_dir, data.shape) as writer:
        writer.data[:] = data
        for name, arr in (extra or {}).items():
            writer.add_array(name, arr.shape, arr.dtype)[:] = arr
        return writer.finalize(meta)


def load_meta(root: str | Path) -> PreparedMeta:
    """Read and check DIR/meta.json: every key of the format present with values of the right kind, one label,
    length and name per sample, labels within the classes, split indices within the samples, no sample in both
    parts of a split. Raises PreparedDatasetError naming meta.json and the key (see `open_prepared` for the
    checks against data.npy)."""
    root = Path(root)
    meta_path = root / META_FILE
    if not root.is_dir():
        raise PreparedDatasetError(f"no prepared dataset at '{root}': the directory does not exist "
                                   "(run `skelssl prepare ...` first, or set data.root)")
    if not meta_path.is_file() or not (root / DATA_FILE).is_file():
        raise PreparedDatasetError(f"'{root}' is not a prepared dataset: it needs {DATA_FILE} and {META_FILE} "
                                   "(run `skelssl prepare ...` to create one)")
    try:
        raw = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise PreparedDatasetError(f"{meta_path}:{err.lineno}: not valid JSON ({err.msg})") from None
    except (UnicodeDecodeError, RecursionError):
        raise PreparedDatasetError(f"{meta_path}: not a JSON text file") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise PreparedDatasetError(f"{meta_path}: not a {FORMAT_NAME} metadata file")
    check = _MetaChecker(meta_path, raw)
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise PreparedDatasetError(f"{meta_path}: format version {version!r}; this skelssl reads version "
                                   f"{FORMAT_VERSION} (written by a newer skelssl? update skelssl)")
    class_names = check.texts("class_names")
    if not class_names:
        raise PreparedDatasetError(f"{meta_path}: key 'class_names' is empty")
    if len(set(class_names)) != len(class_names):
        twice = next(n for n in class_names if class_names.count(n) > 1)
        raise PreparedDatasetError(f"{meta_path}: key 'class_names' lists '{twice}' twice")
    n_data = _rows_in_npy(root / DATA_FILE)  # the per-sample keys must each have one entry per row of data.npy
    labels = check.integers("labels", 0, len(class_names) - 1, f"a class index 0..{len(class_names) - 1}",
                            count=n_data)
    n = len(labels)
    lengths = check.integers("lengths", 0, None, "a frame count >= 0", count=n)
    sample_names = check.texts("sample_names", count=n)
    splits_raw = check.value("splits", dict)
    if not splits_raw:
        raise PreparedDatasetError(f"{meta_path}: key 'splits' is empty (it needs at least one split)")
    splits: dict[str, dict[str, np.ndarray]] = {}
    for split, parts in splits_raw.items():
        if not isinstance(parts, dict) or not parts or set(parts) - {"train", "test"}:
            raise PreparedDatasetError(f"{meta_path}: splits.{split} must map 'train' and 'test' to sample "
                                       f"indices, found {str(parts)[:60]}")
        splits[split] = {part: check.integers(f"splits.{split}.{part}", 0, n - 1, f"a sample index 0..{n - 1}",
                                              value=idx, unique=True)
                         for part, idx in parts.items()}
        if len(splits[split]) == 2:
            both = np.intersect1d(splits[split]["train"], splits[split]["test"])
            if len(both):
                raise PreparedDatasetError(f"{meta_path}: sample {both[0]} ('{sample_names[both[0]]}') is in both "
                                           f"the train and the test part of split '{split}'")
    layout_spec = check.value("layout", (str, dict))
    try:
        layout = get_layout(layout_spec) if isinstance(layout_spec, str) else \
            Layout.from_dict(layout_spec, source=f"{meta_path} key 'layout'")
    except ValueError as err:  # LayoutError; a layout of meta.json already names the file and the key
        text = str(err)
        raise PreparedDatasetError(text if text.startswith(str(meta_path)) else
                                   f"{meta_path}: key 'layout': {text}") from None
    provenance = raw.get("provenance", {})
    extra = raw.get("extra_arrays", [])
    if not isinstance(provenance, dict) or not isinstance(extra, list) or \
            not all(isinstance(e, str) and e.isidentifier() for e in extra):
        raise PreparedDatasetError(f"{meta_path}: 'provenance' must be a mapping and 'extra_arrays' a list of "
                                   "array names")
    channel_names = check.texts("channel_names") if "channel_names" in raw else []
    return PreparedMeta(dataset=check.text("dataset"), layout=layout, class_names=class_names, labels=labels,
                        lengths=lengths, sample_names=sample_names, splits=splits, provenance=provenance,
                        extra_arrays=list(extra), channel_names=channel_names)


def _rows_in_npy(path: Path) -> int | None:
    """The first dimension of a .npy file, from its header alone (None if the header cannot be read: open_data
    then reports the file)."""
    try:
        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, _ = read_header(fh)
        return int(shape[0]) if shape else None
    except Exception:  # noqa: BLE001 - truncated, not .npy: reported with the data file's own error later
        return None


class _MetaChecker:
    """Typed access to the keys of a parsed meta.json; every failure names the file and the key."""

    def __init__(self, path: Path, raw: dict[str, Any]):
        self.path, self.raw = path, raw

    def fail(self, key: str, problem: str) -> PreparedDatasetError:
        return PreparedDatasetError(f"{self.path}: key '{key}': {problem}")

    def value(self, key: str, kind: Any) -> Any:
        if key not in self.raw:
            raise PreparedDatasetError(f"{self.path}: missing key '{key}'")
        value = self.raw[key]
        if not isinstance(value, kind):
            raise self.fail(key, f"expected {getattr(kind, '__name__', kind)}, found {type(value).__name__}")
        return value

    def text(self, key: str) -> str:
        return self.value(key, str)

    def texts(self, key: str, count: int | None = None) -> list[str]:
        values = self.value(key, list)
        bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
        if bad is not None:
            raise self.fail(key, f"entry {bad} is {values[bad]!r}, not a text")
        if count is not None and len(values) != count:
            raise self.fail(key, self._count_problem(key, len(values), count))
        return list(values)

    def _count_problem(self, key: str, found: int, count: int) -> str:
        source = DATA_FILE if key == "labels" else "key 'labels'"
        return f"{found} entries for the {count} samples of {source}"

    def integers(self, key: str, low: int, high: int | None, meaning: str, count: int | None = None,
                 value: Any = None, unique: bool = False) -> np.ndarray:
        values = self.value(key, list) if value is None else value
        if not isinstance(values, list):
            raise self.fail(key, f"expected a list, found {type(values).__name__}")
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v > high):
                raise self.fail(key, f"entry {i} is {v!r}, expected {meaning}")
        if count is not None and len(values) != count:
            raise self.fail(key, self._count_problem(key, len(values), count))
        out = np.asarray(values, dtype=np.int64)
        if unique and len(np.unique(out)) != len(out):
            seen = np.unique(out, return_counts=True)
            raise self.fail(key, f"sample index {int(seen[0][seen[1] > 1][0])} is listed twice")
        return out


def open_data(root: str | Path, name: str = "data") -> np.ndarray:
    """Memory-map DIR/<name>.npy read-only; PreparedDatasetError naming the file if it is missing or unreadable."""
    path = Path(root) / f"{name}.npy"
    if not path.is_file():
        raise PreparedDatasetError(f"{path} does not exist (the prepared dataset is incomplete: prepare it again)")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # truncated, not .npy, object arrays
        raise PreparedDatasetError(f"{path}: cannot read as a .npy array ({str(err).splitlines()[0][:120]}); "
                                   "prepare the dataset again") from None


def open_prepared(root: str | Path) -> tuple[PreparedMeta, np.ndarray]:
    """(meta, memory-mapped data) of a prepared dataset, checked against each other: a 5-D float array with one
    row per label, the layout's joint count, no valid length beyond the frames. PreparedDatasetError otherwise."""
    meta = load_meta(root)
    data = open_data(root)
    where = Path(root) / DATA_FILE
    if data.ndim != 5 or data.dtype.kind != "f":
        raise PreparedDatasetError(f"{where}: {data.dtype} array of shape {data.shape}; a prepared dataset holds "
                                   "float (N, C, T, V, M)")
    n, _, t, v, _ = data.shape
    if n != len(meta.labels):
        raise PreparedDatasetError(f"{where} holds {n} samples but {Path(root) / META_FILE} describes "
                                   f"{len(meta.labels)}: the two files do not belong together (prepare again)")
    if v != meta.layout.num_joints:
        raise PreparedDatasetError(f"{where} has {v} joints but the layout '{meta.layout.name}' in "
                                   f"{META_FILE} has {meta.layout.num_joints}")
    if len(meta.lengths) and int(meta.lengths.max()) > t:
        i = int(np.argmax(meta.lengths))
        raise PreparedDatasetError(f"{Path(root) / META_FILE}: key 'lengths': sample {i} "
                                   f"('{meta.sample_names[i]}') has {meta.lengths[i]} valid frames but "
                                   f"{DATA_FILE} holds {t} frames")
    return meta, data


def unusable_error(root: str | Path, meta: PreparedMeta, row: int, data: np.ndarray) -> PreparedDatasetError:
    return PreparedDatasetError(f"{Path(root) / DATA_FILE}: sample {row} ('{meta.sample_names[row]}') "
                                f"{unusable_problem(data[row])}; fix the source data and prepare again")


SCAN_LIMIT_BYTES = 4 * 1024**3  # `info` scans the values of datasets up to this size


def summarize(root: str | Path) -> dict[str, Any]:
    """What a prepared dataset holds: samples per split and class, frames, joints, persons, layout."""
    meta, data = open_prepared(root)
    n, c, t, v, m = data.shape
    if data.nbytes <= SCAN_LIMIT_BYTES:
        bad = unusable_rows(data)
        values = {"scanned": True, "nonfinite_samples": len(bad), "first_nonfinite": meta.sample_names[bad[0]]
                  if bad else None, "first_problem": unusable_problem(data[bad[0]]) if bad else None}
    else:
        values = {"scanned": False, "nonfinite_samples": None, "first_nonfinite": None}
    splits = {}
    for split, parts in meta.splits.items():
        splits[split] = {}
        for part, idx in parts.items():
            counts = np.bincount(meta.labels[idx], minlength=meta.num_classes)
            splits[split][part] = {"samples": int(len(idx)),
                                   "per_class": {meta.class_names[k]: int(counts[k]) for k in range(len(counts))}}
    return {
        "path": str(Path(root).resolve()),
        "dataset": meta.dataset,
        "samples": int(n),
        "classes": meta.num_classes,
        "class_names": meta.class_names,
        "channels": int(c),
        "frames": int(t),
        "joints": int(v),
        "persons": int(m),
        "layout": meta.layout.name,
        "length_min": int(meta.lengths.min()) if n else 0,
        "length_max": int(meta.lengths.max()) if n else 0,
        "length_mean": float(meta.lengths.mean()) if n else 0.0,
        "splits": splits,
        "extra_arrays": meta.extra_arrays,
        "values": values,
        "provenance": meta.provenance,
        "channel_names": meta.channel_names or ["x", "y", "z"][:int(c)],
        "normalization": (meta.provenance or {}).get("normalization"),
        "warnings": _normalisation_warnings(data, meta),
    }


def _normalisation_warnings(data: np.ndarray, meta: PreparedMeta) -> list[str]:
    return dataset_warnings(data, meta.channel_names or None)


# ---------------------------------------------------------------------------------------------------------
# Shared pieces of the `prepare` pipelines: input errors, skip reports, streaming writes, run summaries.


@dataclass
class PrepareReport:
    """What a `prepare` run did: samples per split, skipped files and why, wall time."""

    out_dir: str
    samples: int
    splits: dict[str, dict[str, int]]
    skipped: list[dict[str, Any]]
    seconds: float
    notes: list[str] = field(default_factory=list)  # what the user should know (decisions, published counts)
    note_label: str = ""  # printed before each note in the table, e.g. "check: " for published-count checks

    def table(self) -> str:
        rows = [("split", "train", "test")]
        for split, parts in self.splits.items():
            rows.append((split, str(parts.get("train", 0)), str(parts.get("test", 0))))
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)) for row in rows]
        reasons: dict[str, int] = {}
        for item in self.skipped:
            reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
        lines.append(f"samples: {self.samples}   skipped: {len(self.skipped)}   time: {self.seconds:.1f} s")
        for reason, count in sorted(reasons.items()):
            lines.append(f"  skipped {count}: {reason}")
        lines.extend(f"  {self.note_label}{note}" for note in self.notes)
        lines.append(f"written: {self.out_dir}")
        return "\n".join(lines)


def compact_rows(path: Path, keep: np.ndarray, chunk: int = 256) -> None:
    """Rewrite the .npy at `path` keeping only rows `keep` (in order), chunk by chunk (never all in memory)."""
    src = np.load(path, mmap_mode="r")
    tmp = path.with_name(path.stem + ".compact.npy")
    dst = np.lib.format.open_memmap(tmp, mode="w+", dtype=src.dtype, shape=(len(keep),) + src.shape[1:])
    for start in range(0, len(keep), chunk):
        dst[start:start + chunk] = src[keep[start:start + chunk]]
    dst.flush()
    del dst, src
    os.replace(tmp, path)


class SkipSample(Exception):
    """Raised by a prepare worker for an input that is valid but must be left out (e.g. no skeleton)."""


def _call_worker(job: tuple[Any, Any]) -> tuple[str, Any]:
    worker, task = job
    try:
        return "ok", worker(task)
    except SkipSample as err:
        return "skip", str(err)
    except BadInputError as err:
        return "bad", err.to_json()


def run_prepare(out_dir: str | Path, tasks: list[Any], task_names: list[str], worker: Any,
                sample_shape: tuple[int, int, int, int], make_meta: Any, workers: int = 0,
                skip_bad: bool = False, desc: str = "prepare", progress: bool = True,
                extra_arrays: dict[str, tuple[tuple[int, ...], Any]] | None = None) -> PrepareReport:
    """Run `worker(task) -> (sample (C,T,V,M), length, extras dict)` on every task, in parallel, in order,
    streaming each result into row i of DIR/data.npy; then call `make_meta(kept_rows, lengths, infos)` for
    the PreparedMeta and finalize (infos: per kept sample, the scalar extras the worker returned, e.g. labels
    read from the file; only those named in extra_arrays are also stored as arrays). Files the worker rejects with SkipSample are always left out (and listed);
    BadInputError aborts (nothing is written) unless skip_bad, in which case the file is listed and left
    out. The list is saved as DIR/skipped.json.

    workers: processes (0 = all cores; 1 = in this process). extra_arrays: name -> (per-sample shape,
    dtype) of further per-sample arrays the worker returns in its extras dict.
    """
    import multiprocessing
    import time


    start = time.perf_counter()
    n = len(tasks)
    if n == 0:
        raise UserError(f"{desc}: no input samples found")
    workers = workers or os.cpu_count() or 1
    lengths = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    info: list[dict[str, Any]] = [{} for _ in range(n)]
    skipped: list[dict[str, Any]] = []
    out_dir = Path(out_dir)
    with PreparedWriter(out_dir, (n,) + tuple(sample_shape)) as writer:
        extras = {name: writer.add_array(name, (n,) + tuple(shape), dtype)
                  for name, (shape, dtype) in (extra_arrays or {}).items()}
        jobs = ((worker, task) for task in tasks)
        pool = multiprocessing.get_context("spawn" if os.name == "nt" else "fork").Pool(workers) \
            if workers > 1 and n > 1 else None
        try:
            results = pool.imap(_call_worker, jobs, chunksize=max(1, min(16, n // (workers * 8) or 1))) \
                if pool else map(_call_worker, jobs)
            for i, (status, payload) in enumerate(track(results, total=n, desc=desc, unit="files",
                                                        enabled=progress)):
                if status == "ok" and not usable_values(np.asarray(payload[0])).all():
                    status, payload = "bad", {"file": task_names[i], "line": 0,
                                              "problem": unusable_problem(payload[0])}
                if status == "ok":
                    sample, length, extra = payload
                    writer.data[i] = sample
                    lengths[i] = length
                    for name, value in (extra or {}).items():
                        if name in extras:
                            extras[name][i] = value
                        if np.ndim(value) == 0:
                            info[i][name] = value.item() if hasattr(value, "item") else value
                    ok[i] = True
                elif status == "skip":
                    skipped.append({"file": task_names[i], "reason": payload})
                else:
                    if not skip_bad:
                        raise BadInputError(payload["file"], payload["line"], payload["problem"])
                    skipped.append({"file": task_names[i], "reason": "bad input",
                                    "line": payload["line"], "problem": payload["problem"]})
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
        kept = np.nonzero(ok)[0]
        if len(kept) == 0:
            raise UserError(f"{desc}: every input was skipped ({len(skipped)}); first: {skipped[0]}")
        meta = make_meta(kept, lengths[kept], [info[i] for i in kept])
        meta.provenance.setdefault("skipped", len(skipped))
        write_json_atomic(writer.tmp_dir / SKIPPED_FILE, skipped)
        extras.clear()
        writer.finalize(meta, keep_rows=kept)
    splits = {s: {part: int(len(idx)) for part, idx in parts.items()} for s, parts in meta.splits.items()}
    return PrepareReport(str(out_dir), int(len(kept)), splits, skipped, time.perf_counter() - start)


def provenance(command: str, **details: Any) -> dict[str, Any]:
    """Where a prepared dataset came from: command, options, skelssl version, time (stored in meta.json)."""
    import datetime

    try:
        from importlib.metadata import version

        pkg_version = version("skelssl")
    except Exception:  # not installed as a distribution
        pkg_version = "unknown"
    return {"command": command, "skelssl_version": pkg_version,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **details}


FLOAT32_MAX = float(np.finfo(np.float32).max)


def read_text_lines(path: Path) -> list[str]:
    """The lines of a text file (split at line ends only: \\n, \\r\\n, \\r); BadInputError (line 0 = the whole
    file) if it is not UTF-8 text or cannot be read."""
    try:
        return path.read_text().split("\n")  # not splitlines(): a form feed inside a line is no line end
    except UnicodeDecodeError as err:
        raise BadInputError(path, 0, f"not a text file (undecodable byte at offset {err.start})") from None
    except OSError as err:
        raise BadInputError(path, 0, f"cannot read the file ({err.strerror or err})") from None


def read_numeric_rows(path: str | Path, width: int, meaning: str, keep: int | None = None) -> np.ndarray:
    """(rows, keep or width) float32 from a text file of whitespace-separated numbers, `width` a line.

    Blank lines are skipped. A line with another count, a non-numeric value (the dropped columns included), NaN,
    inf or a value beyond ±COORDINATE_LIMIT raises BadInputError naming the file, the line and the problem; so
    does a file
    without rows or a file that is not text. `meaning` describes a line for the
    message (e.g. "x y z confidence").
    """
    path = Path(path)
    rows = []
    for number, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != width:
            raise BadInputError(path, number, f"{len(parts)} values, expected {width} ({meaning})")
        try:
            values = [float(v) for v in parts]
        except ValueError:
            raise BadInputError(path, number, f"non-numeric value in '{line.strip()[:60]}'") from None
        # stored as float32 (beyond 3.4e38 a value silently becomes inf), and the prepared format's bound
        if not all(abs(v) <= COORDINATE_LIMIT for v in values):
            raise BadInputError(path, number, f"NaN, infinite or out-of-range value in '{line.strip()[:60]}'")
        rows.append(values[:keep])
    if not rows:
        raise BadInputError(path, 0, "empty sequence (no rows)")
    return np.asarray(rows, dtype=np.float32)
