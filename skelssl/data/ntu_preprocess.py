"""The two NTU preprocessing recipes of the field, as presets over independent, documented steps.

`aimclr` (CrosSCLR / AimCLR / ActCLR, REFERENCE_NOTES "Data preparation"):
    first 2 bodies in file order, at most 300 frames; centre every frame of every body on its own joint 21
    (the official code keeps the trajectory of joint 21 relative to the first frame in joint 21 itself —
    `center_trajectory`); resample the valid frames (frames where body 0 is non-zero) linearly to 50;
    rotate every frame of every body about the vertical (y) axis so that its shoulder vector
    (joint 9 - joint 5) lies on +x.  -> (3, 50, 25, 2), length 50.
`agcn` (2s-AGCN, used by HiCo / CMD / A2MC):
    up to 4 bodies read, the 2 with the most motion energy kept; null frames filled by repeating the
    sequence; centre on joint 2 of body 0 (per frame); one rotation from the first frame (hip->spine onto
    z, then right-left shoulders onto x); 300 frames + the frame count. (The crop-resize to 64 frames
    happens at training time, not here.)  -> (3, 300, 25, 2), length = frame count.

Denoising (`denoise=True`, off in both presets because neither official pipeline does it): bodies are
tracked by their Kinect tracking id; a body seen in 10 frames or fewer, or whose skeleton is wider than
0.8x its height in more than 69.754% of its frames, is dropped (the length and spread thresholds of the
NTU denoising script used by SGN / CTR-GCN; its motion-range rule is not applied). The remaining bodies
are packed into the kept slots without overlapping in time. This removes the spurious second body of
the NTU samples that hold one (e.g. S001C001P001R001A024-A029, where it is sometimes listed first).
Joint numbers in options are 1-based, as in the NTU documentation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from skelssl.data.geometry import resample_linear, rotation_between  # noqa: F401 - re-exported
from skelssl.data.normalize import center_bodies
from skelssl.data.ntu import NtuSkeleton
from skelssl.errors import UserError

DENOISE_MIN_FRAMES = 11
DENOISE_SPREAD_RATIO = 0.8
DENOISE_NOISY_FRACTION = 0.69754


@dataclass(frozen=True)
class NtuRecipe:
    """Every preprocessing step as an option.

    read_bodies: bodies read per frame from the file (in file order).
    bodies: bodies kept (M of the output).
    body_order: "file" (keep the first ones) or "motion" (keep the ones with most motion energy).
    denoise: drop spurious bodies (see module docstring).
    max_frames: frames kept from the file (longer sequences are truncated).
    fill_null: fill empty frames by repeating the valid sequence (2s-AGCN) instead of zero padding.
    center_joint: 1-based joint subtracted (0 = no centring).
    center_mode: "each_body" (every body on its own joint, every frame) or "body0" (every body on body 0's
                 joint, every frame).
    center_trajectory: keep the joint's own displacement from the first frame in the centre joint.
    frames: resample the valid frames linearly to this many (0 = keep max_frames, zero padded).
    align: "none", "shoulders_per_frame" (rotate about y, per frame and body, shoulders onto x) or
           "first_frame" (one rotation from body 0's first frame: hip->spine onto z, shoulders onto x).
    """

    read_bodies: int = 2
    bodies: int = 2
    body_order: str = "file"
    denoise: bool = False
    max_frames: int = 300
    fill_null: bool = False
    center_joint: int = 21
    center_mode: str = "each_body"
    center_trajectory: bool = True
    frames: int = 50
    align: str = "shoulders_per_frame"

    def __post_init__(self) -> None:
        if self.body_order not in ("file", "motion"):
            raise UserError(f"body order '{self.body_order}' is not 'file' or 'motion'")
        if self.center_mode not in ("each_body", "body0"):
            raise UserError(f"centre mode '{self.center_mode}' is not 'each_body' or 'body0'")
        if self.align not in ("none", "shoulders_per_frame", "first_frame"):
            raise UserError(f"alignment '{self.align}' is not none, shoulders_per_frame or first_frame")
        if not 1 <= self.bodies <= self.read_bodies:
            raise UserError(f"bodies kept ({self.bodies}) must be between 1 and the bodies read "
                            f"({self.read_bodies})")
        if not 0 <= self.center_joint <= 25:
            raise UserError(f"centre joint {self.center_joint} is not in 1..25 (or 0 for none)")
        if self.max_frames < 1 or self.frames < 0:
            raise UserError("max_frames must be >= 1 and frames >= 0")

    @property
    def out_frames(self) -> int:
        return self.frames if self.frames > 0 else self.max_frames

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, NtuRecipe] = {
    "aimclr": NtuRecipe(),
    "agcn": NtuRecipe(read_bodies=4, bodies=2, body_order="motion", fill_null=True, center_joint=2,
                      center_mode="body0", center_trajectory=False, frames=0, align="first_frame"),
}


def recipe_from_preset(preset: str, **overrides: Any) -> NtuRecipe:
    """A preset with some options replaced (None values are ignored)."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})


# ---------------------------------------------------------------------------------------------------------
# Body selection


def _present(joints: np.ndarray) -> np.ndarray:
    """(T, B) mask of frames where a body slot holds a skeleton."""
    return np.abs(joints).sum(axis=(-1, -2)) > 0


def motion_energy(body: np.ndarray) -> float:
    """Sum over x, y, z of the std of the coordinates over the body's non-empty frames (2s-AGCN's score)."""
    frames = body[np.abs(body).sum(axis=(1, 2)) > 0]
    if len(frames) == 0:
        return 0.0
    return float(sum(frames[..., c].std() for c in range(3)))


def denoised_tracks(skel: NtuSkeleton) -> list[np.ndarray]:
    """Bodies by tracking id, spurious ones removed, each (T, 25, 3) zero where the body is absent.

    Ordered by first appearance (then file position). Never returns an empty list for a skeleton with a
    body: if every track is judged noise, the longest one is kept.
    """
    tracks: dict[int, np.ndarray] = {}
    first_seen: dict[int, tuple[int, int]] = {}
    t_len = skel.num_frames
    for t in range(t_len):
        for b in range(skel.body_ids.shape[1]):
            tid = int(skel.body_ids[t, b])
            if tid < 0:
                continue
            if tid not in tracks:
                tracks[tid] = np.zeros((t_len, 25, 3), dtype=np.float32)
                first_seen[tid] = (t, b)
            tracks[tid][t] = skel.joints[t, b]
    kept = []
    for tid, track in tracks.items():
        frames = track[np.abs(track).sum(axis=(1, 2)) > 0]
        if len(frames) < DENOISE_MIN_FRAMES:
            continue
        spread_x = frames[..., 0].max(1) - frames[..., 0].min(1)
        spread_y = frames[..., 1].max(1) - frames[..., 1].min(1)
        if np.mean(spread_x > DENOISE_SPREAD_RATIO * spread_y) > DENOISE_NOISY_FRACTION:
            continue
        kept.append(tid)
    if not kept and tracks:
        kept = [max(tracks, key=lambda k: int(_present(tracks[k][:, None])[:, 0].sum()))]
    kept.sort(key=lambda k: first_seen[k])
    return [tracks[k] for k in kept]


def select_bodies(skel: NtuSkeleton, recipe: NtuRecipe) -> np.ndarray:
    """(T, M, 25, 3) with M = recipe.bodies, chosen as the recipe says."""
    t_len = skel.num_frames
    if recipe.denoise:
        candidates = denoised_tracks(skel)
        if recipe.body_order == "motion":
            candidates.sort(key=motion_energy, reverse=True)
        slots = np.zeros((t_len, recipe.bodies, 25, 3), dtype=np.float32)
        used = np.zeros((t_len, recipe.bodies), dtype=bool)
        for track in candidates:
            present = np.abs(track).sum(axis=(1, 2)) > 0
            for m in range(recipe.bodies):  # first slot free at every frame of this track
                if not (used[:, m] & present).any():
                    slots[present, m] = track[present]
                    used[:, m] |= present
                    break
        return slots
    read = skel.joints[:, :recipe.read_bodies]
    if read.shape[1] < recipe.read_bodies:
        read = np.concatenate([read, np.zeros((t_len, recipe.read_bodies - read.shape[1], 25, 3),
                                              dtype=np.float32)], axis=1)
    if recipe.body_order == "motion":
        energy = [motion_energy(read[:, b]) for b in range(read.shape[1])]
        order = np.argsort(-np.asarray(energy), kind="stable")[:recipe.bodies]
        return read[:, order]
    return read[:, :recipe.bodies]


# ---------------------------------------------------------------------------------------------------------
# Geometry


def align_shoulders_per_frame(bodies: np.ndarray) -> np.ndarray:
    """Rotate each frame of each body about y so that (joint 9 - joint 5) has z = 0 and x > 0.

    bodies: (T, M, 25, 3). The official code picks one rotation sign for the whole sequence from the summed
    z of the shoulder vectors; here each frame gets the exact rotation (they agree whenever the sign of z
    does not change within the sequence).
    """
    vec = bodies[:, :, 8] - bodies[:, :, 4]  # (T, M, 3): right shoulder - left shoulder
    norm = np.hypot(vec[..., 0], vec[..., 2])
    safe = norm > 1e-8
    cos = np.where(safe, vec[..., 0] / np.where(safe, norm, 1), 1.0)[..., None]
    sin = np.where(safe, vec[..., 2] / np.where(safe, norm, 1), 0.0)[..., None]
    x, y, z = bodies[..., 0], bodies[..., 1], bodies[..., 2]
    out = np.empty_like(bodies)
    out[..., 0] = cos * x + sin * z
    out[..., 1] = y
    out[..., 2] = -sin * x + cos * z
    return out


def fill_null_frames(bodies: np.ndarray) -> np.ndarray:
    """2s-AGCN padding: per body, move its frames to the start if it begins empty, then fill the empty tail
    by repeating its valid frames cyclically."""
    out = bodies.copy()
    t_len = out.shape[0]
    for m in range(out.shape[1]):
        present = np.abs(out[:, m]).sum(axis=(1, 2)) > 0
        if not present.any():
            continue
        if not present[0]:
            frames = out[present, m]
            out[:, m] = 0
            out[:len(frames), m] = frames
            present = np.abs(out[:, m]).sum(axis=(1, 2)) > 0
        last = int(np.nonzero(present)[0][-1]) + 1
        if last < t_len:
            reps = int(np.ceil((t_len - last) / last))
            out[last:, m] = np.concatenate([out[:last, m]] * reps)[:t_len - last]
    return out


def preprocess_skeleton(skel: NtuSkeleton, recipe: NtuRecipe) -> tuple[np.ndarray, int]:
    """Apply a recipe to a parsed file. Returns (3, T_out, 25, M) float32 and the valid length."""
    bodies = select_bodies(skel, recipe)[:recipe.max_frames]  # (T, M, 25, 3)
    present = _present(bodies)
    # Valid frames: those where body 0 is present (the official get_length counts them).
    length = int(present[:, 0].sum()) if present[:, 0].any() else int(present.any(axis=1).sum())
    length = max(length, 1)
    if recipe.frames == 0 and bodies.shape[0] < recipe.max_frames:  # pad first: fill_null fills the padding
        pad = np.zeros((recipe.max_frames - bodies.shape[0],) + bodies.shape[1:], dtype=bodies.dtype)
        bodies = np.concatenate([bodies, pad])
        present = _present(bodies)
    if recipe.fill_null:
        bodies = fill_null_frames(bodies)
        present = _present(bodies)
    if recipe.center_joint:
        # With center_trajectory the centre joint keeps its displacement from its first present frame
        # (AimCLR family code).
        bodies = center_bodies(bodies, recipe.center_joint - 1, recipe.center_mode, present[..., None, None],
                               keep_trajectory=recipe.center_trajectory)
    if recipe.frames > 0:
        # Resample the first `length` frames (the valid ones) to `frames`.
        bodies = resample_linear(bodies[:length], recipe.frames)
        out_len = recipe.frames
    else:
        out_len = length
    if recipe.align == "shoulders_per_frame":
        bodies = align_shoulders_per_frame(bodies)
    elif recipe.align == "first_frame":
        bodies = align_first_frame(bodies)
    return np.ascontiguousarray(bodies.transpose(3, 0, 2, 1), dtype=np.float32), out_len


def align_first_frame(bodies: np.ndarray) -> np.ndarray:
    """2s-AGCN: from body 0's first frame, rotate hip (joint 1) -> spine (joint 2) onto z, then right
    shoulder (9) - left shoulder (5) onto x; the same two rotations for every frame and body."""
    first = bodies[0, 0]
    if not np.abs(first).sum() > 0:
        return bodies
    present = (np.abs(bodies).sum(axis=-1, keepdims=True) > 0)
    rot_z = rotation_between(first[1] - first[0], np.array([0.0, 0.0, 1.0]))
    rotated = bodies @ rot_z.T
    first = rotated[0, 0]
    rot_x = rotation_between(first[8] - first[4], np.array([1.0, 0.0, 0.0]))
    rotated = rotated @ rot_x.T
    return (rotated * present).astype(np.float32)
