"""Joint maps NTU-25 <-> Kinect-20: expected joints and bones written out by hand from the two layouts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from skelssl.errors import UserError
from skelssl.skeleton.joint_maps import get_joint_map
from skelssl.skeleton.layouts import KINECT20, NTU25
from skelssl.transforms.streams import bone_stream

# Kinect-20 joint k is NTU-25 joint NTU_OF_KINECT[k] (0-based; NTU numbering of its paper minus 1):
# hip_center=spine_base 0, spine=spine_mid 1, shoulder_center=spine_shoulder 20, head 3, left arm 4-7,
# right arm 8-11, left leg 12-15, right leg 16-19.
NTU_OF_KINECT = [0, 1, 20, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]


def joints(seed: int, v: int, n: int = 3, t: int = 5, m: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, t, v, m)).astype(np.float32)


def test_ntu_to_kinect_keeps_the_twenty_shared_joints():
    x = joints(0, 25)
    np.testing.assert_array_equal(get_joint_map(NTU25, KINECT20).apply(x), x[:, :, :, NTU_OF_KINECT])


def test_kinect_to_ntu_fills_neck_hand_tips_and_thumbs():
    x = joints(1, 20)
    mapped = get_joint_map(KINECT20, NTU25).apply(x)
    np.testing.assert_allclose(mapped[:, :, :, NTU_OF_KINECT], x, atol=1e-7)
    np.testing.assert_allclose(mapped[:, :, :, 2], 0.5 * (x[:, :, :, 2] + x[:, :, :, 3]), atol=1e-6)  # neck
    for tip, thumb, hand in ((21, 22, 7), (23, 24, 11)):  # left, right
        np.testing.assert_allclose(mapped[:, :, :, tip], x[:, :, :, hand], atol=1e-7)
        np.testing.assert_allclose(mapped[:, :, :, thumb], x[:, :, :, hand], atol=1e-7)


def test_round_trip_kinect_ntu_kinect_is_identity():
    x = joints(2, 20)
    back = get_joint_map(NTU25, KINECT20).apply(get_joint_map(KINECT20, NTU25).apply(x))
    np.testing.assert_allclose(back, x, atol=1e-6)


# Each NTU-25 bone (joint - parent, NTU25.edges) as a multiple of one Kinect-20 bone (KINECT20.edges), by name.
NTU_BONE_FROM_KINECT = {
    "spine_base": ("hip_center", 1.0), "spine_mid": ("spine", 1.0), "spine_shoulder": ("shoulder_center", 1.0),
    "neck": ("head", 0.5), "head": ("head", 0.5),
    "left_hand_tip": (None, 0.0), "left_thumb": (None, 0.0), "right_hand_tip": (None, 0.0),
    "right_thumb": (None, 0.0),
}


def test_kinect_to_ntu_keeps_bone_structure():
    x = joints(3, 20)
    kinect_bones = bone_stream(torch.from_numpy(x), KINECT20).numpy()
    ntu_bones = bone_stream(torch.from_numpy(get_joint_map(KINECT20, NTU25).apply(x)), NTU25).numpy()
    for j, name in enumerate(NTU25.joint_names):
        source, factor = NTU_BONE_FROM_KINECT.get(name, (name, 1.0))  # limbs: the bone of the same name
        expected = 0.0 if source is None else factor * kinect_bones[:, :, :, KINECT20.joint_names.index(source)]
        np.testing.assert_allclose(ntu_bones[:, :, :, j], expected, atol=1e-5, err_msg=name)


def test_ntu_to_kinect_bones_are_ntu_bones_or_their_sum():
    x = joints(4, 25)
    ntu_bones = bone_stream(torch.from_numpy(x), NTU25).numpy()
    kinect_bones = bone_stream(torch.from_numpy(get_joint_map(NTU25, KINECT20).apply(x)), KINECT20).numpy()
    ntu = NTU25.joint_names.index
    for k, name in enumerate(KINECT20.joint_names):
        if name == "head":  # Kinect head -> shoulder centre spans NTU head -> neck -> spine_shoulder
            expected = ntu_bones[:, :, :, ntu("head")] + ntu_bones[:, :, :, ntu("neck")]
        else:
            expected = ntu_bones[:, :, :, NTU_OF_KINECT[k]]
        np.testing.assert_allclose(kinect_bones[:, :, :, k], expected, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("source, target", [(NTU25, KINECT20), (KINECT20, NTU25)], ids=["ntu-kinect", "kinect-ntu"])
def test_left_stays_left(source, target):
    joint_map = get_joint_map(source, target)
    x = joints(5, source.num_joints)
    flipped_then_mapped = joint_map.apply(x[:, :, :, source.flip_permutation])
    np.testing.assert_allclose(flipped_then_mapped, joint_map.apply(x)[:, :, :, target.flip_permutation], atol=1e-6)


def test_torch_and_numpy_agree_and_device_kept():
    x = joints(6, 20)
    joint_map = get_joint_map(KINECT20, NTU25)
    np.testing.assert_allclose(joint_map.apply(torch.from_numpy(x)).numpy(), joint_map.apply(x), atol=1e-6)


def test_same_layout_needs_no_map_and_unknown_pairs_are_a_clear_error():
    assert get_joint_map(NTU25, NTU25) is None
    stick = dataclasses.replace(KINECT20, name="stick20")  # same joints, another name: no map is registered
    with pytest.raises(UserError, match=r"no joint map from layout 'stick20'.*'ntu25'.*kinect20 -> ntu25"):
        get_joint_map(stick, NTU25)
    with pytest.raises(UserError, match="expected"):
        get_joint_map(KINECT20, NTU25).apply(joints(7, 25))
