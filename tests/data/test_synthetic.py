"""Tests of the built-in synthetic skeleton dataset."""

from __future__ import annotations

import numpy as np
import pytest

from skelssl.data.prepared import load_meta, open_data, summarize
from skelssl.data.synthetic import CLASS_NAMES, generate_synthetic, normalize_view, prepare_synthetic
from skelssl.skeleton.layouts import NTU25

SMALL = dict(num_samples_per_class_per_subject=2, num_subjects=3, num_train_subjects=2, frames=20)
PARTS = NTU25.parts


@pytest.fixture(scope="module")
def small():
    return generate_synthetic(**SMALL, seed=1)


@pytest.fixture(scope="module")
def clean():
    return generate_synthetic(**SMALL, seed=2, noise_std=0.0, second_person_prob=0.0)


def test_shapes_and_dtypes(small):
    n = len(CLASS_NAMES) * 2 * 3
    assert small.data.shape == (n, 3, 20, 25, 2) and small.data.dtype == np.float32
    assert small.labels.shape == (n,) and small.subjects.shape == (n,)
    assert small.actionlets.shape == (n, 20, 25) and small.actionlets.dtype == bool
    assert np.isfinite(small.data).all()
    assert np.bincount(small.labels).tolist() == [6] * len(CLASS_NAMES)
    assert 10 <= len(CLASS_NAMES) <= 12 and small.class_names == CLASS_NAMES


def test_deterministic_under_seed(small):
    again = generate_synthetic(**SMALL, seed=1)
    other = generate_synthetic(**SMALL, seed=7)
    np.testing.assert_array_equal(small.data, again.data)
    np.testing.assert_array_equal(small.actionlets, again.actionlets)
    assert not np.allclose(small.data, other.data)


def test_bone_lengths_constant_over_time(clean):
    joints = clean.data[..., 0].transpose(0, 2, 3, 1)  # (N, T, V, 3), person 0
    child, parent = np.array(NTU25.edges).T
    lengths = np.linalg.norm(joints[:, :, child] - joints[:, :, parent], axis=-1)  # (N, T, E)
    assert lengths.min() > 0.02  # no collapsed bone
    np.testing.assert_allclose(lengths, np.broadcast_to(lengths[:, :1], lengths.shape), atol=1e-5)
    # Body proportions differ between samples (the upper arm, joints 8 -> 9).
    upper_arm = np.linalg.norm(joints[:, 0, 8] - joints[:, 0, 9], axis=-1)
    assert 0.2 < upper_arm.min() and upper_arm.max() < 0.4 and upper_arm.std() > 0.005


def test_rest_height_and_up_axis(clean):
    joints = clean.data[..., 0].transpose(0, 2, 3, 1)
    head_above_ankles = joints[:, 0, 3, 1] - np.minimum(joints[:, 0, 14, 1], joints[:, 0, 18, 1])
    assert np.median(head_above_ankles) > 1.2  # standing adults, y up (tilt and squats lower it a little)
    assert (joints[..., 2].mean() > 2.0)  # in front of the camera, z depth


def test_second_person_zero_when_absent():
    alone = generate_synthetic(**SMALL, seed=3, second_person_prob=0.0)
    assert (alone.data[..., 1] == 0).all()
    together = generate_synthetic(**SMALL, seed=3, second_person_prob=1.0)
    assert (np.abs(together.data[..., 1]).sum(axis=(1, 2, 3)) > 0).all()
    mixed = generate_synthetic(num_samples_per_class_per_subject=4, num_subjects=4, num_train_subjects=2,
                               frames=10, seed=3)
    present = np.abs(mixed.data[..., 1]).sum(axis=(1, 2, 3)) > 0
    assert 0.1 < present.mean() < 0.45  # ~25 %
    absent = mixed.data[~present][..., 1]
    assert (absent == 0).all()


def test_actionlets_on_class_joints(clean):
    arms_legs = {name: set(PARTS[name]) for name in ("left_arm", "right_arm", "left_leg", "right_leg")}
    assert clean.actionlets.any(axis=(1, 2)).all()  # every sample has a non-empty actionlet
    cases = (("wave_right", "right_arm", ("left_arm", "left_leg", "right_leg")),
             ("wave_left", "left_arm", ("right_arm", "left_leg", "right_leg")),
             ("kick_right", "right_leg", ("left_arm", "right_arm", "left_leg")))
    for name, part, forbidden in cases:
        masks = clean.actionlets[clean.labels == CLASS_NAMES.index(name)]  # (n, T, V)
        joints_hit = set(np.flatnonzero(masks.any(axis=(0, 1))))
        assert joints_hit <= arms_legs[part] | set(PARTS["trunk"])
        assert not joints_hit & set().union(*(arms_legs[f] for f in forbidden))
        # The distal joints of the acting limb are in every sample's mask, and not in every frame.
        distal = {"right_arm": 11, "left_arm": 7, "right_leg": 18}[part]
        assert masks[:, :, distal].any(axis=1).all()
        assert masks[:, :, distal].mean() < 0.98
    # Where the mask is on, the joint is displaced from its frame-0 position (independent of the generator's
    # internal neutral pose): the wave-right hand is far above its rest place.
    wave = clean.labels == CLASS_NAMES.index("wave_right")
    hand_y = clean.data[wave, 1, :, 11, 0]
    mask = clean.actionlets[wave][:, :, 11]
    assert (hand_y[mask] - hand_y[:, :1].repeat(hand_y.shape[1], 1)[mask]).mean() > 0.3


def test_xsub_split_subjects_disjoint():
    synth = generate_synthetic(num_samples_per_class_per_subject=1, num_subjects=10, frames=8, seed=0)
    train, test = synth.train_indices, synth.test_indices
    assert set(synth.subjects[train]).isdisjoint(synth.subjects[test])
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(synth.labels)))
    assert len(set(synth.subjects[train])) == 7 and len(set(synth.subjects[test])) == 3


def test_prepare_round_trip(tmp_path):
    root = prepare_synthetic(tmp_path / "synthetic", **SMALL, seed=5)
    meta = load_meta(root)
    info = summarize(root)
    n = len(CLASS_NAMES) * 2 * 3
    assert info["samples"] == n and info["frames"] == 20 and info["joints"] == 25 and info["persons"] == 2
    assert info["dataset"] == "synthetic" and info["layout"] == "ntu25" and info["classes"] == len(CLASS_NAMES)
    assert info["splits"]["xsub"]["train"]["samples"] == 2 * len(CLASS_NAMES) * 2
    assert info["splits"]["xsub"]["test"]["samples"] == 2 * len(CLASS_NAMES)
    assert info["length_min"] == info["length_max"] == 20
    assert meta.extra_arrays == ["actionlets"] and meta.provenance["seed"] == 5
    direct = generate_synthetic(**SMALL, seed=5)
    np.testing.assert_array_equal(open_data(root), normalize_view(direct.data))
    raw_root = prepare_synthetic(tmp_path / "raw", **SMALL, seed=5, recipe="raw")
    np.testing.assert_array_equal(open_data(raw_root), direct.data)
    actionlets = open_data(root, "actionlets")
    assert actionlets.dtype == np.uint8 and actionlets.shape == (n, 20, 25)
    np.testing.assert_array_equal(actionlets.astype(bool), direct.actionlets)
    np.testing.assert_array_equal(meta.labels, direct.labels)


def test_raw_one_nn_is_hard_but_above_chance():
    synth = generate_synthetic(num_samples_per_class_per_subject=4, num_subjects=6, num_train_subjects=4,
                               frames=30, seed=11)
    x = synth.data[..., 0]  # (N, 3, T, V), person 0
    x = x - x[:, :, :1, 20:21]  # centre on the first frame's spine-shoulder joint
    f = x.reshape(len(x), -1)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    tr, te = synth.train_indices, synth.test_indices
    pred = synth.labels[tr][np.argmax(f[te] @ f[tr].T, axis=1)]
    accuracy = float((pred == synth.labels[te]).mean())
    assert 2.0 / len(CLASS_NAMES) < accuracy < 0.9, accuracy


def test_normalize_view_centres_and_aligns_shoulders(small):
    out = normalize_view(small.data)
    person0 = out[:, :, :, :, 0]
    assert np.abs(person0[:, :, :, 20]).max() < 1e-6  # spine-shoulder at the origin in every frame
    shoulders = person0[:, :, :, 8] - person0[:, :, :, 4]  # right - left shoulder
    assert np.abs(shoulders[:, 2]).max() < 1e-4  # no depth component: the shoulders lie in the x-y plane
    bones = lambda x: np.linalg.norm(x[:, :, :, 3] - x[:, :, :, 2], axis=1)  # head-neck, a rigid bone
    np.testing.assert_allclose(bones(person0), bones(small.data[..., 0]), atol=1e-5)  # rotation keeps lengths
    absent = np.abs(small.data[..., 1]).sum(axis=(1, 2, 3)) == 0
    assert (out[absent][..., 1] == 0).all()
