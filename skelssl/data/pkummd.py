"""PKU-MMD parts I and II: untrimmed skeleton sequences + label files -> two prepared datasets.

Inputs (as downloaded from the PKU-MMD site):
  raw dir:    one `<video>.txt` per sequence (e.g. 0002-L.txt, A10N08-L.txt), 150 floats a line = one frame:
              2 persons x 25 joints x (x, y, z), Kinect v2 (NTU) joint order; person 2 all zero when absent.
  labels dir: a `<video>.txt` of the same name, one action instance a line:
              `action_id,start_frame,end_frame,confidence` (action ids 1-based).
  split dir (optional): the official `cross-subject.txt` and `cross-view.txt`. Each holds a line naming the
              training videos and a line naming the test ("validation") videos, each after a header line
              that contains "train" resp. "valid"/"test":

                  Training videos:
                  0002-L, 0002-M, 0002-R, ...
                  Validataion videos:
                  0291-L, 0291-M, ...

Outputs:
  OUT/trimmed    one sample per labelled instance (N, 3, T, 25, 2): frames start..end (0-based, end
                 included — the label files do not say; this is the choice made here), resampled to
                 `frames` if > 0, else zero-padded to the longest instance (at most 300 frames, longer ones
                 truncated). Splits xsub / xview from the lists; sample names `<video>_<k>`.
  OUT/untrimmed  one sample per video (S, 3, T_max, 25, 2) with the extra array `frame_labels` (S, T_max)
                 int16: 0 = no action, k = action k (class_names[k]), -1 = padding. For segmentation.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from skelssl.data.ntu_preprocess import resample_linear
from skelssl.data.prepared import (BadInputError, PreparedMeta, PreparedWriter, PrepareReport, provenance,
                                   read_numeric_rows,
                                   write_json_atomic)
from skelssl.errors import UserError
from skelssl.skeleton.layouts import NTU25

MAX_INSTANCE_FRAMES = 300
NUM_CLASSES = {1: 51, 2: 41}
SPLIT_FILES = {"xsub": "cross-subject.txt", "xview": "cross-view.txt"}


def read_pku_skeleton(path: str | Path) -> np.ndarray:
    """(T, 2, 25, 3) float32 from a PKU-MMD skeleton file."""
    return read_numeric_rows(path, 150, "2 persons x 25 joints x 3").reshape(-1, 2, 25, 3)


def read_pku_labels(path: str | Path, num_frames: int | None = None) -> list[tuple[int, int, int, float]]:
    """[(action 0-based, start, end, confidence)] from a label file; checks 0 <= start <= end < frames."""
    path = Path(path)
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.replace(";", ",").split(",") if p.strip()]
        if len(parts) != 4:
            raise BadInputError(path, number, f"expected action_id,start_frame,end_frame,confidence, found "
                                              f"'{line.strip()[:60]}'")
        try:
            action, start, end, conf = int(parts[0]), int(parts[1]), int(parts[2]), float(parts[3])
        except ValueError:
            raise BadInputError(path, number, f"non-numeric value in '{line.strip()[:60]}'") from None
        if action < 1 or start < 0 or end < start:
            raise BadInputError(path, number, f"invalid instance (action {action}, frames {start}..{end})")
        if num_frames is not None and end >= num_frames:
            raise BadInputError(path, number, f"instance ends at frame {end} but the sequence has "
                                              f"{num_frames} frames")
        out.append((action - 1, start, end, conf))
    return out


def read_split_list(path: str | Path) -> tuple[set[str], set[str]]:
    """(train videos, test videos) from an official PKU-MMD split file (format in the module docstring)."""
    path = Path(path)
    train: set[str] = set()
    test: set[str] = set()
    current = None
    for line in path.read_text().splitlines():
        low = line.lower()
        if "train" in low:
            current = train
            continue
        if "valid" in low or "test" in low:
            current = test
            continue
        names = [n for n in re.split(r"[,\s]+", line) if n]
        if names and current is None:
            raise UserError(f"{path}: video names before a 'Training videos:' header line")
        if current is not None:
            current.update(names)
    if not train or not test:
        raise UserError(f"{path}: expected a training and a validation/test list (see docs/data.md)")
    return train, test


def prepare_pkummd(raw_dir: str | Path, labels_dir: str | Path, out_dir: str | Path, part: int,
                   split_dir: str | Path | None = None, frames: int = 0, skip_bad: bool = False,
                   progress: bool = True, workers: int = 0) -> list[PrepareReport]:
    """Write OUT/trimmed and OUT/untrimmed; returns their two reports. (Single process: the work is I/O.)"""
    from tqdm import tqdm

    start_time = time.perf_counter()
    raw_dir, labels_dir, out_dir = Path(raw_dir), Path(labels_dir), Path(out_dir)
    for d, what in ((raw_dir, "skeleton"), (labels_dir, "label")):
        if not d.is_dir():
            raise UserError(f"PKU-MMD {what} directory '{d}' does not exist")
    if part not in NUM_CLASSES:
        raise UserError("--part must be 1 or 2")
    videos = sorted(p.stem for p in raw_dir.glob("*.txt") if (labels_dir / p.name).is_file())
    if not videos:
        raise UserError(f"no skeleton file in '{raw_dir}' has a label file of the same name in '{labels_dir}'")
    splits_lists = {}
    if split_dir:
        for split, fname in SPLIT_FILES.items():
            if (Path(split_dir) / fname).is_file():
                splits_lists[split] = read_split_list(Path(split_dir) / fname)
        if not splits_lists:
            raise UserError(f"no {' or '.join(SPLIT_FILES.values())} in '{split_dir}'")
    skipped: list[dict] = []
    labels_by_video = {}
    for video in videos:
        try:
            labels_by_video[video] = read_pku_labels(labels_dir / f"{video}.txt")
        except BadInputError as err:
            if not skip_bad:
                raise
            skipped.append({"file": f"{video}.txt (labels)", "reason": "bad input", **err.to_json()})
    videos = [v for v in videos if v in labels_by_video]
    num_classes = max([NUM_CLASSES[part]] + [a + 1 for v in videos for a, *_ in labels_by_video[v]])
    class_names = [f"action_{k + 1}" for k in range(num_classes)]
    instances = [(v, k, inst) for v in videos for k, inst in enumerate(labels_by_video[v])]
    longest = max((e - s + 1 for _, _, (_, s, e, _) in instances), default=1)
    t_trim = frames if frames > 0 else min(longest, MAX_INSTANCE_FRAMES)
    # untrimmed length: needs the frame counts; count lines cheaply first
    counts = {v: sum(1 for line in open(raw_dir / f"{v}.txt") if line.strip()) for v in videos}
    t_full = max(counts.values())
    trim_dir, full_dir = out_dir / "trimmed", out_dir / "untrimmed"
    out_dir.mkdir(parents=True, exist_ok=True)
    trim_ok = np.zeros(len(instances), dtype=bool)
    trim_len = np.zeros(len(instances), dtype=np.int64)
    full_ok = np.zeros(len(videos), dtype=bool)
    with PreparedWriter(trim_dir, (len(instances), 3, t_trim, 25, 2)) as trim, \
            PreparedWriter(full_dir, (len(videos), 3, t_full, 25, 2)) as full:
        frame_labels = full.add_array("frame_labels", (len(videos), t_full), np.int16)
        row = 0
        for vi, video in enumerate(tqdm(videos, desc=f"pku-mmd {part}", unit="file", disable=not progress)):
            n_inst = len(labels_by_video[video])
            try:
                seq = read_pku_skeleton(raw_dir / f"{video}.txt")
                read_pku_labels(labels_dir / f"{video}.txt", len(seq))  # bounds check against the sequence
            except BadInputError as err:
                if not skip_bad:
                    raise
                skipped.append({"file": f"{video}.txt", "reason": "bad input", "line": err.line,
                                "problem": err.problem})
                row += n_inst
                continue
            full.data[vi, :, :len(seq)] = seq.transpose(3, 0, 2, 1)
            frame_labels[vi] = -1
            frame_labels[vi, :len(seq)] = 0
            for action, s, e, _ in labels_by_video[video]:
                frame_labels[vi, s:e + 1] = action + 1
                clip = seq[s:e + 1]
                if frames > 0:
                    clip, length = resample_linear(clip, frames), frames
                else:
                    clip = clip[:t_trim]
                    length = len(clip)
                trim.data[row, :, :len(clip)] = clip.transpose(3, 0, 2, 1)
                trim_ok[row], trim_len[row] = True, length
                row += 1
            full_ok[vi] = True
        kept_inst = np.nonzero(trim_ok)[0]
        kept_vid = np.nonzero(full_ok)[0]
        if len(kept_vid) == 0:
            raise UserError(f"every PKU-MMD file was skipped; first: {skipped[0]}")
        inst_videos = [instances[i][0] for i in kept_inst]
        trim_splits = _splits(inst_videos, splits_lists)
        prov = provenance("prepare pkummd", part=part, raw_dir=str(raw_dir.resolve()),
                          labels_dir=str(labels_dir.resolve()), split_dir=str(split_dir) if split_dir else None,
                          frames=frames, frame_indexing="0-based, end included", skipped=len(skipped))
        trim_meta = PreparedMeta(
            dataset=f"pku-mmd{part}", layout=NTU25, class_names=class_names,
            labels=np.array([instances[i][2][0] for i in kept_inst], dtype=np.int64), lengths=trim_len[kept_inst],
            sample_names=[f"{instances[i][0]}_{instances[i][1]}" for i in kept_inst], splits=trim_splits,
            provenance={**prov, "confidence": [instances[i][2][3] for i in kept_inst]})
        write_json_atomic(trim.tmp_dir / "skipped.json", skipped)
        trim.finalize(trim_meta, keep_rows=kept_inst)
        full_labels = []
        for vi in kept_vid:
            counts_k = np.bincount(np.asarray(frame_labels[vi]).clip(0), minlength=num_classes + 1)[1:]
            full_labels.append(int(np.argmax(counts_k)))
        vids = [videos[i] for i in kept_vid]
        full_meta = PreparedMeta(
            dataset=f"pku-mmd{part}-untrimmed", layout=NTU25, class_names=class_names,
            labels=np.array(full_labels, dtype=np.int64), lengths=np.array([counts[v] for v in vids]),
            sample_names=vids, splits=_splits(vids, splits_lists),
            provenance={**prov, "frame_labels": "0 = no action, k = class_names[k-1] + 1, -1 = padding",
                        "labels": "most frequent action of the video"})
        write_json_atomic(full.tmp_dir / "skipped.json", skipped)
        full.finalize(full_meta, keep_rows=kept_vid)
    seconds = time.perf_counter() - start_time
    reports = []
    for path, meta_splits, n in ((trim_dir, trim_splits, len(kept_inst)),
                                 (full_dir, full_meta.splits, len(kept_vid))):
        counts_out = {s: {p: int(len(i)) for p, i in parts.items()} for s, parts in meta_splits.items()}
        reports.append(PrepareReport(str(path), n, counts_out, skipped, seconds))
    return reports


def _splits(videos: list[str], lists: dict[str, tuple[set[str], set[str]]]) -> dict[str, dict[str, np.ndarray]]:
    if not lists:
        return {"all": {"train": np.arange(len(videos)), "test": np.zeros(0, dtype=np.int64)}}
    out = {}
    for split, (train, test) in lists.items():
        out[split] = {"train": np.array([i for i, v in enumerate(videos) if v in train], dtype=np.int64),
                      "test": np.array([i for i, v in enumerate(videos) if v in test], dtype=np.int64)}
    return out
