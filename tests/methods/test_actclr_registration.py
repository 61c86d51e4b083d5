"""ActCLR's actionlet stays on the frames and joints it was found on: through the views' crops and flips
(MATS eq. 7, SAFP eq. 8), and from one actionlet pass to the next (dropout off, statistics untouched)."""

from __future__ import annotations

import torch

from skelssl.methods.actclr import ActCLR
from skelssl.methods.actclr.actionlet import upsample_to_frames
from skelssl.methods.actclr.mats import mats
from skelssl.skeleton.layouts import NTU25
from skelssl.transforms.pipelines import extreme_augment, normal_augment
from skelssl.transforms.spatial import spatial_flip
from skelssl.transforms.temporal import temporal_crop, temporal_flip
from skelssl.transforms.tracking import ViewTracker, downsample_frames
from tests.methods.test_aimclr import tiny_batch, tiny_config

LEFT_ARM = list(NTU25.parts["left_arm"])
RIGHT_ARM = list(NTU25.parts["right_arm"])  # the partners of LEFT_ARM, in the same order


def _position_coded(n: int, t: int, v: int = 25) -> torch.Tensor:
    """x[:, 0] = frame index, x[:, 1] = joint index, x[:, 2] = sample index: an output position tells
    where it came from, without asking the tracker."""
    x = torch.zeros(n, 3, t, v, 1)
    x[:, 0] = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1)
    x[:, 1] = torch.arange(v, dtype=torch.float32).view(1, 1, v, 1)
    x[:, 2] = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    return x


def _left_arm_mask(n: int, t: int, frames: slice = slice(None)) -> torch.Tensor:
    mask = torch.zeros(n, 1, t, 25)
    mask[:, :, frames, LEFT_ARM] = 1.0
    return mask


def test_flip_moves_the_mask_to_the_right_arm_slots():
    x = _position_coded(6, 10)
    tracker = ViewTracker.for_batch(x)
    view = spatial_flip(x, torch.Generator().manual_seed(0), NTU25, p=1.0, tracker=tracker)
    carried = tracker.carry(_left_arm_mask(6, 10))
    expected = torch.zeros(6, 1, 10, 25)
    expected[:, :, :, RIGHT_ARM] = 1.0
    assert torch.equal(carried, expected)
    assert torch.equal(view[:, 1, 0, RIGHT_ARM, 0], torch.tensor(LEFT_ARM, dtype=torch.float32).expand(6, -1))


def test_shift_and_time_reversal_move_the_frames():
    t = 24
    x = _position_coded(16, t)
    tracker = ViewTracker.for_batch(x)
    g = torch.Generator().manual_seed(3)
    view = temporal_flip(temporal_crop(x, g, tracker=tracker), g, p=0.5, tracker=tracker)
    carried = tracker.carry(_left_arm_mask(16, t, frames=slice(5, 9)))  # the arm moves in frames 5-8
    source_frame = view[:, 0, :, 0, 0]  # (N, T): read from the data itself
    expected_frames = ((source_frame >= 5) & (source_frame <= 8)).float()
    assert torch.equal(carried[:, 0, :, LEFT_ARM[0]], expected_frames)
    assert not torch.equal(expected_frames, _left_arm_mask(16, t, frames=slice(5, 9))[:, 0, :, LEFT_ARM[0]])
    assert (carried[:, 0][:, :, RIGHT_ARM] == 0).all()


def test_normal_then_extreme_views_carry_the_mask_with_the_data():
    """Through the query's normal crop and T_act's crop, spatial flip and temporal flip (the position-keeping
    augmentations off so that the coded positions survive), the carried mask lands where the data went."""
    n, t = 32, 20
    x = _position_coded(n, t)
    g = torch.Generator().manual_seed(5)
    tracker = ViewTracker.for_batch(x)
    view = normal_augment(x, g, shear_amplitude=0.0, tracker=tracker)
    view = extreme_augment(view, g, NTU25, shear_amplitude=0.0, max_angle=0.0, minor_angle=0.0, noise_p=0.0,
                           blur_p=0.0, axis_mask_p=0.0, tracker=tracker)
    source_mask = _left_arm_mask(n, t, frames=slice(6, 12))
    carried = tracker.carry(source_mask)
    frame, joint = view[:, 0, :, :, 0].long(), view[:, 1, :, :, 0].long()  # (N, T, V) sources, from the data
    expected = source_mask[torch.arange(n)[:, None, None], 0, frame, joint]
    assert torch.equal(carried[:, 0], expected)


def test_mats_applies_the_gentle_transformations_on_the_flipped_actionlet():
    """Only the left arm moves. T_act flips left and right (p = 1): X_trans must hold X_act (here the plain
    flipped sequence) exactly on the right-arm slots, and the noisier T_non everywhere else."""
    n, t = 4, 16
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 3, t, 25, 2)
    x[:, :, :, :, 0] = torch.randn(n, 3, 1, 25, generator=g)  # a static pose
    x[:, :, :, LEFT_ARM, 0] += torch.sin(torch.linspace(0, 6, t)).view(1, 1, t, 1)  # the left arm moves
    actionlet = torch.zeros(n, 2, t, 25)
    actionlet[:, :, :, LEFT_ARM] = 1.0

    def flip_only(v, tracker=None):
        return extreme_augment(v, g, NTU25, shear_amplitude=0.0, padding_ratio=10**6, max_angle=0.0,
                               minor_angle=0.0, spatial_flip_p=1.0, noise_p=0.0, blur_p=0.0, axis_mask_p=0.0,
                               temporal_flip_p=0.0, tracker=tracker)

    x_trans, registered = mats(x, actionlet, g, NTU25, extreme=flip_only, adain_p=0.0, noise_std=0.05)
    flipped = x.index_select(3, torch.tensor(NTU25.flip_permutation))
    assert torch.equal(registered[:, 0, 0], torch.isin(torch.arange(25), torch.tensor(RIGHT_ARM)).float()
                       .expand(n, -1))
    assert torch.equal(x_trans[..., RIGHT_ARM, :], flipped[..., RIGHT_ARM, :])  # T_act only, on the actionlet
    assert not torch.allclose(x_trans[..., LEFT_ARM, :], flipped[..., LEFT_ARM, :])  # T_non elsewhere


def test_downsampling_undoes_upsampling_and_averages_shifted_frames():
    a = torch.rand(2, 2, 13, 25)
    torch.testing.assert_close(downsample_frames(upsample_to_frames(a, 50), 13), a, rtol=1e-6, atol=0)
    binary = (a > 0.5).float()
    assert torch.equal(downsample_frames(upsample_to_frames(binary, 50), 13), binary)
    frames = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 0.0]]).view(1, 1, 6, 1)
    assert torch.equal(downsample_frames(frames, 3).flatten(), torch.tensor([1.0, 0.0, 0.5]))


def test_actionlet_pass_is_repeatable_and_moves_no_statistics():
    """With dropout 0.5 in the offline encoder, two actionlet passes over the same batch give the same mask,
    and the offline encoder's BatchNorm running statistics stay as they were."""
    torch.manual_seed(0)
    cfg = tiny_config(ActCLR, anchor="batch")
    cfg.model.stgcn.dropout = 0.5
    cfg.model.stgcn.hidden_channels = 8
    method = ActCLR(cfg, "ntu25").train()
    x = method.to_stream(tiny_batch(n=8)["x"])
    stats = {k: v.clone() for k, v in method.encoder_k.state_dict().items() if "running" in k}
    first, second = method.actionlet(x), method.actionlet(x)
    assert first.sum() > 0
    assert torch.equal(first, second)
    for key, value in method.encoder_k.state_dict().items():
        if "running" in key:
            assert torch.equal(value, stats[key]), key


def test_safp_pools_the_key_view_with_the_actionlet_on_its_own_frames(monkeypatch):
    """The key view is crop-shifted: SAFP (eq. 8) must weight the key's feature frames by the actionlet of
    the frames the key view actually shows, read here from position-coded data."""
    import skelssl.methods.actclr.actclr as actclr_module

    torch.manual_seed(0)
    cfg = tiny_config(ActCLR, anchor="batch")
    cfg.augment.shear_amplitude = 0.0  # the key view is then the crop alone: its values tell the source frame
    method = ActCLR(cfg, "ntu25").train()
    n, t = 8, 24
    x = _position_coded(n, t).expand(n, 3, t, 25, 2).clone()
    x = x + 0.01 * torch.randn(x.shape)  # distinct sequences, the coded positions still readable by rounding
    feature_inputs, pooled_with = [], []
    features = method.encoder_k.features
    monkeypatch.setattr(method.encoder_k, "features", lambda v: feature_inputs.append(v) or features(v))
    safp = actclr_module.safp_key
    monkeypatch.setattr(actclr_module, "safp_key",
                        lambda dense, a, *args: pooled_with.append(a) or safp(dense, a, *args))
    method.training_loss({"x": x})
    key_view = feature_inputs[-1]  # the actionlet pass comes first, the key view last
    source_frame = key_view[:, 0, :, 0, 0].round().long()  # (N, T)
    actionlet = upsample_to_frames(method.last_actionlet, t)  # (N, M, T, V) on the original frames
    on_key_frames = actionlet.gather(2, source_frame[:, None, :, None].expand_as(actionlet))
    expected = downsample_frames(on_key_frames, pooled_with[0].shape[2])
    assert torch.equal(pooled_with[0], expected)
    assert not torch.equal(expected, method.last_actionlet)  # the crop did move frames here


def test_anchor_batch_decides_which_batch_normalises_the_anchor(monkeypatch):
    """method.anchor_batch: `shared` encodes the average motion in one BatchNorm batch with the sequences,
    `own` (the authors' code) as a batch of its own; read from a copy of the offline encoder called directly
    in train mode on each batch."""
    import copy

    from skelssl.models.pooling import pool

    torch.manual_seed(0)
    x = tiny_batch(n=6)["x"]
    results = {}
    for option in ("shared", "own"):
        torch.manual_seed(1)
        method = ActCLR(tiny_config(ActCLR, anchor="batch", anchor_batch=option), "ntu25").train()
        stream = method.to_stream(x)
        anchor = stream.mean(dim=0, keepdim=True)  # the batch anchor, in the stream
        plain = copy.deepcopy(method.encoder_k).train()
        with torch.no_grad():
            alone = method.projector_k(pool(plain.features(anchor)))
            dense_alone = plain.features(stream)
            together = plain.features(torch.cat([stream, anchor]))
            shared = method.projector_k(pool(together[-1:]))
        seen = {}
        select = method.selector.select
        monkeypatch.setattr(method.selector, "select", lambda dense, objective: seen.update(dense=dense)
                            or select(dense, objective))
        method.actionlet_maps(stream)
        expected_anchor, expected_dense = (alone, dense_alone) if option == "own" else (shared, together[:-1])
        assert torch.allclose(method.anchor_embedding, expected_anchor, atol=1e-6), option
        assert torch.allclose(seen["dense"], expected_dense, atol=1e-6), option
        results[option] = method.anchor_embedding
    assert not torch.allclose(results["shared"], results["own"], atol=1e-3)  # the option matters here


def test_adain_max_ratio_reaches_skeleton_adain(monkeypatch):
    """method.adain_max_ratio bounds AdaIN's gain in the method's MATS (null = eq. 6 as printed)."""
    import skelssl.methods.actclr.mats as mats_module

    seen = []
    monkeypatch.setattr(mats_module, "skeleton_adain",
                        lambda x, generator, p, max_ratio: seen.append(max_ratio) or x)
    x = tiny_batch(n=4)["x"]
    for ratio in (None, 3.0):
        method = ActCLR(tiny_config(ActCLR, adain_max_ratio=ratio), "ntu25").train()
        stream = method.to_stream(x)
        actionlet = torch.ones(4, stream.shape[-1], stream.shape[2], 25)
        method.transform_query(stream, actionlet, ViewTracker.for_batch(stream))
    assert seen == [None, 3.0]
