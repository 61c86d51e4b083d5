"""ISC views (crop-resize, then joint corruption or pose augmentation): checked against what each augmentation
must do to a known input, recovered by hand (least squares for the random matrices)."""

from __future__ import annotations

import torch

from skelssl.transforms.isc import isc_augment, joint_corruption
from skelssl.transforms.temporal import crop_resize


def _batch(n=64, t=20, v=25, m=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, t, v, m, generator=g) + 0.1


def _changed_joints(x, y):
    return (x - y).abs().amax(dim=(1, 2, 4)) > 1e-6  # (N, V)


def test_joint_corruption_zeroes_or_mixes_fifteen_joints_the_same_in_every_frame_and_person():
    x = _batch()
    y = joint_corruption(x, torch.Generator().manual_seed(1))
    changed = _changed_joints(x, y)
    assert (changed.sum(dim=1) == 15).all()  # the other 10 joints untouched
    zeroed = (y.abs().amax(dim=(1, 2, 4)) == 0) & changed
    zero_samples = zeroed.sum(dim=1) == 15
    assert 0.25 < zero_samples.float().mean() < 0.75  # p 0.5
    for n in torch.nonzero(~zero_samples).flatten().tolist():
        joints = torch.nonzero(changed[n]).flatten()
        # all chosen joints of all frames and persons are mixed by ONE 3x3 matrix R: y_row = x_row @ R
        rows_x = x[n][:, :, joints].permute(1, 2, 3, 0).reshape(-1, 3)
        rows_y = y[n][:, :, joints].permute(1, 2, 3, 0).reshape(-1, 3)
        r = torch.linalg.lstsq(rows_x, rows_y).solution
        torch.testing.assert_close(rows_x @ r, rows_y, atol=1e-4, rtol=1e-4)
        assert r.abs().max() <= 1.0


def test_joint_corruption_keeps_zero_padding_zero():
    x = _batch(n=16)
    x[:, :, :, :, 1] = 0
    y = joint_corruption(x, torch.Generator().manual_seed(2))
    assert (y[:, :, :, :, 1] == 0).all()


def test_isc_view_is_a_crop_resize_then_shear_or_corruption():
    x = _batch(n=64, t=100)
    lengths = torch.full((64,), 80)
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    view = isc_augment(x, gen, lengths)
    assert view.shape == (64, 3, 64, 25, 2)
    gen.set_state(state)
    crop = crop_resize(x, gen, lengths)  # the same first draws
    corrupted = _changed_joints(crop, view).sum(dim=1) == 15
    assert 0.25 < corrupted.float().mean() < 0.75
    for n in torch.nonzero(~corrupted).flatten().tolist():
        # a shear: view = S @ crop with S's diagonal exactly 1 and off-diagonals in [-1, 1]
        s = torch.linalg.lstsq(crop[n].reshape(3, -1).t(), view[n].reshape(3, -1).t()).solution.t()
        torch.testing.assert_close(s.diagonal(), torch.ones(3), atol=1e-4, rtol=0)
        assert s.abs().max() <= 1.0 + 1e-4
        assert (s - torch.diag(s.diagonal())).abs().max() > 0.5 * 1e-2
