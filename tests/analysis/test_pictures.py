"""Actionlet heat maps counted by hand; the GIF has one frame per sequence frame."""

from __future__ import annotations

import numpy as np
from PIL import Image

import skelssl.analysis.pictures as pictures
from skelssl.analysis.pictures import actionlet_frequencies, animate_actionlet, plot_actionlet_heatmaps
from skelssl.skeleton.layouts import NTU25


def test_actionlet_frequencies_by_hand():
    masks = np.zeros((3, 8, 4))
    masks[0, :, 1] = 1  # class 0, sample 1: joint 1 in every frame
    masks[1, 4:, :] = 1  # class 0, sample 2: every joint in the second half
    masks[2, :2, 3] = 1  # class 2: joint 3 in the first two frames
    joints, frames = actionlet_frequencies(masks, np.array([0, 0, 2]), num_classes=3)
    # class 0 joints: joint 1 is lit in 8 + 4 of 16 frames, the others in 4 of 16
    np.testing.assert_allclose(joints[0], [4 / 16, 12 / 16, 4 / 16, 4 / 16])
    assert np.isnan(joints[1]).all() and np.isnan(frames[1]).all()  # no sample of class 1
    np.testing.assert_allclose(joints[2], [0, 0, 0, 2 / 8])
    # frame bins of 4 frames (8 frames -> 2 bins): class 0 lit share per bin (1 joint of 4, then 4 + 1 of 8)
    np.testing.assert_allclose(frames[0], [(1 / 4 + 0) / 2, (1 / 4 + 1) / 2])
    np.testing.assert_allclose(frames[2], [(2 / 4) / 4, 0])


def test_pictures_show_the_counted_actionlets(tmp_path, monkeypatch):
    """What the heat maps draw is read off the figure before it is saved: class 0's actionlet is joints 9-11 in
    every frame, class 1's joint 3 in the first two of 8 frames (one 4-frame bin)."""
    drawn = []
    real_save = pictures.save_png

    def capture(fig, path):
        drawn.extend(image.get_array().filled(np.nan) for ax in fig.axes for image in ax.images)
        return real_save(fig, path)

    monkeypatch.setattr(pictures, "save_png", capture)
    rng = np.random.default_rng(0)
    sequence = rng.normal(size=(3, 6, 25, 2)).astype(np.float32)
    mask = np.zeros((6, 25))
    mask[:, 9:12] = 1
    gif = animate_actionlet(sequence, mask, NTU25, tmp_path / "a.gif", title="wave")
    with Image.open(gif) as image:
        assert image.n_frames == 6
    other = np.zeros((8, 25))
    other[:2, 3] = 1
    first = np.zeros((8, 25))
    first[:, 9:12] = 1
    png = plot_actionlet_heatmaps(np.stack([first, other]), np.array([0, 1]), ["a", "b"], NTU25, tmp_path / "h.png")
    joints, frames = drawn
    expected_joints = np.zeros((2, 25))
    expected_joints[0, 9:12] = 1.0
    expected_joints[1, 3] = 2 / 8
    np.testing.assert_allclose(joints, expected_joints)
    np.testing.assert_allclose(frames, [[3 / 25, 3 / 25], [1 / 25 / 2, 0]])  # lit share of joint-frames per bin
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 1000  # 14 in at 110 dpi
