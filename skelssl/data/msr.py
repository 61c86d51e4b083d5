"""MSR Action3D: `aXX_sYY_eZZ_skeleton3D.txt` (20 rows a frame: x y z confidence) -> prepared dataset.

Joint order in the files (checked on the data and on the dataset's drawskt.m bone list): 1 left shoulder,
2 right shoulder, 3 shoulder centre, 4 spine, 5 left hip, 6 right hip, 7 hip centre, 8/9 left/right
elbow, 10/11 wrists, 12/13 hands, 14/15 knees, 16/17 ankles, 18/19 feet, 20 head — head highest, feet
lowest, the arm raised in "high arm wave" (done with the right arm) is joint 13, and right joints lie at
larger x than left ones as in NTU. The reader remaps it to layouts.KINECT20 (NW-UCLA's order).

Protocol: cross-subject on the 557 files of files_used_in_cvpr12_paper.txt (odd subjects train).
Every sequence is resampled linearly to `frames` frames (default 50); the original count is kept in the
extra array `source_frames`. Degenerate files (6 frames or fewer, or all zeros such as a13_s09_e02) are
kept so that the protocol keeps its 557 samples, and listed in provenance["degenerate"];
`drop_degenerate` leaves them out instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from skelssl.data.geometry import resample_linear
from skelssl.data.prepared import (BadInputError, PreparedMeta, PrepareReport, SkipSample, provenance,
                                   read_numeric_rows, read_text_lines, run_prepare)
from skelssl.errors import UserError
from skelssl.skeleton.layouts import KINECT20

SPINE_JOINT = 1  # KINECT20 'spine'

MSR_CLASS_NAMES = ("high arm wave", "horizontal arm wave", "hammer", "hand catch", "forward punch",
                   "high throw", "draw x", "draw tick", "draw circle", "hand clap", "two hand wave",
                   "side-boxing", "bend", "forward kick", "side kick", "jogging", "tennis swing",
                   "tennis serve", "golf swing", "pick up & throw")
# KINECT20 joint k is MSR joint MSR_TO_KINECT20[k] (0-based).
MSR_TO_KINECT20 = np.array([6, 3, 2, 19, 0, 7, 9, 11, 1, 8, 10, 12, 4, 13, 15, 17, 5, 14, 16, 18])
FILE_LIST = "files_used_in_cvpr12_paper.txt"
DEGENERATE_FRAMES = 6
_NAME_RE = re.compile(r"a(\d+)_s(\d+)_e(\d+)")


def read_msr_file(path: str | Path) -> np.ndarray:
    """(T, 20, 3) float32 in KINECT20 order (the confidence column is dropped)."""
    path = Path(path)
    rows = read_numeric_rows(path, 4, "x y z confidence", keep=3)
    if len(rows) % 20:
        raise BadInputError(path, len(rows), f"{len(rows)} joint rows is not a multiple of 20 (truncated "
                                             "file or wrong joint count)")
    joints = rows.reshape(-1, 20, 3)
    return joints[:, MSR_TO_KINECT20]


def _msr_worker(task: tuple[str, int, bool]) -> tuple[np.ndarray, int, dict]:
    path, frames, drop_degenerate = task
    joints = read_msr_file(path)
    zero = not np.abs(joints).sum() > 0
    if drop_degenerate and (zero or len(joints) <= DEGENERATE_FRAMES):
        raise SkipSample("degenerate: all zeros" if zero else f"degenerate: {len(joints)} frame(s)")
    # Centre on the spine joint of the first frame (the NW-UCLA convention of CTR-GCN and later work):
    # raw Kinect coordinates sit ~3 m from the camera, a translation no representation should learn.
    joints = joints - joints[0, SPINE_JOINT]
    sample = resample_linear(joints, frames).transpose(2, 0, 1)[..., None]  # (3, T, 20, 1)
    return sample, frames, {"source_frames": len(joints), "all_zero": int(zero)}


def prepare_msr_action3d(raw_dir: str | Path, out_dir: str | Path, frames: int = 50,
                         file_list: str | Path | None = None, skip_bad: bool = False, workers: int = 0,
                         progress: bool = True, drop_degenerate: bool = False) -> PrepareReport:
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise UserError(f"MSR Action3D directory '{raw_dir}' does not exist")
    if frames < 1:
        raise UserError("--frames must be at least 1")
    list_path = Path(file_list) if file_list else raw_dir / FILE_LIST
    if file_list and not list_path.is_file():
        raise UserError(f"file list '{list_path}' does not exist")
    if list_path.is_file():
        # a list names each recording by its stem (a01_s01_e01) or by its whole file name
        stems = [line.split()[0].removesuffix("_skeleton3D.txt") for line in read_text_lines(list_path)
                 if line.strip()]
        files = [raw_dir / f"{stem}_skeleton3D.txt" for stem in stems]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise UserError(f"{len(missing)} file(s) named in {list_path} are not in {raw_dir}, e.g. "
                            f"{missing[0]}")
    else:
        files = sorted(raw_dir.glob("*_skeleton3D.txt"))
    if not files:
        raise UserError(f"no *_skeleton3D.txt files in '{raw_dir}'")
    ids = []
    for f in files:
        match = _NAME_RE.search(f.name)
        if match is None:
            raise UserError(f"{f}: file name is not aXX_sYY_eZZ_skeleton3D.txt")
        ids.append(tuple(int(g) for g in match.groups()))
    names = [f.name.replace("_skeleton3D.txt", "") for f in files]

    def make_meta(kept: np.ndarray, lengths: np.ndarray, infos: list[dict]) -> PreparedMeta:
        subjects = np.array([ids[i][1] for i in kept])
        train = subjects % 2 == 1
        degenerate = [{"sample": names[i], "frames": info["source_frames"], "all_zero": bool(info["all_zero"])}
                      for i, info in zip(kept, infos)
                      if info["all_zero"] or info["source_frames"] <= DEGENERATE_FRAMES]
        return PreparedMeta(
            dataset="msr-action3d", layout=KINECT20, class_names=list(MSR_CLASS_NAMES),
            labels=np.array([ids[i][0] - 1 for i in kept], dtype=np.int64), lengths=lengths,
            sample_names=[names[i] for i in kept],
            splits={"xsub": {"train": np.nonzero(train)[0], "test": np.nonzero(~train)[0]}},
            provenance=provenance("prepare msr-action3d", raw_dir=str(raw_dir.resolve()), frames=frames,
                                  file_list=str(list_path) if list_path.is_file() else None,
                                  joint_order="remapped from MSR order to kinect20",
                                  degenerate=degenerate, drop_degenerate=drop_degenerate))

    return run_prepare(out_dir, [(str(f), frames, drop_degenerate) for f in files], [f.name for f in files],
                       _msr_worker, (3, frames, 20, 1), make_meta, workers=workers, skip_bad=skip_bad,
                       desc="msr-action3d", progress=progress, extra_arrays={"source_frames": ((), np.int64)})
