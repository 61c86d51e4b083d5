"""Normalisation of skeleton recordings at prepare time: the steps the dataset preparers apply, as options.

Sensors and pose estimators write coordinates in their own frame: a person 2-4 m from a depth camera, or
hundreds of pixels into an image, seen from any side, recordings of any length zero-padded to the longest.
A network learns little from that (SkeletonCLR collapses on it), so `skelssl prepare custom` applies, per
recording and in this order:

1. valid range: up to the last frame that holds a skeleton (trailing all-zero frames are padding), or up to
   the length the user gives; from the first frame holding one (`trim`: leading empty frames are dropped);
2. centring: subtract the centre joint (the layout's, or `center_joint`) of person 0 in the first valid frame
   from every frame and person (`first_frame`, the NW-UCLA / MSR convention: the motion of the body through
   the room is kept), or every person's own centre joint in every frame (`every_frame`);
3. view alignment (3D only): one rotation, from the first frame where person 0's hips and shoulders are all
   present, taking the spine (mid-hips -> mid-shoulders) onto +y and then, about y, the hip line
   (left hip -> right hip) onto +x: the NTU "first frame" recipe with the vertical axis of Kinect data.
   By default ("auto") only when the recordings are seen from different sides: when the directions the
   people face in their first frames spread by less than 25 degrees (circular standard deviation; one
   sensor in front of everyone, as in MSR Action3D), a rotation would only add the noise of the hip
   estimate (on MSR Action3D it costs 6 points of 1-NN) and is left out;
4. scale to unit body size: divide the coordinates by person 0's mean torso length (mid-hips to
   mid-shoulders over the frames where all four are present);
5. time: resample the valid frames linearly to a fixed length (the CrosSCLR/AimCLR recipe), or keep them and
   crop / zero-pad to a fixed length (the 2s-AGCN recipe; 0 = the longest recording).

Coordinates are the channels named x, y (and z); a score channel of 2D keypoints ((x, y, score)) is never
centred, rotated or scaled. A joint whose coordinates are all zero is missing (a padded frame, an absent
person, a keypoint the estimator did not find) and stays zero through every step.

`dataset_warnings` looks at a prepared dataset for what these steps would have fixed (`skelssl info` and
`skelssl pretrain` print them).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from skelssl.data.geometry import resample_linear, rotation_between
from skelssl.data.values import usable_values
from skelssl.errors import UserError
from skelssl.skeleton.layouts import Layout

__all__ = ["CHANNEL_SETS", "NormalizeOptions", "NormalizeSteps", "channel_names_for", "coordinate_count",
           "find_body_joints", "valid_range", "facing_angle", "decide_alignment", "center_bodies", "upright_rotation", "torso_length",
           "normalize_sequence", "dataset_warnings", "OFF"]

CHANNEL_SETS: dict[str, tuple[str, ...]] = {"xyz": ("x", "y", "z"), "xy": ("x", "y"),
                                            "xy-score": ("x", "y", "score")}
COORDINATE_NAMES = ("x", "y", "z")
CENTER_MODES = ("first_frame", "every_frame", "none")
ALIGN_MODES = ("auto", "first_frame", "none")
SCALE_MODES = ("auto", "body", "none")
TEMPORAL_MODES = ("resample", "pad")
MIN_NORM = 1e-6  # a spine, hip line or torso shorter than this (in the data's units) is degenerate


def channel_names_for(spec: str | None, channels: int, source: str) -> tuple[str, ...]:
    """The names of the C channels: `spec` (xyz | xy | xy-score), or x, y (, z) from C alone."""
    if spec is None:
        if channels not in (2, 3):
            raise UserError(f"{source}: {channels} channels per joint; expected 2 (x, y) or 3 (x, y, z, or "
                            "x, y, score with --channels xy-score)")
        return CHANNEL_SETS["xyz" if channels == 3 else "xy"]
    if spec not in CHANNEL_SETS:
        raise UserError(f"unknown channel set '{spec}'; choose one of {', '.join(CHANNEL_SETS)}")
    names = CHANNEL_SETS[spec]
    if len(names) != channels:
        raise UserError(f"{source}: --channels {spec} means {len(names)} channels per joint "
                        f"({', '.join(names)}), the array has {channels}")
    return names


def coordinate_count(channel_names: tuple[str, ...] | list[str] | None, channels: int) -> int:
    """How many leading channels are coordinates (2 or 3); the rest (a score) are not."""
    if not channel_names:
        return channels
    count = sum(1 for name in channel_names if name in COORDINATE_NAMES)
    if list(channel_names[:count]) != list(COORDINATE_NAMES[:count]):
        raise UserError(f"channels {list(channel_names)}: the coordinates must come first, in x, y, z order")
    return count


@dataclass(frozen=True)
class NormalizeOptions:
    """What `prepare custom` does to every recording (module docstring); "auto" is resolved per dataset.

    trim: drop the leading all-zero frames (trailing ones are always padding: they make the length).
    center: "first_frame", "every_frame" or "none"; center_joint: a joint name or 0-based index
        (None: the layout's centre).
    align: "first_frame" (3D), "none", or "auto" = first_frame for 3D data whose layout names its hips and
        shoulders, none otherwise.
    scale: "body" (unit torso length), "none", or "auto" = body for 2D data, none for 3D (metres already
        have a common scale).
    body_joints: (left hip, right hip, left shoulder, right shoulder) as names or indices, when the layout's
        joint names do not say (see find_body_joints).
    temporal: "resample" (valid frames linearly to `frames`) or "pad" (crop / zero-pad to `frames`;
        0 = the frames of the input array, or of the longest recording of a folder).
    """

    trim: bool = True
    center: str = "first_frame"
    center_joint: int | str | None = None
    align: str = "auto"
    scale: str = "auto"
    body_joints: tuple[int | str, ...] | None = None
    temporal: str = "resample"
    frames: int = 50

    def __post_init__(self) -> None:
        for name, allowed in (("center", CENTER_MODES), ("align", ALIGN_MODES), ("scale", SCALE_MODES),
                              ("temporal", TEMPORAL_MODES)):
            if getattr(self, name) not in allowed:
                raise UserError(f"normalisation: {name} '{getattr(self, name)}' is not one of "
                                f"{', '.join(allowed)}")
        if not isinstance(self.frames, (int, np.integer)) or isinstance(self.frames, bool) or self.frames < 0:
            raise UserError(f"normalisation: frames must be an integer >= 0, got {self.frames!r}")
        if self.temporal == "resample" and self.frames < 1:
            raise UserError("normalisation: resampling needs frames >= 1 (frames 0 only goes with --temporal pad)")
        if self.body_joints is not None and len(self.body_joints) != 4:
            raise UserError("normalisation: body joints are four: left hip, right hip, left shoulder, "
                            f"right shoulder; got {list(self.body_joints)}")


OFF = NormalizeOptions(trim=False, center="none", align="none", scale="none", temporal="pad", frames=0)


@dataclass(frozen=True)
class NormalizeSteps:
    """NormalizeOptions resolved for one dataset: joint indices, no "auto"; `notes` say what was decided."""

    trim: bool
    center: str
    center_joint: int
    align: str
    scale: str
    body_joints: tuple[int, int, int, int] | None
    temporal: str
    frames: int
    coordinates: int
    notes: tuple[str, ...] = field(default=())
    align_auto: bool = False  # align was "auto": decided by the spread of facing directions (decide_alignment)

    def to_dict(self, layout: Layout) -> dict[str, Any]:
        out = asdict(self)
        del out["align_auto"]
        out["center_joint"] = layout.joint_names[self.center_joint]
        out["body_joints"] = ([layout.joint_names[j] for j in self.body_joints] if self.body_joints
                              else None)
        out["notes"] = list(self.notes)
        return out


def describe_steps(steps: dict[str, Any]) -> str:
    """One line for `skelssl info` from the `normalization` record of meta.json."""
    parts = ["valid frames: " + ("leading empty frames dropped" if steps.get("trim") else "from frame 0")]
    center = steps.get("center", "none")
    parts.append("centre: none" if center == "none" else f"centre: {steps.get('center_joint')} ({center})")
    align = steps.get("align", "none")
    parts.append("align: none" if align == "none" else "align: spine -> y, hips -> x (first frame)")
    parts.append("scale: unit torso" if steps.get("scale") == "body" else "scale: none")
    frames = steps.get("frames", 0)
    if steps.get("temporal") == "resample":
        parts.append(f"time: resampled to {frames} frames")
    else:
        parts.append(f"time: cropped/zero-padded to {frames} frames" if frames else "time: kept, zero-padded")
    return "; ".join(parts)


def _joint_index(layout: Layout, joint: int | str, what: str) -> int:
    if isinstance(joint, (int, np.integer)) and not isinstance(joint, bool):
        if not 0 <= int(joint) < layout.num_joints:
            raise UserError(f"{what}: joint {joint} is outside 0..{layout.num_joints - 1} of layout "
                            f"'{layout.name}'")
        return int(joint)
    text = str(joint).strip()
    if text.lstrip("-").isdigit():
        return _joint_index(layout, int(text), what)
    if text not in layout.joint_names:
        raise UserError(f"{what}: layout '{layout.name}' has no joint '{text}'; its joints: "
                        f"{', '.join(layout.joint_names)}")
    return layout.joint_names.index(text)


def find_body_joints(layout: Layout) -> tuple[int, int, int, int] | None:
    """(left hip, right hip, left shoulder, right shoulder) found by name, or None.

    A joint matches when its name, split at non-letters, holds the side ("left"/"l" or "right"/"r") and
    the part ("hip"/"shoulder"): left_hip, hip_right, L-Shoulder all match; each of the four must match
    exactly one joint.
    """
    found = []
    for part in ("hip", "shoulder"):
        for side in (("left", "l"), ("right", "r")):
            hits = [j for j, name in enumerate(layout.joint_names)
                    if part in (tokens := re.split(r"[^a-z]+", name.lower())) and any(s in tokens for s in side)]
            if len(hits) != 1:
                return None
            found.append(hits[0])
    left_hip, right_hip, left_shoulder, right_shoulder = found
    return left_hip, right_hip, left_shoulder, right_shoulder


def resolve(options: NormalizeOptions, layout: Layout, coordinates: int) -> NormalizeSteps:
    """Resolve "auto" and joint names for a dataset of this layout with 2 or 3 coordinates."""
    notes: list[str] = []
    center_joint = (layout.center if options.center_joint is None
                    else _joint_index(layout, options.center_joint, "centre joint"))
    if options.body_joints is not None:
        body = tuple(_joint_index(layout, j, "body joints") for j in options.body_joints)
        if len(set(body)) != 4:
            raise UserError(f"body joints {list(options.body_joints)}: the four joints must be distinct")
        body_joints: tuple[int, int, int, int] | None = body  # type: ignore[assignment]
    else:
        body_joints = find_body_joints(layout)
    missing = (f"layout '{layout.name}' does not name its left/right hips and shoulders (give --body-joints "
               "LEFT_HIP,RIGHT_HIP,LEFT_SHOULDER,RIGHT_SHOULDER)")
    align = options.align
    align_auto = False
    if align == "auto":
        if coordinates == 3 and body_joints is not None:
            align, align_auto = "first_frame", True  # unless the views do not differ: decide_alignment
        else:
            align = "none"
            notes.append("view alignment skipped: " + ("2D data (an in-image rotation would remove the lean of "
                                                        "the body)" if coordinates == 2 else missing))
    elif align == "first_frame":
        if coordinates != 3:
            raise UserError("view alignment (--align first_frame) needs 3D coordinates (x, y, z); 2D keypoints "
                            "are not rotated (use --align none)")
        if body_joints is None:
            raise UserError(f"view alignment needs the hips and shoulders: {missing}")
    scale = options.scale
    if scale == "auto":
        scale = "body" if coordinates == 2 and body_joints is not None else "none"
        if coordinates == 2 and body_joints is None:
            notes.append(f"scaling to unit body size skipped: {missing}")
    elif scale == "body" and body_joints is None:
        raise UserError(f"scaling to unit body size needs the torso: {missing}")
    return NormalizeSteps(trim=options.trim, center=options.center, center_joint=center_joint, align=align,
                          scale=scale, body_joints=body_joints, temporal=options.temporal,
                          frames=int(options.frames), coordinates=coordinates, notes=tuple(notes),
                          align_auto=align_auto)


SAME_VIEW_SPREAD_DEG = 25.0


def facing_angle(seq: np.ndarray, start: int, steps: NormalizeSteps) -> float | None:
    """The direction person 0 faces in the first frame where its hips and shoulders are present: the angle
    (radians) of its hip + shoulder lines about the vertical (y) axis; None when never present."""
    body = seq[start:, 0, :, :3]
    present = joint_mask(seq[start:, :1], steps.coordinates)[:, 0, :, 0]
    frames = _torso_frames(body, present, steps.body_joints)
    if not len(frames):
        return None
    left_hip, right_hip, left_shoulder, right_shoulder = steps.body_joints
    frame = body[frames[0]].astype(np.float64)
    side = frame[right_hip] - frame[left_hip] + frame[right_shoulder] - frame[left_shoulder]
    return float(np.arctan2(-side[2], side[0])) if np.hypot(side[0], side[2]) > MIN_NORM else None


def decide_alignment(steps: NormalizeSteps, angles: list[float]) -> NormalizeSteps:
    """Resolve align="auto" from the facing directions of the recordings (module docstring, step 3)."""
    if not steps.align_auto or not angles:
        return steps
    spread = float(np.degrees(np.sqrt(-2 * np.log(max(abs(np.exp(1j * np.asarray(angles)).mean()), 1e-12)))))
    if spread < SAME_VIEW_SPREAD_DEG:
        note = (f"view alignment skipped: the recordings face the sensor alike (their facing directions spread "
                f"{spread:.0f} degrees, under {SAME_VIEW_SPREAD_DEG:.0f}); --align first_frame forces it")
        return replace(steps, align="none", align_auto=False, notes=steps.notes + (note,))
    note = f"views aligned: the recordings' facing directions spread {spread:.0f} degrees"
    return replace(steps, align_auto=False, notes=steps.notes + (note,))


# ---------------------------------------------------------------------------------------------------------
# The steps, on one recording (T, M, V, C)


def joint_mask(seq: np.ndarray, coordinates: int) -> np.ndarray:
    """(T, M, V, 1) True where a joint is present (some coordinate non-zero)."""
    return (seq[..., :coordinates] != 0).any(axis=-1, keepdims=True)


def valid_range(seq: np.ndarray, coordinates: int | None = None) -> tuple[int, int]:
    """(start, stop) of the frames between the first and last frame holding any joint; (0, 0) if none."""
    coordinates = seq.shape[-1] if coordinates is None else coordinates
    frames = np.flatnonzero((seq[..., :coordinates] != 0).reshape(len(seq), -1).any(axis=1))
    return (int(frames[0]), int(frames[-1]) + 1) if len(frames) else (0, 0)


def center_bodies(bodies: np.ndarray, joint: int, mode: str, mask: np.ndarray,
                  keep_trajectory: bool = False) -> np.ndarray:
    """Subtract a centre joint from (T, M, V, C) coordinates; entries outside `mask` stay zero.

    mode: "each_body" (every body on its own joint, every frame), "body0" (every body on body 0's joint,
    every frame) or "first_frame" (every body on body 0's joint in the first frame where it is present).
    keep_trajectory (each_body): the centre joint keeps its displacement from its first present frame
    (the CrosSCLR/AimCLR NTU code). mask: broadcastable to `bodies`, True where a value is present.
    """
    present = np.broadcast_to(mask, bodies.shape)
    if mode == "first_frame":
        seen = np.flatnonzero(present[:, 0, joint].any(axis=-1))
        if not len(seen):
            return bodies * mask
        center = bodies[seen[0], 0, joint]
    elif mode == "body0":
        center = bodies[:, :1, joint:joint + 1]
    elif mode == "each_body":
        center = bodies[:, :, joint:joint + 1]
    else:
        raise ValueError(f"centre mode '{mode}' is not first_frame, body0 or each_body")
    centered = (bodies - center) * mask
    if keep_trajectory:
        body_present = present.any(axis=(2, 3))  # (T, M)
        for m in range(bodies.shape[1]):
            idx = np.flatnonzero(body_present[:, m])
            if len(idx):
                centered[idx, m, joint] = bodies[idx, m, joint] - bodies[idx[0], m, joint]
    return centered


def _torso(frame: np.ndarray, body_joints: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(spine mid-hips -> mid-shoulders, hip line left -> right) of one (V, C) frame."""
    left_hip, right_hip, left_shoulder, right_shoulder = body_joints
    hips = (frame[left_hip] + frame[right_hip]) / 2
    shoulders = (frame[left_shoulder] + frame[right_shoulder]) / 2
    return shoulders - hips, frame[right_hip] - frame[left_hip]


def _torso_frames(body0: np.ndarray, present: np.ndarray, body_joints: tuple[int, int, int, int]) -> np.ndarray:
    """Indices of the frames where all four body joints of person 0 are present."""
    return np.flatnonzero(present[:, list(body_joints)].all(axis=1))


def upright_rotation(frame: np.ndarray, body_joints: tuple[int, int, int, int]) -> np.ndarray | None:
    """3x3 rotation taking the spine of one (V, 3) frame onto +y and then, about y, its hip line onto +x;
    None when the spine or the hip line (seen from above after the first rotation) is degenerate."""
    spine, hip_line = _torso(frame.astype(np.float64), body_joints)
    if np.linalg.norm(spine) < MIN_NORM:
        return None
    lift = rotation_between(spine, np.array([0.0, 1.0, 0.0]))
    side = lift @ hip_line
    side[1] = 0.0  # the part of the hip line that a turn about y can move
    if np.linalg.norm(side) < MIN_NORM:
        return None
    return rotation_between(side, np.array([1.0, 0.0, 0.0])) @ lift


def torso_length(body0: np.ndarray, present: np.ndarray, body_joints: tuple[int, int, int, int]) -> float:
    """Mean |mid-shoulders - mid-hips| of person 0's (T, V, C) coordinates over the frames where the four
    joints are present (`present` (T, V)); 0 when there is none."""
    frames = _torso_frames(body0, present, body_joints)
    if not len(frames):
        return 0.0
    spines = [_torso(body0[t], body_joints)[0] for t in frames]
    return float(np.mean(np.linalg.norm(np.asarray(spines, dtype=np.float64), axis=-1)))


def normalize_sequence(seq: np.ndarray, steps: NormalizeSteps, start: int, stop: int,
                       out_frames: int) -> tuple[np.ndarray, int, list[str]]:
    """Normalise one recording (T, M, V, C) whose valid frames are start..stop-1.

    Returns (out_frames, M, V, C) float32, the valid length in it, and the steps that could not be applied
    to this recording ("not aligned", "not scaled": its hips, shoulders or torso are never all present or
    degenerate).
    """
    k = steps.coordinates
    seq = np.asarray(seq[start:stop], dtype=np.float64)
    coords = seq[..., :k]
    mask = joint_mask(seq, k)
    skipped: list[str] = []
    if steps.center == "first_frame":
        coords = center_bodies(coords, steps.center_joint, "first_frame", mask)
    elif steps.center == "every_frame":
        coords = center_bodies(coords, steps.center_joint, "each_body", mask)
    if steps.align == "first_frame" or steps.scale == "body":
        present0 = mask[:, 0, :, 0]
        frames = _torso_frames(coords[:, 0], present0, steps.body_joints)
        if steps.align == "first_frame":
            rotation = None
            for t in frames[:1]:
                rotation = upright_rotation(coords[t, 0], steps.body_joints)
            if rotation is None:
                skipped.append("not aligned")
            else:
                coords = (coords @ rotation.T) * mask
        if steps.scale == "body":
            size = torso_length(coords[:, 0], present0, steps.body_joints)
            if size < MIN_NORM:
                skipped.append("not scaled")
            else:
                coords = coords / size
    seq = np.concatenate([coords, seq[..., k:]], axis=-1)
    length = stop - start
    if steps.temporal == "resample":
        out = resample_linear(seq, out_frames)
        length = out_frames
    else:
        out = np.zeros((out_frames,) + seq.shape[1:])
        length = min(length, out_frames)
        out[:length] = seq[:length]
    return out.astype(np.float32), length, skipped


# ---------------------------------------------------------------------------------------------------------
# Does a prepared dataset look normalised?

FAR_FROM_ORIGIN = 3.0     # centre of the first frame further than this many body spreads from the origin
PADDING_FRACTION = 0.5    # more than half of the frames are all-zero
SPREAD_RANGE = (0.02, 20.0)  # a body's RMS joint spread outside this (metres-like units) suggests mm or pixels


def dataset_warnings(data: np.ndarray, channel_names: tuple[str, ...] | list[str] | None = None,
                     limit: int = 512) -> list[str]:
    """Plain-language warnings about a prepared (N, C, T, V, M) array that looks un-normalised, each with
    the `prepare custom` option that fixes it. Looks at up to `limit` evenly spaced samples."""
    n, c = data.shape[:2]
    if n == 0:
        return []
    k = coordinate_count(channel_names, c) if channel_names else min(c, 3)
    rows = np.unique(np.linspace(0, n - 1, min(n, limit)).astype(np.int64))
    sample = np.asarray(data[rows], dtype=np.float64)[:, :k]  # (n', k, T, V, M)
    # samples with NaN, inf or unusably large values are reported on their own (prepared.unusable_rows)
    sample = sample[usable_values(sample.reshape(len(sample), -1)).all(axis=1)]
    if len(sample) == 0:
        return []
    present = (sample != 0).any(axis=1)  # (n', T, V, M)
    frames_used = present.any(axis=(2, 3))  # (n', T)
    warnings: list[str] = []
    if not frames_used.any():
        return ["every sampled skeleton is all zeros"]
    padding = 1.0 - frames_used.mean()
    if padding > PADDING_FRACTION:
        warnings.append(f"{padding:.0%} of the frames are zero padding: resample every recording's valid "
                        "frames to a fixed length (`skelssl prepare custom ... --temporal resample --frames 50`, "
                        "the default), unless your method crops the valid frames itself (crop_resize)")
    ratios, spreads = [], []
    for i in range(len(sample)):
        first = np.flatnonzero(present[i, :, :, 0].any(axis=1))
        if not len(first):
            continue
        joints = present[i, first[0], :, 0]
        points = sample[i, :, first[0], joints, 0]  # (V', k)
        centroid = points.mean(axis=0)
        spread = float(np.sqrt(((points - centroid) ** 2).sum(axis=1).mean()))
        if spread > 0:
            ratios.append(float(np.linalg.norm(centroid)) / spread)
            spreads.append(spread)
    if ratios and np.median(ratios) > FAR_FROM_ORIGIN:
        warnings.append(f"the skeletons sit far from the origin (median {np.median(ratios):.1f} body spreads "
                        "away in their first frame): centre them (`skelssl prepare custom ... --center "
                        "first_frame`, the default)")
    if spreads and not SPREAD_RANGE[0] <= np.median(spreads) <= SPREAD_RANGE[1]:
        warnings.append(f"a body spreads over {np.median(spreads):.3g} units (metres give about 0.4): are these "
                        "millimetres or pixels? Scale them to unit body size (`skelssl prepare custom ... "
                        "--scale body`)")
    valid = present.transpose(0, 1, 3, 2)  # (n', T, M, V)
    values = sample.transpose(0, 2, 4, 3, 1)[valid]  # (joints present, k)
    names = list(channel_names[:k]) if channel_names else list(COORDINATE_NAMES[:k])
    scale = float(np.abs(values).max()) if values.size else 0.0
    for axis in range(k):
        if values.size and values[:, axis].std() <= 1e-6 * max(scale, 1e-12):
            warnings.append(f"coordinate {names[axis]} is constant ({values[0, axis]:.3g}) in every joint: "
                            + ("the recordings look 2D; prepare them as 2D keypoints (`skelssl prepare custom "
                               "... --channels xy`, or `xy-score` with a confidence channel)" if axis == 2 and k == 3
                               else "check the array's axis order (N, T, V, C)"))
    return warnings


def steps_with(options: NormalizeOptions, **changes: Any) -> NormalizeOptions:
    """A copy of `options` with some fields replaced (None values are ignored)."""
    return replace(options, **{k: v for k, v in changes.items() if v is not None})
