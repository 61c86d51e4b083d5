"""SBU Kinect Interaction: `sAAsBB/CC/DDD/skeleton_pos.txt` (two people, one comma-separated line a frame: the
frame number, then x y z of 15 joints of person 1, then of person 2) -> prepared dataset (layouts.SBU15).

21 sets of two performers (sAAsBB: AA acts, BB reacts), 8 interactions (folder CC), 282 sequences of 10-46
frames. The files store normalised coordinates; the dataset's README gives the way back to Kinect's real-world
millimetres, X = 1280 − 2560 x, Y = 960 − 1920 y, Z = 10000 z / 7.8125, which the reader applies (then metres).
The classes by folder, checked on the data (the order differs between public loaders): 01 approaching (the
performers' distance falls by 0.87 m on average), 02 departing (rises by 0.69 m), 03 kicking (a foot rises by
0.72 m), 04 pushing, 05 shaking hands (two hands within 15 cm for half the sequence), 06 hugging (torsos 0.26 m
apart), 07 exchanging, 08 punching.

Protocol: the dataset's 5-fold cross-validation over the sets (Yun et al., 2012), splits `fold1` .. `fold5`:
each fold's sets are the test part, the other four folds' the train part. Both people are kept (M = 2); every
sequence is centred on the first frame's torso of person 1 and resampled linearly to `frames` frames (default
50); the original count is kept in the extra array `source_frames`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from skelssl.data.geometry import resample_linear
from skelssl.data.prepared import (BadInputError, PreparedMeta, PrepareReport, provenance, read_text_lines,
                                   run_prepare)
from skelssl.errors import UserError
from skelssl.skeleton.layouts import SBU15

__all__ = ["SBU_CLASS_NAMES", "SBU_FOLDS", "read_sbu_file", "prepare_sbu"]

TORSO_JOINT = 2  # SBU15 'torso'
SBU_CLASS_NAMES = ("approaching", "departing", "kicking", "pushing", "shaking hands", "hugging", "exchanging",
                   "punching")
SBU_FOLDS = (
    ("s01s02", "s03s04", "s05s02", "s06s04"),
    ("s02s03", "s02s07", "s03s05", "s05s03"),
    ("s01s03", "s01s07", "s07s01", "s07s03"),
    ("s02s01", "s02s06", "s03s02", "s03s06"),
    ("s04s02", "s04s03", "s04s06", "s06s02", "s06s03"),
)
FILE_NAME = "skeleton_pos.txt"
_PATH_RE = re.compile(r"(s\d\ds\d\d)/(\d\d)/(\d+)/" + re.escape(FILE_NAME) + "$")


def read_sbu_file(path: str | Path) -> np.ndarray:
    """(T, 2, 15, 3) float32 in metres (Kinect's real-world coordinates; Y up, a left joint at smaller X than its
    right partner, as in NTU).

    Every line holds 91 comma-separated numbers (frame number, 2 × 15 × (x, y, z)); a line with another count,
    a value that is not a number or not finite raises BadInputError naming the file and the line."""
    path = Path(path)
    rows = []
    for number, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.strip().rstrip(",").split(",")
        if len(parts) != 91:
            raise BadInputError(path, number, f"{len(parts)} values, expected 91 (frame, then 2 people x 15 "
                                              "joints x x,y,z)")
        try:
            values = np.array([float(v) for v in parts[1:]], dtype=np.float64)
        except ValueError:
            raise BadInputError(path, number, f"non-numeric value in '{line.strip()[:60]}'") from None
        if not np.isfinite(values).all() or np.abs(values).max() > 1e3:
            raise BadInputError(path, number, "NaN, infinite or out-of-range value (normalised coordinates "
                                              "lie within a few units)")
        rows.append(values)
    if not rows:
        raise BadInputError(path, 0, "empty sequence (no rows)")
    normalised = np.stack(rows).reshape(-1, 2, 15, 3)
    world_mm = np.stack([1280.0 - 2560.0 * normalised[..., 0], 960.0 - 1920.0 * normalised[..., 1],
                         normalised[..., 2] * 10000.0 / 7.8125], axis=-1)
    return (world_mm / 1000.0).astype(np.float32)


def _sbu_worker(task: tuple[str, int]) -> tuple[np.ndarray, int, dict]:
    path, frames = task
    joints = read_sbu_file(path)
    joints = joints - joints[0, 0, TORSO_JOINT]  # one origin for both people: their distance is the action
    sample = resample_linear(joints, frames).transpose(3, 0, 2, 1)  # (3, T, 15, 2)
    return sample, frames, {"source_frames": len(joints)}


def prepare_sbu(raw_dir: str | Path, out_dir: str | Path, frames: int = 50, skip_bad: bool = False,
                workers: int = 0, progress: bool = True) -> PrepareReport:
    """RAW holds the sAAsBB folders (searched recursively for sAAsBB/CC/DDD/skeleton_pos.txt)."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise UserError(f"SBU Kinect Interaction directory '{raw_dir}' does not exist")
    if frames < 2:
        raise UserError("--frames must be at least 2")
    fold_of = {name: fold for fold, names in enumerate(SBU_FOLDS) for name in names}
    files, sets, classes = [], [], []
    for path in sorted(raw_dir.rglob(FILE_NAME)):
        match = _PATH_RE.search(path.as_posix())
        if match is None:
            raise UserError(f"{path}: not at sAAsBB/CC/DDD/{FILE_NAME} (the dataset's folder structure)")
        pair, label = match.group(1), int(match.group(2))
        if not 1 <= label <= len(SBU_CLASS_NAMES):
            raise UserError(f"{path}: interaction folder {match.group(2)} is not 01-08")
        if pair not in fold_of:
            raise UserError(f"{path}: set {pair} is in none of the 5 folds ({', '.join(sorted(fold_of))})")
        files.append(path)
        sets.append(pair)
        classes.append(label - 1)
    if not files:
        raise UserError(f"no sAAsBB/CC/DDD/{FILE_NAME} files under '{raw_dir}'")
    names = [f"{s}_{path.parent.parent.name}_{path.parent.name}" for s, path in zip(sets, files)]

    def make_meta(kept: np.ndarray, lengths: np.ndarray, infos: list[dict]) -> PreparedMeta:
        folds = np.array([fold_of[sets[i]] for i in kept])
        splits = {f"fold{k + 1}": {"train": np.nonzero(folds != k)[0], "test": np.nonzero(folds == k)[0]}
                  for k in range(len(SBU_FOLDS))}
        return PreparedMeta(
            dataset="sbu", layout=SBU15, class_names=list(SBU_CLASS_NAMES),
            labels=np.array([classes[i] for i in kept], dtype=np.int64), lengths=lengths,
            sample_names=[names[i] for i in kept], splits=splits,
            provenance=provenance("prepare sbu", raw_dir=str(raw_dir.resolve()), frames=frames,
                                  coordinates="metres, from the README's de-normalisation",
                                  folds={f"fold{k + 1}": list(v) for k, v in enumerate(SBU_FOLDS)}))

    return run_prepare(out_dir, [(str(f), frames) for f in files], [str(f.relative_to(raw_dir)) for f in files],
                       _sbu_worker, (3, frames, 15, 2), make_meta, workers=workers, skip_bad=skip_bad,
                       desc="sbu", progress=progress, extra_arrays={"source_frames": ((), np.int64)})
