"""Tests for the ST-GCN encoder, its graph partition, the encoder registry and the FLOP counter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from skelssl.models import ENCODERS, build_encoder, init_official_, pool
from skelssl.models.flops import count_flops
from skelssl.models.graph import normalized_adjacency, spatial_partition
from skelssl.models.stgcn import STGCN, GraphConv
from skelssl.skeleton.layouts import KINECT20, NTU25


def _hand_normalized_adjacency(layout) -> np.ndarray:
    """Independent A Λ^-1: 0/1 adjacency from the edge list plus self loops, columns divided by degree."""
    v = layout.num_joints
    adj = np.eye(v)
    for a, b in layout.edges:
        adj[a, b] = adj[b, a] = 1
    return adj / adj.sum(axis=0, keepdims=True)


# ---------------------------------------------------------------- graph

@pytest.mark.parametrize("layout", [NTU25, KINECT20])
@pytest.mark.parametrize("official", [False, True])
def test_partition_shapes_and_sum(layout, official):
    parts = spatial_partition(layout, official_code=official)
    v = layout.num_joints
    assert parts.shape == (3, v, v) and parts.dtype == np.float32
    expected = _hand_normalized_adjacency(layout)
    np.testing.assert_allclose(parts.sum(axis=0), expected, atol=1e-6)
    np.testing.assert_allclose(normalized_adjacency(layout), expected, atol=1e-6)
    # each (v, w) entry lives in exactly one subset
    assert ((parts > 0).sum(axis=0) == (expected > 0)).all()
    # each root's neighbour weights (a column) sum to 1 across subsets
    np.testing.assert_allclose(parts.sum(axis=(0, 1)), np.ones(v), atol=1e-6)


def test_partition_ntu_hand_checked_entries():
    root, centripetal, centrifugal = spatial_partition(NTU25)
    # spine_mid (1) has neighbours spine_base (0), spine_shoulder (20, the centre) and itself: degree 3.
    assert root[1, 1] == pytest.approx(1 / 3)
    assert centripetal[20, 1] == pytest.approx(1 / 3)  # the centre is closer to the centre than joint 1
    assert centrifugal[0, 1] == pytest.approx(1 / 3)
    # the centre (20) has neighbours 1, 2, 4, 8 and itself: degree 5; all its neighbours are farther
    assert root[20, 20] == pytest.approx(1 / 5)
    assert centrifugal[[1, 2, 4, 8], 20] == pytest.approx([0.2] * 4)
    assert centripetal[:, 20].sum() == 0
    # paper definition on a tree: root subset is the diagonal only, 24 edges each way
    assert (root > 0).sum() == 25 and (np.diag(root) > 0).all()
    assert (centripetal > 0).sum() == 24 and (centrifugal > 0).sum() == 24


def test_partition_official_quirk():
    # The official code's hop matrix stops at max_hop=1: far joints are "inf" from the centre.
    self_loops, same_or_farther, closer = spatial_partition(NTU25, official_code=True)
    np.testing.assert_allclose(self_loops, np.diag(np.diag(_hand_normalized_adjacency(NTU25))), atol=1e-7)
    assert same_or_farther[0, 1] == pytest.approx(1 / 3)  # joint 0 is "inf" away, joint 1 is 1 hop
    assert closer[20, 1] == pytest.approx(1 / 3)
    assert same_or_farther[12, 0] > 0  # hips to spine base: inf == inf lands here
    assert (closer > 0).sum() == 8  # only the edges touching the centre's neighbourhood


# ---------------------------------------------------------------- encoder

def _small(**kwargs) -> STGCN:
    torch.manual_seed(0)
    return STGCN(NTU25, hidden_channels=4, out_channels=16, **kwargs)


@pytest.mark.parametrize("layout,t,m", [(NTU25, 50, 2), (NTU25, 64, 1), (KINECT20, 50, 1), (KINECT20, 64, 2)])
def test_output_shapes(layout, t, m):
    torch.manual_seed(0)
    enc = STGCN(layout)
    x = torch.randn(2, 3, t, layout.num_joints, m)
    dense = enc.features(x)
    t_out = (t + 3) // 4
    assert enc.feature_frames(t) == t_out
    assert dense.shape == (2, m, 256, t_out, layout.num_joints)
    assert enc(x).shape == (2, 256) and enc.out_channels == 256


def test_dense_shape_default():
    enc = STGCN("ntu25")
    assert enc.features(torch.randn(3, 3, 50, 25, 2)).shape == (3, 2, 256, 13, 25)
    assert [enc.feature_frames(t) for t in (1, 2, 3, 4, 5, 50, 64, 300)] == [1, 1, 1, 1, 2, 13, 16, 75]


def test_parameter_counts():
    from skelssl.config import load_config

    enc = build_encoder(load_config(None, method="skeletonclr", encoder="stgcn").model, NTU25)  # shipped config
    n_enc = sum(p.numel() for p in enc.parameters())
    projector = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 128))
    assert n_enc == 821_380
    assert n_enc + sum(p.numel() for p in projector.parameters()) == 920_068


def test_width_and_channels_configurable():
    enc = STGCN(NTU25, in_channels=6, hidden_channels=8)
    x = torch.randn(2, 6, 20, 25, 2)
    assert enc(x).shape == (2, 256)
    assert enc.features(x).shape == (2, 2, 256, 5, 25)
    widths = [b.gcn.out_channels for b in enc.blocks]
    assert widths == [8, 8, 8, 8, 16, 16, 16, 32, 32, 256]
    assert sum(p.numel() for p in enc.parameters()) < 821_380


def test_pool_uniform_and_weighted():
    torch.manual_seed(0)
    dense = torch.randn(2, 2, 5, 3, 4)
    plain = pool(dense)
    torch.testing.assert_close(plain, dense.mean(dim=(1, 3, 4)))
    torch.testing.assert_close(pool(dense, torch.full((2, 3, 4), 7.0)), plain)
    torch.testing.assert_close(pool(dense, torch.ones(2, 2, 3, 4)), plain)
    # one-hot weights pick a single position; per-person weights pick per person
    w = torch.zeros(2, 2, 3, 4)
    w[:, 0, 1, 2] = 1
    w[:, 1, 0, 3] = 5
    expected = (dense[:, 0, :, 1, 2] + dense[:, 1, :, 0, 3]) / 2
    torch.testing.assert_close(pool(dense, w), expected)


def test_forward_pools_over_persons():
    """In eval mode (fixed BN stats) a 2-person output is the mean of the two 1-person outputs."""
    enc = _small().eval()
    x = torch.randn(3, 3, 16, 25, 2)
    both = enc(x)
    single = (enc(x[..., :1]) + enc(x[..., 1:])) / 2
    torch.testing.assert_close(both, single, rtol=1e-4, atol=1e-5)


def test_graph_conv_matches_loop_reference():
    torch.manual_seed(0)
    gcn = GraphConv(3, 5, 3)
    x = torch.randn(2, 3, 4, 25)
    a = torch.rand(3, 25, 25)
    out = gcn(x, a)
    w = gcn.conv.weight.view(3, 5, 3)  # (K, C_out, C_in)
    b = gcn.conv.bias.view(3, 5)
    ref = torch.zeros(2, 5, 4, 25)
    for k in range(3):
        yk = torch.einsum("oc,nctv->notv", w[k], x) + b[k][None, :, None, None]  # W_k x (Eq. 10)
        for wj in range(25):
            ref[..., wj] += (yk * a[k, :, wj]).sum(-1)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_edge_importance_is_used_and_optional():
    enc = _small().eval()
    x = torch.randn(2, 3, 8, 25, 1)
    before = enc(x)
    with torch.no_grad():
        enc.edge_importance[3].mul_(0.5)
    assert not torch.allclose(before, enc(x))
    assert len(enc.edge_importance) == 10 and enc.edge_importance[0].shape == (3, 25, 25)
    plain = STGCN(NTU25, edge_importance=False)
    assert sum(p.numel() for p in plain.parameters()) == 821_380 - 10 * 3 * 25 * 25


def test_official_init_statistics():
    enc = STGCN(NTU25, init="official", generator=torch.Generator().manual_seed(0))
    w = enc.blocks[9].tcn[2].weight
    assert w.std().item() == pytest.approx(0.02, rel=0.05)
    assert w.mean().abs().item() < 1e-3
    assert (enc.blocks[9].tcn[2].bias == 0).all()
    bn = enc.blocks[9].tcn[0].weight
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01) and 0.01 < bn.std().item() < 0.03
    assert (enc.edge_importance[0] == 1).all()
    default = STGCN(NTU25)
    # PyTorch's default: U(±1/sqrt(fan_in)), std 1/sqrt(3·fan_in), fan_in = 256·9
    assert default.blocks[9].tcn[2].weight.std().item() == pytest.approx((3 * 256 * 9) ** -0.5, rel=0.05)
    assert default.blocks[0].gcn.conv.weight.std().item() > 0.1  # fan_in 3: far from the official 0.02
    lin = init_official_(nn.Linear(256, 512), torch.Generator().manual_seed(1))
    assert lin.weight.std().item() == pytest.approx(0.02, rel=0.05) and (lin.bias == 0).all()
    with pytest.raises(ValueError, match="init"):
        STGCN(NTU25, init="xavier")


def test_official_init_is_seeded():
    a = STGCN(NTU25, init="official", generator=torch.Generator().manual_seed(3))
    b = STGCN(NTU25, init="official", generator=torch.Generator().manual_seed(3))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_gradients_reach_first_layer():
    enc = _small().train()
    x = torch.randn(4, 3, 16, 25, 2, requires_grad=True)
    enc(x).pow(2).sum().backward()
    assert enc.data_bn.weight.grad.abs().sum() > 0
    assert enc.blocks[0].gcn.conv.weight.grad.abs().sum() > 0
    assert enc.edge_importance[0].grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0


def test_eval_deterministic_train_stochastic():
    enc = _small()
    x = torch.randn(2, 3, 16, 25, 2)
    enc.eval()
    torch.testing.assert_close(enc(x), enc(x), rtol=0, atol=0)
    enc.train()
    assert not torch.allclose(enc(x), enc(x))  # dropout in blocks 2-10


def test_bad_input_rank():
    with pytest.raises(ValueError, match="N, C, T, V, M"):
        _small()(torch.randn(2, 3, 16, 25))


def test_registry():
    from skelssl.errors import UserError

    assert ENCODERS["stgcn"] is STGCN
    enc = build_encoder({"encoder": "stgcn", "stgcn": {"hidden_channels": 8, "out_channels": 24}}, "kinect20")
    assert isinstance(enc, STGCN) and enc.feature_dim == 24 and enc.blocks[0].gcn.out_channels == 8
    assert enc.adjacency.shape[1] == 20  # the layout's joints
    with pytest.raises(UserError, match="stgcn"):
        build_encoder({"encoder": "ctrgcn"}, NTU25)


def test_flops_one_sample():
    enc = STGCN(NTU25).eval()
    flops = count_flops(enc, torch.randn(1, 3, 50, 25, 2))
    assert abs(flops - 1.23e9) / 1.23e9 < 0.10
    # a Linear(256, 128) on 4 rows: 2·4·256·128
    assert count_flops(nn.Linear(256, 128), torch.randn(4, 256)) == 2 * 4 * 256 * 128


def test_fast_dropout_distribution():
    from skelssl.models.stgcn import FastDropout

    drop = FastDropout(0.5)
    x = torch.ones(200_000)
    torch.manual_seed(0)
    y = drop(x)
    kept = y != 0
    assert set(torch.unique(y).tolist()) == {0.0, 2.0}  # inverted dropout: survivors scaled by 1/(1-p)
    assert kept.float().mean().item() == pytest.approx(0.5, abs=0.005)
    assert FastDropout(0.2)(x).ne(0).float().mean().item() == pytest.approx(0.8, abs=0.005)
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError):
        FastDropout(1.0)


# ---------------------------------------------------------------- optimised forms vs a straightforward reference

def _reference_features(enc: STGCN, x: torch.Tensor) -> torch.Tensor:
    """The ST-GCN forward written plainly with the encoder's own parameters: 1x1 conv to K·C_out channels,
    einsum with the K (importance-weighted) matrices, BN, ReLU, (9,1) conv, BN, residual, ReLU; dropout off."""
    import torch.nn.functional as F

    n, c, t, v, m = x.shape
    h = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
    h = enc.data_bn(h).view(n * m, v, c, t).permute(0, 2, 3, 1)
    for i, block in enumerate(enc.blocks):
        a = enc.adjacency * enc.edge_importance[i] if enc.edge_importance is not None else enc.adjacency
        k = a.shape[0]
        y = F.conv2d(h, block.gcn.conv.weight, block.gcn.conv.bias)
        y = y.view(y.shape[0], k, -1, y.shape[2], y.shape[3])
        y = torch.einsum("nkctv,kvw->nctw", y, a)
        y = F.relu(block.tcn[0](y))
        y = block.tcn[3](block.tcn[2](y))
        if block.residual is not None:
            y = y + block.residual(h)
        h = F.relu(y)
    return h.reshape(n, m, *h.shape[1:])


@pytest.mark.parametrize("dtype,rtol,atol", [(torch.float64, 1e-9, 1e-11), (torch.float32, 1e-4, 1e-5)])
@pytest.mark.parametrize("layout,t,m,importance", [(NTU25, 20, 2, True), (KINECT20, 17, 1, True),
                                                    (NTU25, 9, 1, False)])
def test_optimised_forward_backward_match_reference(dtype, rtol, atol, layout, t, m, importance, monkeypatch):
    """Same outputs and gradients (input, every parameter) as the plain formulation, in train mode (batch
    statistics), with random edge importance so the graph-first bias term sees non-trivial column sums.
    The fused BatchNorm kernels are compared block by block in test_fused_kernels.py (a whole float32
    network can flip a ReLU whose input is within rounding of 0); the fused graph convolution stays on here."""
    import skelssl.models.stgcn as stgcn_module

    monkeypatch.setattr(stgcn_module, "can_fuse", lambda *a: False)
    torch.manual_seed(0)
    enc = STGCN(layout, hidden_channels=4, out_channels=16, dropout=0.0, edge_importance=importance)
    enc = enc.to(dtype).train()
    if importance:
        with torch.no_grad():
            for p in enc.edge_importance:
                p.uniform_(0.5, 1.5)
    with torch.no_grad():  # non-zero biases everywhere (the default init already has them; make sure)
        for block in enc.blocks:
            block.gcn.conv.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 3, t, layout.num_joints, m, dtype=dtype)
    upstream = torch.randn(3, m, 16, enc.feature_frames(t), layout.num_joints, dtype=dtype)
    results = []
    for forward in (enc.features, lambda inp: _reference_features(enc, inp)):
        enc.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_(True)
        out = forward(xi)
        (out * upstream).sum().backward()
        results.append((out.detach(), xi.grad, {n: p.grad.clone() for n, p in enc.named_parameters()}))
    (out_fast, gx_fast, g_fast), (out_ref, gx_ref, g_ref) = results
    torch.testing.assert_close(out_fast, out_ref, rtol=rtol, atol=atol)
    if dtype == torch.float32:
        # In float32 a ReLU whose input lies within rounding of 0 can fall on either side in the two
        # formulations, and which way depends on the CPU's GEMM kernels: on one 2-core machine the outputs
        # agreed to 1e-5 while one flipped unit moved the input gradient by 0.92 (of 76) through the batch
        # statistics. The gradients' equality is the float64 case's claim, where no unit sits that close.
        return
    torch.testing.assert_close(gx_fast, gx_ref, rtol=rtol, atol=atol * gx_ref.abs().max().item())
    assert g_fast.keys() == g_ref.keys() and len(g_ref) > 0
    # conv biases right before a train-mode BN get an exactly-zero gradient (pure rounding noise), so the
    # absolute tolerance is relative to the largest gradient of the network
    scale = max(g.abs().max().item() for g in g_ref.values())
    for name in g_ref:
        torch.testing.assert_close(g_fast[name], g_ref[name], rtol=rtol, atol=atol * scale, msg=name)


def test_graph_conv_without_bias_path_and_widening():
    """C_in != C_out (a widening block) and K = 3 with an asymmetric graph: hand loop reference."""
    torch.manual_seed(1)
    gcn = GraphConv(2, 6, 3).double()
    x = torch.randn(2, 2, 3, 5, dtype=torch.float64)
    a = torch.rand(3, 5, 5, dtype=torch.float64)
    w = gcn.conv.weight.view(3, 6, 2)
    b = gcn.conv.bias.view(3, 6)
    ref = torch.zeros(2, 6, 3, 5, dtype=torch.float64)
    for k in range(3):
        for wj in range(5):
            for vj in range(5):
                ref[..., wj] += a[k, vj, wj] * (torch.einsum("oc,nct->not", w[k], x[..., vj]) + b[k][None, :, None])
    torch.testing.assert_close(gcn(x, a), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("p", [0.5, 0.25, 3 / 1024, 0.1, 0.3])
def test_fast_dropout_bit_paths_keep_probability(p):
    """Every mask path (bytes for p·2^8 integer, half-words for p·2^16, 24-bit words otherwise) keeps each
    entry with probability 1 - p, independently (no correlation between neighbours sharing a word)."""
    from skelssl.models.stgcn import FastDropout

    torch.manual_seed(0)
    x = torch.ones(1_000, 1_000)
    y = FastDropout(p)(x)
    kept = y != 0
    assert torch.unique(y[kept]).tolist() == pytest.approx([1 / (1 - p)])
    sigma = (p * (1 - p) / x.numel()) ** 0.5
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * sigma + 1e-6
    flat = kept.flatten().float()
    for lag in (1, 2, 3, 4):  # entries packed in the same random word must be independent
        joint = (flat[:-lag] * flat[lag:]).mean().item()
        assert abs(joint - (1 - p) ** 2) < 5 * sigma + 1e-6


def test_fast_dropout_gradient_uses_the_same_mask():
    from skelssl.models.stgcn import FastDropout

    torch.manual_seed(0)
    x = torch.randn(50, 40, requires_grad=True)
    y = FastDropout(0.5)(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float() * 2.0)
