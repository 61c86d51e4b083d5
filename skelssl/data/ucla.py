"""Northwestern-UCLA Multiview Action 3D: one JSON per sequence -> prepared dataset (Kinect-20 layout).

Each JSON holds `file_name` (aXX_sYY_eZZ_vWW), `skeletons` [T][20][3] (metres) and `label` 1..10. The joint
order is the Kinect v1 order of layouts.KINECT20 (checked on the data: head highest, feet lowest, left
joints at smaller x than right ones as in NTU). Standard protocol: cross-view, train on views 1 and 2
(1020 sequences), test on view 3 (464).

Every sequence is centred on its first frame's spine joint and resampled linearly to `frames` frames (default
50); the original frame count is kept in
the extra array `source_frames`. Four sequences have 6 frames or fewer (two a single frame): they are kept
(a single frame becomes a static sequence) and listed in provenance["degenerate"]; `drop_degenerate`
leaves them out instead.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from skelssl.data.geometry import resample_linear
from skelssl.data.prepared import (BadInputError, PreparedMeta, PrepareReport, SkipSample, usable_values,
                                   provenance, run_prepare)
from skelssl.errors import UserError
from skelssl.skeleton.layouts import KINECT20

SPINE_JOINT = 1  # KINECT20 'spine'

UCLA_CLASS_NAMES = ("pick up with one hand", "pick up with two hands", "drop trash", "walk around",
                    "sit down", "stand up", "donning", "doffing", "throw", "carry")
UCLA_TRAIN_VIEWS = (1, 2)
DEGENERATE_FRAMES = 6
_NAME_RE = re.compile(r"a(\d+)_s(\d+)_e(\d+)_v(\d+)")


def read_ucla_json(path: str | Path) -> tuple[np.ndarray, int, str]:
    """(T, 20, 3) float32 skeletons, 0-based label and name of one NW-UCLA JSON file.

    BadInputError (naming the file, the JSON line where the parser gives one, and the key) for text that is not
    JSON, a top level that is not an object, a missing key, skeletons that are not numbers (strings, booleans,
    null) of shape [T][20][3] with T >= 1, values that are NaN, infinite or beyond float32, and a label that is
    not a whole number 1..10 (3.7, true, "3").
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BadInputError(path, err.lineno, f"not valid JSON ({err.msg})") from None
    except UnicodeDecodeError as err:
        raise BadInputError(path, 0, f"not a text file (undecodable byte at offset {err.start})") from None
    except RecursionError:
        raise BadInputError(path, 0, "not a NW-UCLA file (JSON nested too deeply)") from None
    if not isinstance(raw, dict):
        raise BadInputError(path, 0, f"expected a JSON object with file_name, skeletons, label; found a "
                                     f"{type(raw).__name__}")
    for key in ("file_name", "skeletons", "label"):
        if key not in raw:
            raise BadInputError(path, 0, f"missing key '{key}'")
    frames = raw["skeletons"]
    if not isinstance(frames, list) or not all(
            isinstance(frame, list) and len(frame) == 20 and
            all(isinstance(joint, list) and len(joint) == 3 for joint in frame) for frame in frames):
        raise BadInputError(path, 0, "key 'skeletons' is not a [T][20][3] list, expected (T, 20, 3) numbers")
    if not frames:
        raise BadInputError(path, 0, "key 'skeletons': empty sequence (0 frames)")
    # JSON numbers only: "1.5" or true would be converted silently by numpy (true to 1.0)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
               for frame in frames for joint in frame for v in joint):
        raise BadInputError(path, 0, "key 'skeletons' does not hold only numbers, expected (T, 20, 3) numbers")
    try:
        values = np.array(frames, dtype=np.float64)
    except OverflowError:  # an integer beyond any float
        values = np.full(1, np.inf)
    if not usable_values(values).all():
        frame = int(np.nonzero(~usable_values(values).reshape(len(values), -1).all(axis=1))[0][0]) \
            if values.ndim == 3 else 0
        raise BadInputError(path, 0, f"key 'skeletons': NaN, infinite or out-of-range value in frame {frame + 1}")
    joints = values.astype(np.float32)
    label = _whole_number(raw["label"])
    if label is None or not 1 <= label <= len(UCLA_CLASS_NAMES):
        raise BadInputError(path, 0, f"key 'label' is {json.dumps(raw['label'])[:40]}; expected a whole number "
                                     f"1..{len(UCLA_CLASS_NAMES)}")
    return joints, label - 1, str(raw["file_name"])


def _whole_number(value: object) -> int | None:
    """value as an int if it is a JSON number without a fraction (3 or 3.0), else None (3.7, true, "3")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value)


def _ucla_worker(task: tuple[str, int, bool]) -> tuple[np.ndarray, int, dict]:
    path, frames, drop_degenerate = task
    joints, label, _ = read_ucla_json(path)
    if drop_degenerate and len(joints) <= DEGENERATE_FRAMES:
        raise SkipSample(f"degenerate: {len(joints)} frame(s)")
    # Centre on the spine joint of the first frame (the NW-UCLA convention of CTR-GCN and later work):
    # raw Kinect coordinates sit ~3 m from the camera, a translation no representation should learn.
    joints = joints - joints[0, SPINE_JOINT]
    sample = resample_linear(joints, frames).transpose(2, 0, 1)[..., None]  # (3, T, 20, 1)
    return sample, frames, {"source_frames": len(joints), "label": label}  # label: meta only


def prepare_nw_ucla(raw_dir: str | Path, out_dir: str | Path, frames: int = 50, skip_bad: bool = False,
                    workers: int = 0, progress: bool = True, drop_degenerate: bool = False) -> PrepareReport:
    raw_dir = Path(raw_dir)
    files = sorted(raw_dir.glob("*.json")) if raw_dir.is_dir() else []
    if not files:
        raise UserError(f"no NW-UCLA .json files in '{raw_dir}' (give the all_sqe directory)")
    if frames < 1:
        raise UserError("--frames must be at least 1")
    names = [f.stem for f in files]
    views = []
    for f in files:
        match = _NAME_RE.search(f.stem)
        if match is None:
            raise UserError(f"{f}: file name is not aXX_sYY_eZZ_vWW.json")
        views.append(int(match.group(4)))

    def make_meta(kept: np.ndarray, lengths: np.ndarray, infos: list[dict]) -> PreparedMeta:
        labels = [info["label"] for info in infos]
        source = [info["source_frames"] for info in infos]
        train = np.isin([views[i] for i in kept], UCLA_TRAIN_VIEWS)
        degenerate = [{"sample": names[i], "frames": int(s)} for i, s in zip(kept, source)
                      if s <= DEGENERATE_FRAMES]
        return PreparedMeta(
            dataset="nw-ucla", layout=KINECT20, class_names=list(UCLA_CLASS_NAMES),
            labels=np.asarray(labels, dtype=np.int64), lengths=lengths, sample_names=[names[i] for i in kept],
            splits={"xview": {"train": np.nonzero(train)[0], "test": np.nonzero(~train)[0]}},
            provenance=provenance("prepare nw-ucla", raw_dir=str(raw_dir.resolve()), frames=frames,
                                  degenerate=degenerate, drop_degenerate=drop_degenerate))

    return run_prepare(out_dir, [(str(f), frames, drop_degenerate) for f in files], [f.name for f in files],
                       _ucla_worker, (3, frames, 20, 1), make_meta, workers=workers, skip_bad=skip_bad,
                       desc="nw-ucla", progress=progress,
                       extra_arrays={"source_frames": ((), np.int64)})
