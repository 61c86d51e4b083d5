"""PKU-MMD parts I and II: untrimmed skeleton sequences + label files -> two prepared datasets.

Inputs (as downloaded from the PKU-MMD site):
  raw dir:    one `<video>.txt` per sequence (e.g. 0002-L.txt, A10N08-L.txt), 150 floats a line = one frame:
              2 persons x 25 joints x (x, y, z), Kinect v2 (NTU) joint order; person 2 all zero when absent.
  labels dir: a `<video>.txt` of the same name, one action instance a line:
              `action_id,start_frame,end_frame,confidence` (action ids 1-based, PKU_ACTION_NAMES; part II uses
              41 of the 51 ids, ACTION_IDS[2]).
  split dir (optional): the official cross-subject and cross-view lists (cross-subject.txt or
              cross_subject.txt, cross_subject_v2.txt for part II; the same for cross-view). Each holds a line
              naming the training videos and a line naming the test ("validation") videos, each after a header
              line that contains "train" resp. "valid"/"test":

                  Training videos:
                  0002-L, 0002-M, 0002-R, ...
                  Validataion videos:
                  0291-L, 0291-M, ...

Outputs:
  OUT/trimmed    one sample per labelled instance (N, 3, T, 25, M): frames start..end (0-based, end
                 included — the label files do not say; this is the choice made here), prepared as the authors
                 prepare PKU-MMD, by their NTU pipeline (AimCLR tools/pku_part1_gendata.py +
                 feeder/preprocess_pku.py): the NTU recipe of `prepare ntu60` (skelssl.data.ntu_preprocess) on
                 each instance, `aimclr` by default (coordinates relative to the spine joint 21, resampled to 50
                 frames, the per-frame shoulder rotation), so that NTU -> PKU-MMD transfer sees the input the
                 encoder learnt on; the recipe is recorded in meta.json (provenance.recipe), as NTU's is.
                 recipe=None keeps the camera coordinates, zero-padded to the longest instance (at most 300
                 frames) or resampled to `frames`. Classes: part I the 51 actions, part II its 41, in id
                 order. Splits xsub / xview from the lists; sample names `<video>_<k>`.
  OUT/untrimmed  one sample per video (S, 3, T_max, 25, 2) with the extra array `frame_labels` (S, T_max)
                 int16: 0 = no action, k = class k - 1 (class_names[k - 1]), -1 = padding. For segmentation:
                 camera coordinates, every frame kept (a recipe's resampling would break the frame labels).
After a complete download the trimmed counts are compared with the published ones (PUBLISHED_COUNTS) and the
comparison is printed with the summary.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import numpy as np

from skelssl.data.geometry import resample_linear
from skelssl.data.ntu import NtuSkeleton
from skelssl.data.ntu_preprocess import NtuRecipe, preprocess_skeleton, recipe_from_preset
from skelssl.data.prepared import (FLOAT32_MAX, SKIPPED_FILE, BadInputError, PreparedMeta, PreparedWriter,
                                   PrepareReport, check_prepared_out, prepared_owner_problem, provenance,
                                   read_numeric_rows, read_text_lines, remove_stale_staging, write_json_atomic)
from skelssl.errors import UserError
from skelssl.outputs import move_into_place, staging_dir
from skelssl.skeleton.layouts import NTU25
from skelssl.console import track

MAX_INSTANCE_FRAMES = 300

# The 51 actions of PKU-MMD with their ids (1-based, as in the label files), from Actions.xlsx distributed with
# the dataset. That file was not reachable here: the list is as three independent public loaders transcribe it
# (docs/data.md names them); they agree with each other, with the dataset README (41 daily actions + 10
# interactions) and with one another's interaction ids 12, 14, 16, 18, 21, 24, 26, 27.
PKU_ACTION_NAMES = (
    "bow", "brushing hair", "brushing teeth", "check time (from watch)", "cheer up", "clapping",
    "cross hands in front (say stop)", "drink water", "drop", "eat meal/snack", "falling",
    "giving something to other person", "hand waving", "handshaking", "hopping (one foot jumping)",
    "hugging other person", "jump up", "kicking other person", "kicking something",
    "make a phone call/answer phone", "pat on back of other person", "pickup", "playing with phone/tablet",
    "point finger at the other person", "pointing to something with finger", "punching/slapping other person",
    "pushing other person", "put on a hat/cap", "put something inside pocket", "reading",
    "rub two hands together", "salute", "sitting down", "standing up", "take off a hat/cap", "take off glasses",
    "take off jacket", "take out something from pocket", "taking a selfie", "tear up paper", "throw",
    "touch back (backache)", "touch chest (stomachache/heart pain)", "touch head (headache)",
    "touch neck (neckache)", "typing on a keyboard", "use a fan (with hand or paper)/feeling warm",
    "wear jacket", "wear on glasses", "wipe face", "writing",
)
# Part II has 41 of them (A2MC paper: "PKU-II contains 6,945 skeleton sequences in 41 action classes"); its
# label files keep the part I ids. The 10 ids it lacks are the interactions and the two pocket actions, as a
# public PKU-MMD II preprocessing script lists them (docs/data.md). Part II classes are numbered 0..40 in the
# order of these ids; an id outside them in a part II label file is refused (it would be an empty class).
PART2_ABSENT_IDS = (12, 14, 16, 18, 21, 24, 26, 27, 29, 38)
ACTION_IDS = {1: tuple(range(1, 52)), 2: tuple(i for i in range(1, 52) if i not in PART2_ABSENT_IDS)}
# Split list file names: cross-subject.txt as the dataset's README names them, cross_subject.txt as the
# download holds them, cross_subject_v2.txt for part II.
SPLIT_FILES = {"xsub": ("cross-subject", "cross_subject"), "xview": ("cross-view", "cross_view")}
# Published sample counts (trimmed instances) that a complete download must reproduce. Part II cross-subject:
# the A2MC paper (5,332 train, 1,613 test); part I in total: the dataset README (21,545 actions in 1,076 videos).
PUBLISHED_COUNTS = {(2, "xsub"): (5332, 1613)}
PUBLISHED_TOTALS = {1: (1076, 21545)}


def class_names(part: int) -> list[str]:
    """The class names of part 1 (51) or 2 (41), in class-index order."""
    return [PKU_ACTION_NAMES[i - 1] for i in ACTION_IDS[part]]


def read_pku_skeleton(path: str | Path) -> np.ndarray:
    """(T, 2, 25, 3) float32 from a PKU-MMD skeleton file."""
    return read_numeric_rows(path, 150, "2 persons x 25 joints x 3").reshape(-1, 2, 25, 3)


def read_pku_labels(path: str | Path, num_frames: int | None = None,
                    part: int | None = None) -> list[tuple[int, int, int, float]]:
    """[(action id 1-based, start, end, confidence)] from a label file.

    Checks, naming the file and the line: four numbers a line (ids and frames integers, confidence finite),
    0 <= start <= end (< num_frames if given), and the action id among the part's ids (1..51 when part is None).
    """
    path = Path(path)
    allowed = ACTION_IDS[part] if part else ACTION_IDS[1]
    out = []
    for number, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 5 and not parts[4]:  # a trailing comma
            parts = parts[:4]
        if len(parts) != 4 or not all(parts):
            raise BadInputError(path, number, f"expected action_id,start_frame,end_frame,confidence, found "
                                              f"'{line.strip()[:60]}'")
        try:
            action, start, end, conf = int(parts[0]), int(parts[1]), int(parts[2]), float(parts[3])
        except ValueError:
            raise BadInputError(path, number, f"non-numeric value in '{line.strip()[:60]}'") from None
        if start < 0 or end < start:
            raise BadInputError(path, number, f"invalid frames {start}..{end} (need 0 <= start <= end)")
        if action not in allowed:
            extra = f" ({PKU_ACTION_NAMES[action - 1]}: not one of part II's 41 actions)" \
                if part == 2 and 1 <= action <= 51 else ""
            raise BadInputError(path, number, f"action id {action}{extra}; PKU-MMD part {part or 1} has "
                                              f"ids {allowed[0]}..{allowed[-1]}")
        if not abs(conf) <= FLOAT32_MAX:
            raise BadInputError(path, number, f"confidence {parts[3]} is not a finite number")
        if num_frames is not None and end >= num_frames:
            raise BadInputError(path, number, f"instance ends at frame {end} but the sequence has "
                                              f"{num_frames} frames")
        out.append((action, start, end, conf))
    return out


def read_split_list(path: str | Path) -> tuple[set[str], set[str]]:
    """(train videos, test videos) from an official PKU-MMD split file (format in the module docstring)."""
    path = Path(path)
    train: set[str] = set()
    test: set[str] = set()
    current = None
    for number, line in enumerate(read_text_lines(path), start=1):
        low = line.lower()
        if "train" in low:
            current = train
            continue
        if "valid" in low or "test" in low:
            current = test
            continue
        names = [n for n in re.split(r"[,\s]+", line) if n]
        if names and current is None:
            raise BadInputError(path, number, "video names before a 'Training videos:' header line")
        if current is not None:
            current.update(names)
    if not train or not test:
        raise BadInputError(path, 0, "expected a training and a validation/test list of video names (see "
                                     "docs/data.md)")
    both = sorted(train & test)
    if both:
        raise BadInputError(path, 0, f"{len(both)} video(s) in both the training and the test list, e.g. "
                                     f"{both[0]}")
    return train, test


def find_split_files(split_dir: Path, part: int) -> dict[str, Path]:
    """{split: file} for the official lists in split_dir (see SPLIT_FILES); part II prefers its _v2 files."""
    found = {}
    for split, stems in SPLIT_FILES.items():
        names = [f"{stems[1]}_v2.txt"] if part == 2 else []
        names += [f"{stem}.txt" for stem in stems]
        path = next((split_dir / n for n in names if (split_dir / n).is_file()), None)
        if path is not None:
            found[split] = path
    return found


def prepare_pkummd(raw_dir: str | Path, labels_dir: str | Path, out_dir: str | Path, part: int,
                   split_dir: str | Path | None = None, frames: int = 0, skip_bad: bool = False,
                   progress: bool = True, workers: int = 0,
                   recipe: NtuRecipe | str | None = "aimclr") -> list[PrepareReport]:
    """Write OUT/trimmed and OUT/untrimmed; returns their two reports. (Single process: the work is I/O.)

    recipe: the NTU recipe of the trimmed instances (a preset name or an NtuRecipe; default "aimclr", the
    authors' preparation); None keeps the camera coordinates (`frames`: resample to this many, 0: zero-pad).

    Both are written into a hidden staging folder beside OUT and moved to OUT only when both are complete: a
    failure leaves OUT as it was (absent, or the previous dataset). An OUT that is not an earlier prepared
    output of skelssl's is refused before any work.
    """

    start_time = time.perf_counter()
    recipe = recipe_from_preset(recipe) if isinstance(recipe, str) else recipe
    raw_dir, labels_dir, out_dir = Path(raw_dir), Path(labels_dir), Path(out_dir)
    for d, what in ((raw_dir, "skeleton"), (labels_dir, "label")):
        if not d.is_dir():
            raise UserError(f"PKU-MMD {what} directory '{d}' does not exist")
    if part not in ACTION_IDS:
        raise UserError("--part must be 1 or 2")
    if frames < 0:
        raise UserError("--frames must be 0 (keep the frames) or positive")
    check_prepared_out(out_dir)
    videos = sorted(p.stem for p in raw_dir.glob("*.txt") if (labels_dir / p.name).is_file())
    if not videos:
        raise UserError(f"no skeleton file in '{raw_dir}' has a label file of the same name in '{labels_dir}'")
    splits_lists = {}
    if split_dir:
        split_files = find_split_files(Path(split_dir), part)
        if not split_files:
            raise UserError(f"no cross-subject or cross-view list (cross-subject.txt, cross_subject.txt"
                            f"{', cross_subject_v2.txt' if part == 2 else ''}, ...) in '{split_dir}'")
        splits_lists = {split: read_split_list(path) for split, path in split_files.items()}
    skipped: list[dict] = []

    def bad(video: str, what: str, err: BadInputError) -> None:
        if not skip_bad:
            raise err
        skipped.append({"file": f"{video}.txt{what}", "reason": "bad input", "line": err.line,
                        "problem": err.problem})

    labels_by_video, counts = {}, {}
    for video in videos:
        try:
            labels_by_video[video] = read_pku_labels(labels_dir / f"{video}.txt", part=part)
        except BadInputError as err:
            bad(video, " (labels)", err)
            continue
        try:  # frame count by the parser's own line rule, before any array is sized by it
            counts[video] = sum(1 for line in read_text_lines(raw_dir / f"{video}.txt") if line.strip())
        except BadInputError as err:
            bad(video, "", err)
    videos = [v for v in videos if v in labels_by_video and v in counts]
    if not videos:
        raise UserError(f"every PKU-MMD file was skipped; first: {skipped[0]}")
    names = class_names(part)
    class_of = {action: k for k, action in enumerate(ACTION_IDS[part])}
    instances = [(v, k, inst) for v in videos for k, inst in enumerate(labels_by_video[v])]
    longest = max((e - s + 1 for _, _, (_, s, e, _) in instances), default=1)
    if recipe is not None:
        t_trim, bodies = recipe.out_frames, recipe.bodies
    else:
        t_trim, bodies = (frames if frames > 0 else min(longest, MAX_INSTANCE_FRAMES)), 2
    t_full = max(max(counts.values()), 1)
    remove_stale_staging(out_dir)
    stage = staging_dir(out_dir)
    trim_dir, full_dir = stage / "trimmed", stage / "untrimmed"
    trim_ok = np.zeros(len(instances), dtype=bool)
    trim_len = np.zeros(len(instances), dtype=np.int64)
    full_ok = np.zeros(len(videos), dtype=bool)
    full_len = np.zeros(len(videos), dtype=np.int64)
    try:
        with PreparedWriter(trim_dir, (max(len(instances), 1), 3, t_trim, 25, bodies)) as trim, \
                PreparedWriter(full_dir, (len(videos), 3, t_full, 25, 2)) as full:
            frame_labels = full.add_array("frame_labels", (len(videos), t_full), np.int16)
            row = 0
            for vi, video in enumerate(track(videos, desc=f"pku-mmd {part}", unit="files", enabled=progress)):
                n_inst = len(labels_by_video[video])
                try:
                    seq = read_pku_skeleton(raw_dir / f"{video}.txt")
                    read_pku_labels(labels_dir / f"{video}.txt", len(seq), part)  # bounds against the sequence
                except BadInputError as err:
                    bad(video, "", err)
                    row += n_inst
                    continue
                full.data[vi, :, :len(seq)] = seq.transpose(3, 0, 2, 1)
                full_len[vi] = len(seq)
                frame_labels[vi] = -1
                frame_labels[vi, :len(seq)] = 0
                for action, s, e, _ in labels_by_video[video]:
                    frame_labels[vi, s:e + 1] = class_of[action] + 1
                    clip = seq[s:e + 1]
                    if recipe is not None:
                        prepared, length = preprocess_skeleton(_as_ntu_skeleton(clip, f"{video}_{row}"), recipe)
                        trim.data[row] = prepared
                        trim_ok[row], trim_len[row] = True, length
                        row += 1
                        continue
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
            if len(kept_inst) == 0:
                raise UserError("the kept PKU-MMD label files hold no action instance")
            inst_videos = [instances[i][0] for i in kept_inst]
            vids = [videos[i] for i in kept_vid]
            trim_splits, unlisted = _splits(inst_videos, splits_lists)
            full_splits, _ = _splits(vids, splits_lists)
            prov = provenance("prepare pkummd", part=part, raw_dir=str(raw_dir.resolve()),
                              labels_dir=str(labels_dir.resolve()), split_dir=str(split_dir) if split_dir else None,
                              frames=recipe.out_frames if recipe is not None else frames,
                              frame_indexing="0-based, end included", skipped=len(skipped),
                              action_ids=list(ACTION_IDS[part]), videos_in_no_split_list=unlisted)
            trim_meta = PreparedMeta(
                dataset=f"pku-mmd{part}", layout=NTU25, class_names=names,
                labels=np.array([class_of[instances[i][2][0]] for i in kept_inst], dtype=np.int64),
                lengths=trim_len[kept_inst],
                sample_names=[f"{instances[i][0]}_{instances[i][1]}" for i in kept_inst], splits=trim_splits,
                provenance={**prov, "confidence": [instances[i][2][3] for i in kept_inst],
                            **({"recipe": recipe.to_dict()} if recipe is not None else {})})
            write_json_atomic(trim.tmp_dir / SKIPPED_FILE, skipped)
            trim.finalize(trim_meta, keep_rows=kept_inst)
            full_labels = []
            for vi in kept_vid:
                counts_k = np.bincount(np.asarray(frame_labels[vi]).clip(0), minlength=len(names) + 1)[1:]
                full_labels.append(int(np.argmax(counts_k)))
            full_meta = PreparedMeta(
                dataset=f"pku-mmd{part}-untrimmed", layout=NTU25, class_names=names,
                labels=np.array(full_labels, dtype=np.int64), lengths=full_len[kept_vid],
                sample_names=vids, splits=full_splits,
                provenance={**prov, "frame_labels": "0 = no action, k = class_names[k - 1], -1 = padding",
                            "labels": "most frequent action of the video"})
            write_json_atomic(full.tmp_dir / SKIPPED_FILE, skipped)
            full.finalize(full_meta, keep_rows=kept_vid)
        move_into_place(stage, out_dir, prepared_owner_problem, "prepared dataset")
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    seconds = time.perf_counter() - start_time
    notes = published_count_notes(part, splits_lists, videos, trim_splits, len(kept_inst), len(vids))
    reports = []
    for path, meta_splits, n in ((out_dir / "trimmed", trim_splits, len(kept_inst)),
                                 (out_dir / "untrimmed", full_meta.splits, len(kept_vid))):
        counts_out = {s: {p: int(len(i)) for p, i in parts.items()} for s, parts in meta_splits.items()}
        reports.append(PrepareReport(str(path), n, counts_out, skipped, seconds,
                                     notes=notes if path.name == "trimmed" else [], note_label="check: "))
    return reports


def _as_ntu_skeleton(clip: np.ndarray, name: str) -> NtuSkeleton:
    """A PKU-MMD instance (T, 2, 25, 3) as a parsed NTU file: the same joints (Kinect v2), the two person slots
    as the file's bodies (a slot all zero in a frame is no body there)."""
    present = np.abs(clip).sum(axis=(2, 3)) > 0
    ids = np.where(present, np.arange(clip.shape[1])[None, :], -1).astype(np.int64)
    return NtuSkeleton(name=name, joints=np.ascontiguousarray(clip, dtype=np.float32), body_ids=ids,
                       bodies_per_frame=present.sum(axis=1).astype(np.int64))


def published_count_notes(part: int, lists: dict[str, tuple[set[str], set[str]]], videos: list[str],
                          splits: dict[str, dict[str, np.ndarray]], instances: int, kept_videos: int) -> list[str]:
    """Lines comparing the prepared counts with the published ones, when the download is complete enough for
    them to apply (every video of the split lists present; for the part I total, all 1,076 videos)."""
    notes = []
    for (p, split), (train, test) in PUBLISHED_COUNTS.items():
        if p != part or split not in lists or not (lists[split][0] | lists[split][1]) <= set(videos):
            continue
        got = (len(splits[split]["train"]), len(splits[split]["test"]))
        verdict = "matches" if got == (train, test) else "DIFFERS from"
        notes.append(f"{split}: {got[0]} train / {got[1]} test instances {verdict} the published "
                     f"{train} / {test}")
    if part in PUBLISHED_TOTALS and kept_videos == PUBLISHED_TOTALS[part][0]:
        total = PUBLISHED_TOTALS[part][1]
        verdict = "matches" if instances == total else "DIFFERS from"
        notes.append(f"{instances} instances in {kept_videos} videos {verdict} the published {total}")
    return notes


def _splits(videos: list[str], lists: dict[str, tuple[set[str], set[str]]]
            ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int]]:
    """Split index arrays of samples from their videos, and per split the number of distinct videos that
    neither list names (they are in no part of that split)."""
    if not lists:
        return {"all": {"train": np.arange(len(videos)), "test": np.zeros(0, dtype=np.int64)}}, {}
    out, unlisted = {}, {}
    for split, (train, test) in lists.items():
        out[split] = {"train": np.array([i for i, v in enumerate(videos) if v in train], dtype=np.int64),
                      "test": np.array([i for i, v in enumerate(videos) if v in test], dtype=np.int64)}
        unlisted[split] = len({v for v in videos if v not in train and v not in test})
    return out, unlisted
