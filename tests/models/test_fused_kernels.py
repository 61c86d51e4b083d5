"""The fused CPU kernels (skelssl.models.fused) against PyTorch's separate kernels: values, gradients,
running statistics, dropout masks, and when the blocks use them."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import skelssl.models.fused as fused
import skelssl.models.stgcn as stgcn
from skelssl.models.stgcn import STGCN
from skelssl.skeleton.layouts import KINECT20, NTU25

pytestmark = pytest.mark.skipif(
    fused.fused_kernels() is None,
    reason="the fused CPU kernels could not be built here (no C++ compiler or ninja, or "
           "SKELSSL_FUSED_KERNELS=0); the module path they replace is tested in test_stgcn.py")


def _bn(channels: int, seed: int) -> nn.BatchNorm2d:
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn.train()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("use_offset,use_residual,relu", [(False, False, True), (True, False, True),
                                                          (False, True, True), (True, True, False),
                                                          (False, False, False)])
def test_batch_norm_act_matches_separate_kernels(threads, use_offset, use_residual, relu):
    torch.set_num_threads(threads)
    n, c, t, v = 5, 6, 7, 4
    torch.manual_seed(0)
    x = torch.randn(n, c, t, v) * 3 + 2  # a large mean: the statistics must not cancel
    offset = torch.randn(c, t * v) if use_offset else None
    residual = torch.randn(n, c, t, v) if use_residual else None
    upstream = torch.randn(n, c, t, v)
    bn_fused, bn_ref = _bn(c, 1), _bn(c, 1)

    leaves = {"x": x, "offset": offset, "residual": residual}
    grads = []
    for path in ("fused", "reference"):
        inputs = {k: (val.clone().requires_grad_(True) if val is not None else None) for k, val in leaves.items()}
        bn = bn_fused if path == "fused" else bn_ref
        if path == "fused":
            assert fused.can_fuse(inputs["x"], bn)
            out = fused.batch_norm_act(inputs["x"], bn, offset=inputs["offset"], residual=inputs["residual"],
                                       relu=relu)
        else:
            u = inputs["x"] if offset is None else inputs["x"] + inputs["offset"].view(1, c, t, v)
            out = bn(u)
            if residual is not None:
                out = out + inputs["residual"]
            if relu:
                out = F.relu(out)
        (out * upstream).sum().backward()
        grads.append((out.detach(), {k: val.grad for k, val in inputs.items() if val is not None},
                      bn.weight.grad, bn.bias.grad))
    (out_f, g_f, gw_f, gb_f), (out_r, g_r, gw_r, gb_r) = grads
    torch.testing.assert_close(out_f, out_r, rtol=1e-5, atol=1e-5)
    for name in g_r:
        torch.testing.assert_close(g_f[name], g_r[name], rtol=1e-4, atol=1e-4, msg=name)
    torch.testing.assert_close(gw_f, gw_r, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gb_f, gb_r, rtol=1e-4, atol=1e-4)
    # running statistics as nn.BatchNorm2d keeps them (unbiased running variance)
    torch.testing.assert_close(bn_fused.running_mean, bn_ref.running_mean)
    torch.testing.assert_close(bn_fused.running_var, bn_ref.running_var)
    assert int(bn_fused.num_batches_tracked) == int(bn_ref.num_batches_tracked) == 1


def test_running_statistics_with_cumulative_average():
    bn_fused, bn_ref = _bn(3, 0), _bn(3, 0)
    bn_fused.momentum = bn_ref.momentum = None
    for step in range(3):
        x = torch.randn(4, 3, 5, 2) + step
        fused.batch_norm_act(x, bn_fused)
        bn_ref(x)
    torch.testing.assert_close(bn_fused.running_mean, bn_ref.running_mean)
    torch.testing.assert_close(bn_fused.running_var, bn_ref.running_var)
    assert int(bn_fused.num_batches_tracked) == 3


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_dropout_mask_distribution_and_gradient(p):
    """Kept with probability 1 - p, scaled by 1 / (1 - p), and the backward uses the forward's mask."""
    torch.manual_seed(0)
    n, c, t, v = 64, 4, 25, 25
    x = torch.randn(n, c, t, v)
    bn = _bn(c, 2)
    xf = x.clone().requires_grad_(True)
    out = fused.batch_norm_act(xf, bn, dropout_p=p)
    kept = out != 0  # BN outputs are non-zero almost surely
    assert kept.float().mean().item() == pytest.approx(1 - p, abs=0.01)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()

    bn_ref = _bn(c, 2)
    xr = x.clone().requires_grad_(True)
    ref = bn_ref(xr) * kept / (1 - p)
    torch.testing.assert_close(out, ref.detach(), rtol=1e-5, atol=1e-5)
    (ref * upstream).sum().backward()
    torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bn.weight.grad, bn_ref.weight.grad, rtol=1e-4, atol=1e-4)


def test_dropout_masks_follow_the_global_seed():
    x = torch.randn(8, 4, 10, 5)
    bn = _bn(4, 0)
    torch.manual_seed(3)
    first = fused.batch_norm_act(x, bn, dropout_p=0.5) != 0
    second = fused.batch_norm_act(x, bn, dropout_p=0.5) != 0
    torch.manual_seed(3)
    again = fused.batch_norm_act(x, bn, dropout_p=0.5) != 0
    assert torch.equal(first, again)
    assert not torch.equal(first, second)
    # masks of different positions are not correlated (as independent draws: agreement about 1/2)
    assert (first == second).float().mean().item() == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n,c,o,t,v", [(3, 3, 4, 7, 25), (2, 5, 6, 4, 20), (4, 2, 8, 9, 25)])
def test_graph_conv_matches_einsum_and_convolution(threads, n, c, o, t, v):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(n, c, t, v, requires_grad=True)
    adjacency = torch.rand(3, v, v, requires_grad=True)
    weight = torch.randn(o, c * 3, requires_grad=True)
    upstream = torch.randn(n, o, t, v)
    out = fused.graph_conv(x, adjacency, weight)
    (out * upstream).sum().backward()
    leaves = [t_.detach().clone().requires_grad_(True) for t_ in (x, adjacency, weight)]
    z = torch.einsum("nctv,kvw->ncktw", leaves[0], leaves[1]).reshape(n, c * 3, t, v)
    ref = F.conv2d(z, leaves[2].view(o, c * 3, 1, 1))
    (ref * upstream).sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for got, leaf in zip((x, adjacency, weight), leaves):
        torch.testing.assert_close(got.grad, leaf.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", [NTU25, KINECT20])
def test_every_block_matches_the_module_path(layout, monkeypatch):
    """Each block of an encoder, fused vs module path (dropout off, which draws its masks differently):
    outputs, input gradients and every parameter's gradient. Compared block by block: in a deep float32
    network a pre-activation within rounding of 0 can flip one ReLU and move a gradient entry by O(1)."""
    torch.manual_seed(0)
    enc = STGCN(layout, hidden_channels=4, out_channels=8, dropout=0.0)
    with torch.no_grad():
        for p in enc.edge_importance:
            p.uniform_(0.5, 1.5)
        for block in enc.blocks:
            block.gcn.conv.bias.uniform_(-0.5, 0.5)
    frames = 12
    for i, block in enumerate(enc.blocks):
        channels = block.gcn.conv.weight.shape[1]
        adjacency = (enc.adjacency * enc.edge_importance[i]).detach().requires_grad_(True)
        x = torch.randn(4, channels, frames, layout.num_joints)
        results = []
        for use_fused in (True, False):
            monkeypatch.setattr(stgcn, "can_fuse", fused.can_fuse if use_fused else (lambda *a: False))
            monkeypatch.setattr(stgcn, "can_fuse_graph", fused.can_fuse_graph if use_fused else (lambda *a: False))
            b = copy.deepcopy(block)
            a = adjacency.detach().clone().requires_grad_(True)
            xi = x.clone().requires_grad_(True)
            out = b(xi, a)
            (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
            results.append((out.detach(), xi.grad, a.grad, {n: p.grad for n, p in b.named_parameters()}, b))
        (out_f, gx_f, ga_f, gp_f, b_f), (out_r, gx_r, ga_r, gp_r, b_r) = results
        torch.testing.assert_close(out_f, out_r, rtol=1e-5, atol=1e-5, msg=f"block {i}")
        torch.testing.assert_close(gx_f, gx_r, rtol=1e-4, atol=1e-4, msg=f"block {i}")
        torch.testing.assert_close(ga_f, ga_r, rtol=1e-4, atol=1e-3, msg=f"block {i}")
        scale = max(g.abs().max().item() for g in gp_r.values())
        for name in gp_r:  # conv biases right before a BN have zero gradient up to rounding
            torch.testing.assert_close(gp_f[name], gp_r[name], rtol=1e-4, atol=1e-5 * scale, msg=f"{i} {name}")
        for (name, buf_f), buf_r in zip(b_f.named_buffers(), b_r.buffers()):
            torch.testing.assert_close(buf_f, buf_r, msg=f"{i} {name}")
        x_next = out_r
        frames = x_next.shape[2]


def test_blocks_use_the_kernels_only_where_they_compute_the_same_thing():
    enc = STGCN(NTU25, hidden_channels=4, out_channels=8)
    bn = enc.blocks[1].tcn[0]
    x = torch.randn(2, 4, 6, 25)
    assert fused.can_fuse(x, bn) and fused.can_fuse_graph(x)
    assert not fused.can_fuse(x.double(), copy.deepcopy(bn).double()) and not fused.can_fuse_graph(x.double())
    assert not fused.can_fuse(x.transpose(2, 3).contiguous().transpose(2, 3), bn)  # not contiguous
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fused.can_fuse(x, bn) and not fused.can_fuse_graph(x)
    with fused.kernels_disabled():
        assert not fused.can_fuse(x, bn) and not fused.can_fuse_graph(x)
    assert fused.can_fuse(x, bn)
    bn.eval()
    assert not fused.can_fuse(x, bn)  # eval mode uses the running statistics: the module path
    assert not fused.can_fuse(x, nn.SyncBatchNorm(4).train())


def test_encoder_forward_agrees_and_eval_mode_is_unchanged(monkeypatch):
    torch.manual_seed(0)
    enc = STGCN(NTU25, hidden_channels=4, out_channels=8, dropout=0.0)
    ref = copy.deepcopy(enc)
    x = torch.randn(3, 3, 16, 25, 2)
    out = enc(x)
    monkeypatch.setattr(stgcn, "can_fuse", lambda *a: False)
    monkeypatch.setattr(stgcn, "can_fuse_graph", lambda *a: False)
    torch.testing.assert_close(out, ref(x), rtol=1e-4, atol=1e-5)
    for a, b in zip(enc.buffers(), ref.buffers()):  # running statistics updated alike
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    enc.eval(), ref.eval()
    torch.testing.assert_close(enc(x), ref(x), rtol=1e-5, atol=1e-6)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("SKELSSL_FUSED_KERNELS", "0")
    monkeypatch.setattr(fused, "_state", {"tried": False, "module": None})
    assert fused.fused_kernels() is None
    x = torch.randn(2, 4, 6, 25)
    assert not fused.can_fuse(x, nn.BatchNorm2d(4).train())
