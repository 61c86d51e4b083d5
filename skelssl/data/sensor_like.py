"""Recordings as a sensor or a pose estimator writes them, made from the synthetic generator's sequences:
the test bed of `skelssl prepare custom` (docs/data.md, benchmarks/own_recordings.py).

`sensor_recordings`: a depth camera (Kinect-like, metres, x right, y up, z away from the camera). The
generator's sequences (camera coordinates already: any view, tilt, drift) are placed 2-4 m from a camera
panned by up to +-30 degrees and mounted 0.2-1.2 m above the pelvis, each recording gets its own length
(its frames resampled to 40-120, a different speed), a few empty frames before tracking starts, and all are
zero-padded to the longest, as a sensor's arrays are saved: (N, 3, T, 25, 2) NTU-25 joints.

`keypoints_2d`: the same scenes seen by a 640 x 480 pinhole camera (focal length 525 px) through a 2D pose
estimator: COCO-17 keypoints (x, y, score) in pixels, image y downwards; face keypoints placed about the
head; each keypoint's score 0.6-1.0, and 5 % of them missed (score below 0.1, position off by up to 30 px),
pixel noise 1.5 px: (N, 3, T, 17, 2).

The synthetic dataset's own outputs are not changed: this module only reads `generate_synthetic`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skelssl.data.geometry import resample_linear
from skelssl.data.synthetic import generate_synthetic

__all__ = ["sensor_recordings", "keypoints_2d", "save_recordings"]

FOCAL_PX, IMAGE_SIZE = 525.0, (640, 480)


def _rot_y(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([c, 0 * c, s], -1), np.stack([0 * c, 1 + 0 * c, 0 * c], -1),
                     np.stack([-s, 0 * c, c], -1)], -2)


def sensor_recordings(seed: int = 0, per_subject: int = 5, length_range: tuple[int, int] = (40, 120),
                      **generator_args: Any) -> dict[str, np.ndarray]:
    """{"data" (N, 3, T, 25, 2) float32 zero-padded, "labels", "split" ('train'/'test', by subject),
    "lengths" (frames up to the last tracked one, leading empty frames included), "class_names"}."""
    synth = generate_synthetic(num_samples_per_class_per_subject=per_subject, seed=seed, frames=64,
                               **generator_args)
    rng = np.random.default_rng([seed, 7])
    n = len(synth.labels)
    raw = synth.data.transpose(0, 2, 4, 3, 1)  # (N, T, M, V, 3)
    present = np.abs(raw).sum(axis=(3, 4), keepdims=True) > 0
    # Sensor placement: the person 2-4 m away, the camera panned and above the pelvis.
    depth = rng.uniform(2.0, 4.0, n)
    offset = np.stack([rng.uniform(-0.8, 0.8, n), rng.uniform(-1.2, -0.2, n), depth - raw[:, 0, 0, 0, 2]], -1)
    pan = _rot_y(np.deg2rad(rng.uniform(-30, 30, n)))  # (N, 3, 3)
    moved = (np.einsum("nij,ntmvj->ntmvi", pan, raw) + offset[:, None, None, None]) * present
    lengths = rng.integers(length_range[0], length_range[1] + 1, n)
    lead = np.where(rng.random(n) < 0.3, rng.integers(1, 6, n), 0)  # tracking starts late
    total = int((lengths + lead).max())
    data = np.zeros((n, 3, total, 25, raw.shape[2]), dtype=np.float32)
    for i in range(n):
        seq = resample_linear(moved[i], int(lengths[i]))  # (L, M, V, 3): another speed
        seq *= np.abs(seq).sum(axis=(2, 3), keepdims=True) > 1e-6
        data[i, :, lead[i]:lead[i] + lengths[i]] = seq.transpose(3, 0, 2, 1)
    split = np.where(np.isin(synth.subjects, synth.train_subjects), "train", "test")
    return {"data": data, "labels": synth.labels, "split": split, "lengths": (lengths + lead).astype(np.int64),
            "class_names": np.array(synth.class_names)}


# NTU-25 joint of each COCO-17 body keypoint (0-based); the five face keypoints are placed about the head.
COCO_FROM_NTU = {5: 4, 6: 8, 7: 5, 8: 9, 9: 6, 10: 10, 11: 12, 12: 16, 13: 13, 14: 17, 15: 14, 16: 18}
HEAD, NECK, SPINE_BASE, L_SHOULDER, R_SHOULDER = 3, 2, 0, 4, 8
# face keypoint: (metres along the body's left-right, up, forward axes from the head joint)
FACE = {0: (0.0, -0.02, 0.10), 1: (0.035, 0.02, 0.08), 2: (-0.035, 0.02, 0.08), 3: (0.075, 0.0, 0.0),
        4: (-0.075, 0.0, 0.0)}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def keypoints_2d(seed: int = 0, per_subject: int = 5, **sensor_args: Any) -> dict[str, np.ndarray]:
    """The sensor recordings seen by a video camera and a 2D pose estimator (module docstring):
    {"data" (N, 3, T, 17, 2) float32 (x px, y px, score), "labels", "split", "lengths", "class_names"}."""
    rec = sensor_recordings(seed=seed, per_subject=per_subject, **sensor_args)
    rng = np.random.default_rng([seed, 11])
    joints = rec["data"].transpose(0, 2, 4, 3, 1).astype(np.float64)  # (N, T, M, 25, 3)
    present = np.abs(joints).sum(axis=(3, 4)) > 0  # (N, T, M)
    lateral = _unit(joints[..., L_SHOULDER, :] - joints[..., R_SHOULDER, :])  # towards the left side
    up = _unit(joints[..., NECK, :] - joints[..., SPINE_BASE, :])
    forward = _unit(np.cross(lateral, up))
    points = np.zeros(joints.shape[:3] + (17, 3))
    for coco, ntu in COCO_FROM_NTU.items():
        points[..., coco, :] = joints[..., ntu, :]
    for coco, (a, b, c) in FACE.items():
        points[..., coco, :] = joints[..., HEAD, :] + a * lateral + b * up + c * forward
    depth = np.maximum(points[..., 2], 0.3)
    u = FOCAL_PX * points[..., 0] / depth + IMAGE_SIZE[0] / 2
    v = IMAGE_SIZE[1] / 2 - FOCAL_PX * points[..., 1] / depth
    score = rng.uniform(0.6, 1.0, u.shape)
    missed = rng.random(u.shape) < 0.05
    score[missed] = rng.uniform(0.0, 0.1, int(missed.sum()))
    u = u + rng.normal(0, 1.5, u.shape) + missed * rng.uniform(-30, 30, u.shape)
    v = v + rng.normal(0, 1.5, v.shape) + missed * rng.uniform(-30, 30, v.shape)
    out = np.stack([u, v, score], axis=-1) * present[..., None, None]  # (N, T, M, 17, 3)
    return {**rec, "data": np.ascontiguousarray(out.transpose(0, 4, 1, 3, 2), dtype=np.float32)}


def save_recordings(rec: dict[str, np.ndarray], out: str | Path, with_lengths: bool = False) -> Path:
    """Write the recordings as a user would hand them to `prepare custom`: OUT.npz (data, labels, split[,
    lengths]) and OUT_classes.txt (one class name a line)."""
    out = Path(out).with_suffix(".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: rec[k] for k in ("data", "labels", "split") + (("lengths",) if with_lengths else ())}
    np.savez(out, **arrays)
    out.with_name(out.stem + "_classes.txt").write_text("\n".join(rec["class_names"].tolist()) + "\n")
    return out
