"""The normalisation steps of `prepare custom` (skelssl/data/normalize.py) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from skelssl.data.normalize import (OFF, NormalizeOptions, center_bodies, channel_names_for, dataset_warnings,
                                    decide_alignment, describe_steps, find_body_joints, normalize_sequence, resolve,
                                    torso_length, upright_rotation, valid_range)
from skelssl.errors import UserError
from skelssl.skeleton.layouts import COCO17, KINECT20, NTU25, Layout

# A 5-joint body: pelvis (centre), left hip, right hip, left shoulder, right shoulder.
BODY = Layout(name="torso5", joint_names=("pelvis", "left_hip", "right_hip", "left_shoulder", "right_shoulder"),
              edges=((1, 0), (2, 0), (3, 1), (4, 2)), center=0,
              parts={"trunk": (0,), "left": (1, 3), "right": (2, 4)}, hands={}, left_right=((1, 3), (2, 4)))


def upright_body(offset=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(5, 3): hips 0.2 apart on x, shoulders 0.4 above them, right side at +x."""
    body = np.array([[0, 0, 0], [-0.1, 0, 0], [0.1, 0, 0], [-0.15, 0.4, 0], [0.15, 0.4, 0]], dtype=np.float64)
    return body + np.asarray(offset)


def test_valid_range_skips_leading_and_trailing_empty_frames():
    seq = np.zeros((10, 2, 5, 3))
    seq[2, 1, 3] = [0, 0, 1]  # only person 1, one joint, one coordinate: still a skeleton
    seq[6, 0, 0] = [1, 0, 0]
    assert valid_range(seq) == (2, 7)
    assert valid_range(np.zeros((4, 1, 5, 3))) == (0, 0)
    seq2d = np.zeros((5, 1, 5, 3))
    seq2d[1:3, 0, :, 2] = 0.9  # a score alone is not a skeleton
    seq2d[3, 0, 0, :2] = [5, 5]
    assert valid_range(seq2d, coordinates=2) == (3, 4)


def test_center_first_frame_and_each_body_by_hand():
    bodies = np.zeros((2, 2, 3, 3))
    bodies[0, 0] = [[1, 1, 1], [2, 3, 4], [5, 5, 5]]
    bodies[1, 0] = [[0, 0, 0], [3, 3, 3], [6, 6, 6]]  # joint 0 missing in frame 1
    bodies[1, 1] = [[10, 10, 10], [11, 11, 11], [12, 12, 12]]  # person 1 only in frame 1
    mask = (bodies != 0).any(-1, keepdims=True)
    first = center_bodies(bodies, 1, "first_frame", mask)
    np.testing.assert_allclose(first[0, 0], [[-1, -2, -3], [0, 0, 0], [3, 2, 1]])
    np.testing.assert_allclose(first[1, 0], [[0, 0, 0], [1, 0, -1], [4, 3, 2]])  # missing joint stays zero
    np.testing.assert_allclose(first[1, 1], [[8, 7, 6], [9, 8, 7], [10, 9, 8]])
    assert (first[0, 1] == 0).all()  # absent person stays absent
    each = center_bodies(bodies, 1, "each_body", mask)
    np.testing.assert_allclose(each[1, 0], [[0, 0, 0], [0, 0, 0], [3, 3, 3]])
    np.testing.assert_allclose(each[1, 1], [[-1, -1, -1], [0, 0, 0], [1, 1, 1]])


def test_upright_rotation_takes_spine_to_y_and_hips_to_x():
    # A body lying with its spine along +z and its hips (left -> right) along +y: the rotation must take
    # z -> y and y -> x, hence (right-handed) x -> z.
    lying = np.array([[0, 0, 0], [0, -0.1, 0], [0, 0.1, 0], [0, -0.15, 0.4], [0, 0.15, 0.4]])
    rot = upright_rotation(lying, (1, 2, 3, 4))
    np.testing.assert_allclose(rot, [[0, 1, 0], [0, 0, 1], [1, 0, 0]], atol=1e-12)
    # Upright but turned 90 degrees about y (hips along -z): only a turn about y, the spine is unchanged.
    turned = upright_body()[:, [2, 1, 0]] * np.array([1, 1, -1])  # x -> -z
    rot = upright_rotation(turned, (1, 2, 3, 4))
    np.testing.assert_allclose(rot @ turned.T, upright_body().T, atol=1e-12)
    # A tilted pelvis (right hip 0.1 higher) turned by 30 degrees: the spine still ends exactly on +y, the hip
    # line in the x-y plane (only its horizontal part is turned onto x).
    tilted = upright_body()
    tilted[2, 1] += 0.1
    tilted[[3, 4], 1] += 0.05  # keep the spine vertical before the turn
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    turn = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    rot = upright_rotation(tilted @ turn.T, (1, 2, 3, 4))
    np.testing.assert_allclose(rot @ turn, np.eye(3), atol=1e-12)
    assert upright_rotation(np.zeros((5, 3)), (1, 2, 3, 4)) is None


def test_torso_length_is_mean_over_frames_with_all_four_joints():
    frames = np.stack([upright_body(), upright_body() * 2, upright_body()])
    present = np.ones((3, 5), dtype=bool)
    present[2, 3] = False  # frame 2 lacks the left shoulder: not counted
    assert torso_length(frames, present, (1, 2, 3, 4)) == pytest.approx((0.4 + 0.8) / 2)


def test_body_joints_found_by_name():
    assert find_body_joints(NTU25) == (12, 16, 4, 8)
    assert find_body_joints(KINECT20) == (12, 16, 4, 8)
    assert find_body_joints(COCO17) == (11, 12, 5, 6)
    assert find_body_joints(BODY) == (1, 2, 3, 4)
    named = Layout(name="odd", joint_names=("Hip-L", "R_hip", "l.shoulder", "shoulder right", "head"),
                   edges=((0, 4), (1, 4), (2, 4), (3, 4)), center=4, parts={"all": (0, 1, 2, 3, 4)}, hands={},
                   left_right=())
    assert find_body_joints(named) == (0, 1, 2, 3)
    two_left_hips = Layout(name="amb", joint_names=("left_hip", "left_hip_2", "right_hip", "left_shoulder",
                                                    "right_shoulder"),
                           edges=((1, 0), (2, 0), (3, 0), (4, 0)), center=0, parts={"a": (0, 1, 2, 3, 4)},
                           hands={}, left_right=())
    assert find_body_joints(two_left_hips) is None


def test_normalize_sequence_3d_by_hand():
    # Person 0 stands turned by 90 degrees, 3 m away; frame 1 moves it 1 m along x (camera); two padding
    # frames around it.
    turned = upright_body()[:, [2, 1, 0]] * np.array([1, 1, -1]) + [0.5, 0.2, 3.0]
    seq = np.zeros((4, 1, 5, 3))
    seq[1, 0], seq[2, 0] = turned, turned + [1.0, 0, 0]
    steps = resolve(NormalizeOptions(temporal="pad", frames=3), BODY, 3)
    assert steps.align == "first_frame" and steps.scale == "none"
    out, length, missed = normalize_sequence(seq, steps, *valid_range(seq), out_frames=3)
    assert length == 2 and missed == [] and out.shape == (3, 1, 5, 3)
    np.testing.assert_allclose(out[0, 0], upright_body(), atol=1e-6)
    # The camera's +x move is the body's -z after the turn is undone (x -> -z was applied, so x <- -z).
    np.testing.assert_allclose(out[1, 0], upright_body() + [0, 0, 1.0], atol=1e-6)
    assert (out[2] == 0).all()


def test_normalize_sequence_2d_with_score_by_hand():
    # (x, y, score) in pixels; the torso is 40 px long; centre joint 0 at (100, 200) in the first frame.
    body = upright_body()[:, :2] * 100 + [100, 200]
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    seq = np.zeros((2, 1, 5, 3))
    seq[0, 0] = np.column_stack([body, score])
    seq[1, 0] = np.column_stack([body + [20, 0], score / 2])
    seq[1, 0, 4] = 0  # right shoulder missed in frame 1: stays zero
    steps = resolve(NormalizeOptions(temporal="resample", frames=2), BODY, 2)
    assert steps.align == "none" and steps.scale == "body"
    out, length, _ = normalize_sequence(seq, steps, 0, 2, out_frames=2)
    np.testing.assert_allclose(out[0, 0, :, :2], upright_body()[:, :2] * 100 / 40, atol=1e-5)
    np.testing.assert_allclose(out[1, 0, :4, :2], (upright_body()[:4, :2] * 100 + [20, 0]) / 40, atol=1e-5)
    np.testing.assert_allclose(out[..., 2], np.stack([score, np.r_[score[:4] / 2, 0]])[:, None], atol=1e-6)
    assert (out[1, 0, 4] == 0).all() and length == 2


def test_off_keeps_the_coordinates():
    seq = np.random.default_rng(0).normal(size=(6, 2, 5, 3))
    seq[4:] = 0
    steps = resolve(OFF, BODY, 3)
    out, length, _ = normalize_sequence(seq, steps, *valid_range(seq), out_frames=6)
    np.testing.assert_allclose(out, seq.astype(np.float32))
    assert length == 4


def test_auto_steps_resolve_per_data_and_layout():
    stick = Layout(name="stick", joint_names=("a", "b"), edges=((1, 0),), center=0, parts={"x": (0, 1)},
                   hands={}, left_right=())
    steps = resolve(NormalizeOptions(), stick, 3)
    assert steps.align == "none" and "does not name" in steps.notes[0]
    with pytest.raises(UserError, match="needs the hips and shoulders"):
        resolve(NormalizeOptions(align="first_frame"), stick, 3)
    with pytest.raises(UserError, match="needs 3D"):
        resolve(NormalizeOptions(align="first_frame"), BODY, 2)
    with pytest.raises(UserError, match="distinct"):
        resolve(NormalizeOptions(body_joints=("b", 0, "a", 1)), stick, 3)


def test_decide_alignment_from_the_facing_directions():
    steps = resolve(NormalizeOptions(), BODY, 3)
    same = decide_alignment(steps, list(np.radians([-10, 0, 5, 12, -4])))
    assert same.align == "none" and "face the sensor alike" in same.notes[-1]
    views = decide_alignment(steps, list(np.radians([-60, 0, 60, -55, 58])))
    assert views.align == "first_frame"
    forced = resolve(NormalizeOptions(align="first_frame"), BODY, 3)
    assert decide_alignment(forced, [0.0, 0.0]).align == "first_frame"


def test_channel_names_and_bad_options():
    assert channel_names_for(None, 2, "f") == ("x", "y")
    assert channel_names_for("xy-score", 3, "f") == ("x", "y", "score")
    with pytest.raises(UserError, match="means 3 channels"):
        channel_names_for("xy-score", 2, "f.npy")
    with pytest.raises(UserError, match="4 channels"):
        channel_names_for(None, 4, "f.npy")
    with pytest.raises(UserError, match="frames >= 1"):
        NormalizeOptions(frames=0)
    with pytest.raises(UserError, match="center"):
        NormalizeOptions(center="middle")
    assert "resampled to 50" in describe_steps(resolve(NormalizeOptions(), BODY, 3).to_dict(BODY))


def _dataset(bodies: np.ndarray) -> np.ndarray:
    """(N, T, V, C) -> (N, C, T, V, 1)."""
    return np.ascontiguousarray(bodies.transpose(0, 3, 1, 2)[..., None])


def test_dataset_warnings_name_the_fix():
    rng = np.random.default_rng(0)
    moving = np.stack([np.stack([upright_body() + rng.normal(0, 0.02, (5, 3)) for _ in range(8)])
                       for _ in range(6)])  # (6, 8, 5, 3) centred near the origin
    assert dataset_warnings(_dataset(moving)) == []
    far = dataset_warnings(_dataset(moving + [0.3, 0.5, 3.0]))
    assert len(far) == 1 and "--center first_frame" in far[0]
    flat = moving.copy()
    flat[..., 2] = 0  # 2D keypoints stored as 3D
    out = dataset_warnings(_dataset(flat))
    assert len(out) == 1 and "--channels xy" in out[0]
    pixels = dataset_warnings(_dataset(moving * 500))
    assert len(pixels) == 1 and "--scale body" in pixels[0]
    padded = np.concatenate([moving, np.zeros_like(moving), np.zeros_like(moving)], axis=1)
    out = dataset_warnings(_dataset(padded))
    assert len(out) == 1 and "67% of the frames" in out[0] and "--temporal resample" in out[0]
    score = np.concatenate([moving[..., :2], np.full(moving.shape[:-1] + (1,), 0.9)], axis=-1)
    assert dataset_warnings(_dataset(score), ["x", "y", "score"]) == []  # a constant score is not a coordinate
