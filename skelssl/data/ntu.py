"""NTU RGB+D 60 / 120: the `.skeleton` text parser, the official splits and the `prepare` pipeline.

File format (one value or one record a line):

    frame count
    per frame:  body count
        per body:  10 body values (tracking id first), joint count (25), 25 lines of 12 joint values
                   (x y z, depth x y, colour x y, orientation w x y z, tracking state)

Sample names are SsssCcccPpppRrrrAaaa: setup, camera, performer, replication, action (all 1-based).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skelssl.data.values import usable_values
from skelssl.errors import BadInputError, UserError

NTU_JOINTS = 25
JOINT_VALUES = 12
BODY_VALUES = 10

NTU60_XSUB_TRAIN_PERFORMERS = frozenset(
    [1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38])
NTU60_XVIEW_TRAIN_CAMERAS = frozenset([2, 3])
NTU120_XSUB_TRAIN_PERFORMERS = NTU60_XSUB_TRAIN_PERFORMERS | frozenset(
    [45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91,
     92, 93, 94, 95, 97, 98, 100, 103])

# The action list published with the datasets (README of github.com/shahroudy/NTURGB-D, "Action Classes"),
# A1..A120 in order; typographic apostrophes written as "'" and stray trailing dots dropped.
NTU120_CLASS_NAMES = (
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw",
    "sitting down", "standing up (from sitting position)", "clapping", "reading", "writing",
    "tear up paper", "wear jacket", "take off jacket", "wear a shoe", "take off a shoe", "wear on glasses",
    "take off glasses", "put on a hat/cap", "take off a hat/cap", "cheer up", "hand waving",
    "kicking something",
    "put something inside pocket / take out something from pocket", "hopping (one foot jumping)", "jump up",
    "make a phone call/answer phone", "playing with phone/tablet", "typing on a keyboard",
    "pointing to something with finger", "taking a selfie", "check time (from watch)",
    "rub two hands together", "nod head/bow", "shake head", "wipe face", "salute",
    "put the palms together", "cross hands in front (say stop)", "sneeze/cough", "staggering", "falling",
    "touch head (headache)", "touch chest (stomachache/heart pain)", "touch back (backache)",
    "touch neck (neckache)", "nausea or vomiting condition", "use a fan (with hand or paper)/feeling warm",
    "punching/slapping other person", "kicking other person", "pushing other person",
    "pat on back of other person", "point finger at the other person", "hugging other person",
    "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
    # NTU RGB+D 120 additions (A061-A120)
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball", "tennis bat swing",
    "juggling table tennis balls", "hush (quite)", "flick hair", "thumb up", "thumb down", "make ok sign",
    "make victory sign", "staple book", "counting money", "cutting nails", "cutting paper (using scissors)",
    "snapping fingers", "open bottle", "sniff (smell)", "squat down", "toss a coin", "fold paper",
    "ball up paper", "play magic cube", "apply cream on face", "apply cream on hand back", "put on bag",
    "take off bag", "put something into a bag", "take something out of a bag", "open a box",
    "move heavy objects", "shake fist", "throw up cap/hat", "hands up (both hands)", "cross arms",
    "arm circles", "arm swings", "running on the spot", "butt kicks (kick backward)", "cross toe touch",
    "side kick", "yawn", "stretch oneself", "blow nose", "hit other person with something",
    "wield knife towards other person", "knock over other person (hit with body)",
    "grab other person's stuff", "shoot at other person with a gun", "step on foot", "high-five",
    "cheers and drink", "carry something with other person", "take a photo of other person",
    "follow other person", "whisper in other person's ear", "exchange things with other person",
    "support somebody with one's hand (someone is sick, help him to walk)",
    "finger-guessing game (playing rock-paper-scissors)",
)

_NAME_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


@dataclass(frozen=True)
class NtuSampleId:
    setup: int
    camera: int
    performer: int
    replication: int
    action: int  # 1-based, as in the file name


def parse_sample_name(name: str) -> NtuSampleId:
    """The five ids of an NTU sample name (SsssCcccPpppRrrrAaaa, with or without `.skeleton`)."""
    match = _NAME_RE.search(Path(name).name)
    if match is None:
        raise UserError(f"'{name}' is not an NTU sample name (expected SsssCcccPpppRrrrAaaa.skeleton)")
    return NtuSampleId(*(int(g) for g in match.groups()))


@dataclass
class NtuSkeleton:
    """One parsed `.skeleton` file.

    joints: (T, B, 25, 3) float32, the bodies of each frame in file order (slot b = b-th body listed in that
            frame, as the ST-GCN / 2s-AGCN readers index them), zero where a frame lists fewer bodies.
    body_ids: (T, B) int64 tracking ids, -1 where no body.
    bodies_per_frame: (T,) body counts as written in the file (may exceed B: extra bodies are not kept).
    """

    name: str
    joints: np.ndarray
    body_ids: np.ndarray
    bodies_per_frame: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def max_bodies(self) -> int:
        return int(self.bodies_per_frame.max()) if self.num_frames else 0

    @property
    def has_skeleton(self) -> bool:
        return bool(self.num_frames) and self.max_bodies > 0


def read_skeleton_file(path: str | Path, max_bodies: int = 4) -> NtuSkeleton:
    """Parse one `.skeleton` file, keeping the first `max_bodies` bodies of each frame.

    Raises BadInputError naming the file, the 1-based line and the problem for a truncated file, a joint
    count other than 25, a non-numeric value, a NaN/inf coordinate or an empty sequence (0 frames).
    A file whose frames hold no body at all parses fine: `has_skeleton` is False (a "missing skeleton").
    """
    path = Path(path)
    try:
        lines = path.read_text().split("\n")
    except UnicodeDecodeError:
        raise BadInputError(path, 0, "not a text file") from None
    except OSError as err:
        raise BadInputError(path, 0, f"cannot read the file ({err.strerror or err})") from None
    # Drop only trailing empty lines; an empty line inside the body is a format error.
    while lines and not lines[-1].strip():
        lines.pop()
    cursor = 0

    def next_line(what: str) -> str:
        nonlocal cursor
        if cursor >= len(lines):
            raise BadInputError(path, cursor + 1, f"truncated file: expected {what}, the file ends after "
                                                  f"line {len(lines)}")
        cursor += 1
        return lines[cursor - 1]

    def read_int(what: str) -> int:
        text = next_line(what).strip()
        try:
            return int(text)
        except ValueError:
            raise BadInputError(path, cursor, f"expected {what} (an integer), found '{text[:40]}'") from None

    num_frames = read_int("the frame count")
    if num_frames <= 0:
        raise BadInputError(path, cursor, f"empty sequence: frame count is {num_frames}")
    if num_frames > len(lines) - 1:  # every frame needs at least its body-count line
        raise BadInputError(path, cursor, f"frame count {num_frames} but the file has only {len(lines) - 1} "
                                          "more line(s): truncated file or wrong frame count")
    joints = np.zeros((num_frames, max_bodies, NTU_JOINTS, 3), dtype=np.float32)
    body_ids = np.full((num_frames, max_bodies), -1, dtype=np.int64)
    counts = np.zeros(num_frames, dtype=np.int64)
    for frame in range(num_frames):
        num_bodies = read_int(f"the body count of frame {frame + 1}")
        if num_bodies < 0:
            raise BadInputError(path, cursor, f"negative body count {num_bodies}")
        if num_bodies > len(lines):  # a body takes 27 lines: this count cannot be right (nor fit in int64)
            raise BadInputError(path, cursor, f"body count {num_bodies} but the file has {len(lines)} lines")
        counts[frame] = num_bodies
        for body in range(num_bodies):
            info = next_line(f"the body line of body {body + 1} in frame {frame + 1}").split()
            if len(info) != BODY_VALUES:
                raise BadInputError(path, cursor, f"body line has {len(info)} values, expected {BODY_VALUES}")
            num_joints = read_int("the joint count")
            if num_joints != NTU_JOINTS:
                raise BadInputError(path, cursor, f"wrong joint count {num_joints}, expected {NTU_JOINTS}")
            if cursor + NTU_JOINTS > len(lines):
                raise BadInputError(path, len(lines) + 1, f"truncated file: frame {frame + 1} body {body + 1} "
                                                          f"needs {NTU_JOINTS} joint lines, the file ends "
                                                          f"after line {len(lines)}")
            first = cursor
            rows = [lines[first + j].split() for j in range(NTU_JOINTS)]
            cursor += NTU_JOINTS
            # bodies beyond max_bodies are checked too (not kept): a damaged file is reported, not half-read
            for j, row in enumerate(rows):
                if len(row) != JOINT_VALUES:
                    raise BadInputError(path, first + j + 1,
                                        f"joint line has {len(row)} values, expected {JOINT_VALUES}")
            try:
                with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused just below
                    xyz = np.array([row[:3] for row in rows], dtype=np.float32)
            except ValueError:
                bad = next(j for j, row in enumerate(rows) if not _all_numeric(row[:3]))
                raise BadInputError(path, first + bad + 1, f"non-numeric value in '{lines[first + bad][:60]}'") \
                    from None
            if not usable_values(xyz).all():  # NaN, inf, beyond float32 (1e39 becomes inf) or COORDINATE_LIMIT
                bad = int(np.nonzero(~usable_values(xyz).all(axis=1))[0][0])
                raise BadInputError(path, first + bad + 1, "NaN, infinite or out-of-range coordinate in "
                                                           f"'{lines[first + bad][:60]}'")
            try:
                tracking_id = int(info[0])
            except ValueError:
                tracking_id = None
            if tracking_id is None or not -2**63 <= tracking_id < 2**63:
                raise BadInputError(path, first - 1, f"tracking id '{info[0][:40]}' is not a 64-bit integer")
            if body < max_bodies:
                joints[frame, body] = xyz
                body_ids[frame, body] = tracking_id
    if cursor != len(lines):
        raise BadInputError(path, cursor + 1, f"{len(lines) - cursor} unexpected extra line(s) after the "
                                              f"{num_frames} frames announced on line 1")
    return NtuSkeleton(path.name.split(".")[0], joints, body_ids, counts)


def _all_numeric(values: list[str]) -> bool:
    try:
        [float(v) for v in values]
        return True
    except ValueError:
        return False


def check_sample_name(path: Path) -> NtuSampleId:
    """The ids of an NTU file name; UserError unless it is SsssCcccPpppRrrrAaaa with ids in the datasets' ranges
    (setup 1-32, camera 1-3, performer >= 1, replication 1-2, action 1-120)."""
    if not _NAME_RE.fullmatch(path.name.split(".")[0]):
        raise UserError(f"{path}: not an NTU sample name (expected SsssCcccPpppRrrrAaaa.skeleton); move other "
                        "files out of the raw directory")
    ids = parse_sample_name(path.name)
    bad = [f"{what} {value}" for what, value, low, high in (
        ("setup", ids.setup, 1, 32), ("camera", ids.camera, 1, 3), ("performer", ids.performer, 1, 999),
        ("replication", ids.replication, 1, 2), ("action", ids.action, 1, len(NTU120_CLASS_NAMES)))
        if not low <= value <= high]
    if bad:
        raise UserError(f"{path}: {', '.join(bad)} outside the NTU RGB+D ranges (setup 1-32, camera 1-3, "
                        "replication 1-2, action 1-120)")
    return ids


def read_name_list(path: str | Path) -> set[str]:
    """Sample names from a list file (one a line; lines that are not NTU names, e.g. headers, are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"exclude list '{path}' does not exist")
    return {m.group(0) for m in (_NAME_RE.search(line) for line in path.read_text().splitlines()) if m}


def ntu_splits(names: list[str], dataset: str) -> dict[str, dict[str, np.ndarray]]:
    """Official evaluation splits as index arrays: xsub + xview (NTU 60) or xsub + xset (NTU 120).

    xsub: train performers listed above; xview: train cameras 2 and 3; xset: train even setup ids.
    """
    ids = [parse_sample_name(n) for n in names]
    performers = np.array([i.performer for i in ids], dtype=np.int64)
    if dataset == "ntu60":
        xsub = np.isin(performers, list(NTU60_XSUB_TRAIN_PERFORMERS))
        second_name = "xview"
        second = np.isin([i.camera for i in ids], list(NTU60_XVIEW_TRAIN_CAMERAS))
    elif dataset == "ntu120":
        xsub = np.isin(performers, list(NTU120_XSUB_TRAIN_PERFORMERS))
        second_name = "xset"
        second = np.array([i.setup % 2 == 0 for i in ids], dtype=bool)
    else:
        raise UserError(f"unknown NTU dataset '{dataset}' (ntu60 or ntu120)")
    return {
        "xsub": {"train": np.nonzero(xsub)[0], "test": np.nonzero(~xsub)[0]},
        second_name: {"train": np.nonzero(second)[0], "test": np.nonzero(~second)[0]},
    }


def find_ntu_files(raw_dir: str | Path, dataset: str) -> list[Path]:
    """The `.skeleton` files of NTU 60 (actions 1-60, setups 1-17) or NTU 120 (all) under raw_dir, sorted."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise UserError(f"raw NTU directory '{raw_dir}' does not exist")
    files = sorted(raw_dir.rglob("*.skeleton"), key=lambda p: p.name)
    for f in files:  # a stray or renamed file would otherwise get a wrong label or split
        check_sample_name(f)
    if dataset == "ntu60":
        files = [f for f in files if parse_sample_name(f.name).action <= 60 and parse_sample_name(f.name).setup <= 17]
    if not files:
        raise UserError(f"no .skeleton files under '{raw_dir}' (download nturgbd_skeletons_s001_to_s017.zip"
                        " (and s018_to_s032 for NTU 120) and unpack it there)")
    return files
