"""UTKinect-Action3D: `joints_sXX_eYY.txt` (one line a frame: frame id, then 20 joints × x y z) and
`actionLabel.txt` (per sequence, the first and last frame id of each of the 10 actions) -> prepared dataset.

10 subjects perform 10 actions twice (episodes e01, e02) in one continuous recording each: 20 recordings, 200
action instances, of which one is not annotated (`carry:  NaN NaN` in s10_e02): 199 instances. An instance is
every frame whose id lies in [start, end] of its label line. The joint order is the Kinect v1 order of
layouts.KINECT20 (checked on the data: head highest, feet lowest, left joints at smaller x than right ones, as in
NTU and NW-UCLA), in metres.

Recordings repeat a frame id on consecutive lines (e.g. 214, 214 in s01_e01): the first line of each id is
kept. Protocol (our choice; papers also report leave-one-sequence-out): cross-subject, odd subjects train
(s01, s03, ...), even subjects test: 100 / 99 instances. Each instance is centred on its first frame's spine
joint and resampled linearly to `frames` frames (default 50), as MSR Action3D and NW-UCLA are here; the
original frame count is kept in the extra array `source_frames`. An instance with no frame in its range, a
label line that is not `name: start end`, or an unknown action is an error naming the file and the line; an
unannotated (NaN) instance is left out and listed in provenance["unannotated"].
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from skelssl.data.geometry import resample_linear
from skelssl.data.prepared import (BadInputError, PreparedMeta, PrepareReport, provenance, read_numeric_rows,
                                   read_text_lines, run_prepare)
from skelssl.errors import UserError
from skelssl.skeleton.layouts import KINECT20

__all__ = ["UTKINECT_CLASS_NAMES", "read_utkinect_joints", "read_action_labels", "prepare_utkinect"]

SPINE_JOINT = 1  # KINECT20 'spine'
UTKINECT_CLASS_NAMES = ("walk", "sitDown", "standUp", "pickUp", "carry", "throw", "push", "pull", "waveHands",
                        "clapHands")
LABEL_FILE = "actionLabel.txt"
_SEQUENCE_RE = re.compile(r"^s(\d+)_e(\d+)$")


def read_utkinect_joints(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(frame ids (T,), joints (T, 20, 3) float32) of one recording, the first line of a repeated id kept."""
    rows = read_numeric_rows(path, 61, "frame id, then x y z of 20 joints")
    ids = rows[:, 0].astype(np.int64)
    if np.any(rows[:, 0] != ids) or np.any(np.diff(ids) < 0):
        line = int(np.nonzero((rows[:, 0] != ids) | np.r_[False, np.diff(ids) < 0])[0][0]) + 1
        raise BadInputError(Path(path), line, "frame ids must be whole numbers that never decrease")
    first = np.r_[True, np.diff(ids) > 0]
    return ids[first], rows[first, 1:].reshape(-1, 20, 3)


def read_action_labels(path: str | Path) -> dict[str, list[tuple[int, float, float, int]]]:
    """{"sXX_eYY": [(class index, first id, last id, line number), ...]} from actionLabel.txt; NaN bounds stay
    NaN (an unannotated instance)."""
    path = Path(path)
    labels: dict[str, list[tuple[int, float, float, int]]] = {}
    current = None
    for number, line in enumerate(read_text_lines(path), start=1):
        text = line.strip()
        if not text:
            continue
        if _SEQUENCE_RE.match(text):
            current = labels.setdefault(text, [])
            continue
        name, colon, bounds = text.partition(":")
        values = bounds.split()
        if current is None or not colon or len(values) != 2:
            raise BadInputError(path, number, f"expected 'sXX_eYY' or 'action: first last', got '{text[:60]}'")
        if name.strip() not in UTKINECT_CLASS_NAMES:
            raise BadInputError(path, number, f"unknown action '{name.strip()}' (known: "
                                              f"{', '.join(UTKINECT_CLASS_NAMES)})")
        try:
            first, last = (float(v) for v in values)
        except ValueError:
            raise BadInputError(path, number, f"frame ids must be numbers or NaN, got '{bounds.strip()}'") from None
        if not (math.isnan(first) or math.isnan(last)) and last < first:
            raise BadInputError(path, number, f"last frame id {last:g} is before the first {first:g}")
        current.append((UTKINECT_CLASS_NAMES.index(name.strip()), first, last, number))
    if not labels:
        raise BadInputError(path, 0, "no sequences (lines 'sXX_eYY')")
    return labels


def _utkinect_worker(task: tuple[str, str, int, float, float, int]) -> tuple[np.ndarray, int, dict]:
    joints_path, label_path, label_line, first, last, frames = task
    ids, joints = read_utkinect_joints(joints_path)
    inside = (ids >= first) & (ids <= last)
    if not inside.any():
        raise BadInputError(Path(label_path), label_line, f"no frame of {Path(joints_path).name} has an id in "
                                                          f"[{first:g}, {last:g}] (its ids: {ids[0]}..{ids[-1]})")
    clip = joints[inside]
    clip = clip - clip[0, SPINE_JOINT]  # raw Kinect coordinates sit ~2 m from the camera
    sample = resample_linear(clip, frames).transpose(2, 0, 1)[..., None]  # (3, T, 20, 1)
    return sample, frames, {"source_frames": len(clip)}


def prepare_utkinect(raw_dir: str | Path, out_dir: str | Path, frames: int = 50, skip_bad: bool = False,
                     workers: int = 0, progress: bool = True) -> PrepareReport:
    """RAW holds actionLabel.txt and the joints_sXX_eYY.txt files (the dataset's `joints` folder)."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise UserError(f"UTKinect-Action3D directory '{raw_dir}' does not exist")
    if frames < 2:
        raise UserError("--frames must be at least 2")
    label_path = raw_dir / LABEL_FILE
    if not label_path.is_file():
        raise UserError(f"'{raw_dir}' has no {LABEL_FILE} (the dataset's joints folder holds it)")
    labels = read_action_labels(label_path)
    tasks, names, subjects, classes, unannotated = [], [], [], [], []
    for sequence, actions in labels.items():
        joints_path = raw_dir / f"joints_{sequence}.txt"
        if not joints_path.is_file():
            raise UserError(f"{label_path} names {sequence}, but {joints_path.name} is not in {raw_dir}")
        subject = int(_SEQUENCE_RE.match(sequence).group(1))
        for class_index, first, last, line in actions:
            name = f"{sequence}_{UTKINECT_CLASS_NAMES[class_index]}"
            if math.isnan(first) or math.isnan(last):
                unannotated.append(name)
                continue
            tasks.append((str(joints_path), str(label_path), line, first, last, frames))
            names.append(name)
            subjects.append(subject)
            classes.append(class_index)
    unlabelled = sorted(p.name for p in raw_dir.glob("joints_s*_e*.txt") if p.stem[len("joints_"):] not in labels)

    def make_meta(kept: np.ndarray, lengths: np.ndarray, infos: list[dict]) -> PreparedMeta:
        train = np.array([subjects[i] % 2 == 1 for i in kept], dtype=bool)
        return PreparedMeta(
            dataset="utkinect", layout=KINECT20, class_names=list(UTKINECT_CLASS_NAMES),
            labels=np.array([classes[i] for i in kept], dtype=np.int64), lengths=lengths,
            sample_names=[names[i] for i in kept],
            splits={"xsub": {"train": np.nonzero(train)[0], "test": np.nonzero(~train)[0]}},
            provenance=provenance("prepare utkinect", raw_dir=str(raw_dir.resolve()), frames=frames,
                                  unannotated=unannotated, recordings_without_labels=unlabelled,
                                  split="xsub: odd subjects train, even subjects test"))

    return run_prepare(out_dir, tasks, names, _utkinect_worker, (3, frames, 20, 1), make_meta, workers=workers,
                       skip_bad=skip_bad, desc="utkinect", progress=progress,
                       extra_arrays={"source_frames": ((), np.int64)})
