"""2D keypoints in the augmentations: shear, rotate and axis mask on (x, y) and (x, y, score) batches.

The 2D counterpart of a 3D transform is defined as that transform applied to the skeleton lying in the z = 0
plane, seen along z. The tests check it by that independent route: the 3D function on (x, y, 0) data with
the same generator seed, its x and y kept.
"""

from __future__ import annotations

import pytest
import torch

from skelssl.methods.core.base import MoCoMethod
from skelssl.skeleton.layouts import COCO17
from skelssl.transforms import AUGMENTATIONS, apply_named, axis_mask, extreme_augment, normal_augment, rotate, shear
from skelssl.transforms.pipelines import coordinate_channels
from skelssl.transforms.temporal import temporal_crop

N, T, V, M = 8, 12, 17, 2


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def keypoints(with_score: bool) -> torch.Tensor:
    xy = torch.randn(N, 2, T, V, M, generator=gen(7))
    if not with_score:
        return xy
    return torch.cat([xy, torch.rand(N, 1, T, V, M, generator=gen(8))], dim=1)


def lifted(x2: torch.Tensor) -> torch.Tensor:
    """(x, y) -> (x, y, 0)."""
    return torch.cat([x2[:, :2], torch.zeros_like(x2[:, :1])], dim=1)


@pytest.mark.parametrize("name, fn", [("shear", lambda x, g, k: shear(x, g, coords=k)),
                                      ("rotate", lambda x, g, k: rotate(x, g, coords=k, max_angle=60))])
@pytest.mark.parametrize("with_score", [False, True])
def test_2d_is_the_3d_transform_of_a_flat_skeleton_seen_along_z(name, fn, with_score):
    x = keypoints(with_score)
    out = fn(x, gen(3), 2 if with_score else None)
    expected = fn(lifted(x), gen(3), None)[:, :2]
    torch.testing.assert_close(out[:, :2], expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out[:, :2], x[:, :2])
    if with_score:
        assert torch.equal(out[:, 2], x[:, 2])  # the score is not a coordinate


def test_axis_mask_2d_zeroes_x_or_y_never_the_score():
    x = keypoints(True)
    out = axis_mask(x, gen(4), p=1.0, coords=2)
    zeroed = [(out[i, a] == 0).all().item() for i in range(N) for a in range(3)]
    per_sample = torch.tensor(zeroed).view(N, 3)
    assert per_sample[:, :2].sum(1).tolist() == [1] * N  # exactly one of x, y in every sample
    assert per_sample[:, 0].any() and per_sample[:, 1].any()  # both are chosen across the batch
    assert torch.equal(out[:, 2], x[:, 2])
    with pytest.raises(ValueError, match="needs 2 \\(x, y\\) or 3"):
        axis_mask(x[:, :1], gen(), coords=None)


def test_normal_augment_leaves_the_score_to_the_crop():
    x = keypoints(True)
    out = normal_augment(x, gen(5), coords=2)
    g = gen(5)
    torch.rand(N, 3, 3, generator=g)  # the draws of the shear
    torch.testing.assert_close(out[:, 2:], temporal_crop(x[:, 2:], g))


def test_pipelines_run_on_2d_batches():
    for with_score in (False, True):
        x = keypoints(with_score)
        k = 2 if with_score else None
        assert extreme_augment(x, gen(), COCO17, coords=k).shape == x.shape
        out = apply_named(x, gen(), list(AUGMENTATIONS), COCO17, lengths=torch.full((N,), T), coords=k)
        assert out.shape[:2] == x.shape[:2]


def test_method_takes_the_coordinates_from_the_data():
    assert coordinate_channels({"channel_names": ["x", "y", "score"]}) == 2
    assert coordinate_channels({"channels": 3}) is None
    from omegaconf import OmegaConf

    from skelssl.config import defaults_for

    cfg = defaults_for("skeletonclr")
    cfg.model.stgcn.hidden_channels, cfg.model.stgcn.out_channels = 4, 16
    cfg.method.queue_size, cfg.method.feature_dim = 16, 8
    method = MoCoMethod(OmegaConf.create(OmegaConf.to_container(cfg)), COCO17,
                        {"channels": 3, "channel_names": ["x", "y", "score"]})
    x = keypoints(True)
    out = method.augment_normal(x)
    assert method.coordinates == 2
    g = gen(0)
    torch.rand(N, 3, 3, generator=g)
    torch.testing.assert_close(out[:, 2:], temporal_crop(x[:, 2:], g))  # score only cropped, not sheared
    assert method.encoder_q(x).shape == (N, method.encoder_q.feature_dim)


@pytest.mark.parametrize("names", [["x", "y"], ["x", "y", "score"]])
def test_every_method_trains_a_step_on_2d_keypoints(names):
    """The encoders take C from the data and every method's views work on 2D (a loss, finite, with
    gradients reaching the first layer)."""
    from omegaconf import OmegaConf

    from skelssl.config import defaults_for
    from skelssl.methods import METHODS

    x = keypoints(len(names) == 3)
    for name in ("skeletonclr", "aimclr", "actclr"):
        cfg = defaults_for(name)
        cfg.model.stgcn.hidden_channels, cfg.model.stgcn.out_channels = 4, 16
        cfg.method.queue_size, cfg.method.feature_dim = 16, 8
        cfg.augment.crop_out_frames = cfg.augment.crop_min_frames = T
        method = METHODS[name](OmegaConf.create(OmegaConf.to_container(cfg)), COCO17,
                               {"channels": len(names), "channel_names": names})
        if name == "actclr":
            method.update_anchor(x.numpy())  # eq. 2: the dataset average, here the batch's
        loss, _ = method.training_loss({"x": x, "label": torch.zeros(N, dtype=torch.long),
                                        "index": torch.arange(N)})
        loss.backward()
        first = next(p for p in method.encoder_q.parameters() if p.grad is not None)
        assert torch.isfinite(loss) and first.grad.abs().sum() > 0, name
