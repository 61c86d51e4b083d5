"""ProSL's adaptive semantic branch (§3.4) wired into the method: its view (the normal augmentations, then the
adaptive mask of eq. 8 from the stored coefficients), its gradient into the query network through eq. 10
(derived by hand), the coefficients a refresh stores (eq. 7, on an encoder that sees one joint), and HiCo's
single encoder call for the query and the semantic view (the same outputs as two calls; never across a
BatchNorm)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from skelssl.methods.prosl.plugin import mixes_samples
from skelssl.models.hico import HiCoEncoder
from skelssl.models.recurrent import BiGRU
from tests.methods.test_prosl_parts import OneJointEncoder, _set_codebook, prosl_method


def _batch(n: int = 6, t: int = 16, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(n, 3, t, 25, 2, generator=g) * 0.3 + 1.0, "index": torch.arange(n),
            "length": torch.full((n,), t)}


def test_the_semantic_view_masks_the_joints_the_stored_coefficients_mark():
    # p_v = 1 for joints 0-6, 1e6 for the rest; mask_ratio 0.28: phi = 0.28 * 25 / (7 + 18e-6) = 1.0, so joints
    # 0-6 are masked with probability 1 and the others with ~1e-6 (eq. 8)
    method = prosl_method(extra=["plugins.prosl.augmentations=[]", "plugins.prosl.mask_ratio=0.28"])
    book = _set_codebook(method, torch.eye(2, 8))
    book.coefficients.copy_(torch.tensor([1.0] * 7 + [1e6] * 18))
    base = _batch(8)["x"]
    view = method.plugins["prosl"].semantic_view(method, {"x": base}, base)
    assert (view[:, :, :, :7] == 0).all()
    torch.testing.assert_close(view[:, :, :, 7:], base[:, :, :, 7:], rtol=0, atol=0)


def test_the_semantic_view_applies_the_normal_augmentations():
    # axis mask with p = 1 alone, no joint mask (no codebook, mask_ratio 0): each sequence loses exactly one
    # of x, y, z in every frame and joint, and keeps the other two as they were
    method = prosl_method(start_epoch=5, extra=["plugins.prosl.augmentations=[axis_mask]",
                                                "plugins.prosl.mask_ratio=0", "augment.axis_mask_p=1.0"])
    base = _batch(8)["x"]
    view = method.plugins["prosl"].semantic_view(method, {"x": base}, base)
    zeroed = (view == 0).flatten(2).all(dim=2)  # (N, C): channel wholly zero
    assert zeroed.sum(dim=1).tolist() == [1] * 8
    torch.testing.assert_close(view[~zeroed], base[~zeroed], rtol=0, atol=0)


def test_eq_10_trains_the_query_network_through_the_semantic_branch():
    """The gradient of the plug-in's loss alone (phase 1: L_KL) on the query network's parameters equals the
    hand-derived dL/dz' pulled back through the branch's own pass: for L = mean_n KL(P' || P) with P detached,
    dL/dlogit'_i = P'_i (log P'_i - log P_i - KL_n) / N, and dlogit'/dz' = M / tau."""
    method = prosl_method(start_epoch=5)
    plugin = method.plugins["prosl"]
    captured = []
    encode_query = method.encode_query
    method.encode_query = lambda x, f=encode_query: (lambda out: captured.append(out[1]) or out)(f(x))
    batch = _batch()
    method.training_loss(batch)  # SkeletonCLR's query through encode_query
    captured.clear()
    extra, _ = plugin.extra_loss(method, batch)  # the branch's own pass
    params = [p for p in method.encoder_q.parameters() if p.requires_grad] + list(method.projector_q.parameters())
    got = torch.autograd.grad(extra, params, retain_graph=True)
    (z_sem,) = captured
    z, bank, tau = method.exposed["query"].detach(), method.queue.bank, method.cfg.method.temperature
    p_sem = F.softmax(z_sem.detach() @ bank.t() / tau, dim=1)
    p_z = F.softmax(z @ bank.t() / tau, dim=1)
    kl_rows = (p_sem * (p_sem.log() - p_z.log())).sum(dim=1, keepdim=True)
    d_logits = p_sem * (p_sem.log() - p_z.log() - kl_rows) / z.shape[0]
    expected = torch.autograd.grad(z_sem, params, grad_outputs=d_logits @ bank / tau)
    scale = max(float(e.abs().max()) for e in expected)  # BatchNorm before BatchNorm: gradients ~0, rounding
    assert scale > 1e-4
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5 * scale)


def test_a_refresh_stores_each_joints_coefficient():
    """eq. 7 with a key network that sees joint 3 alone: zeroing any other joint changes nothing (p_v = 0);
    joint 3's coefficient is KL(y(z) || y(z_3)), z_3 = normalize(bias), y over the codebook's centroids."""
    method = prosl_method(feature_dim=3, samples=52, extra=["plugins.prosl.coefficient_samples=2"])
    one_joint = OneJointEncoder()
    method.encode_key = lambda x: one_joint(x)  # a function: an nn.Module would become a submodule instead
    g = torch.Generator().manual_seed(0)
    data = torch.randn(52, 3, 10, 25, 2, generator=g)
    patterns = torch.tensor([[0.0, -2.0, 0.0], [-2.0, 0.5, -1.0]])  # two kinds of joint-3 motion, 26 each
    data[:, :, :, 3] = patterns.repeat_interleave(26, 0)[:, :, None, None]
    plugin = method.plugins["prosl"]
    plugin.refresh(method, data, torch.full((52,), 10))
    p = plugin.codebook.coefficients
    assert torch.cat([p[:3], p[4:]]).abs().max() == 0
    centers, tau = plugin.codebook.centers, plugin.temperature(method)
    y3 = F.softmax(F.normalize(torch.tensor([0.1, 0.2, 0.3]), dim=0) @ centers.t() / tau, dim=0)
    per_kind = []
    for pattern in patterns.detach():
        with torch.no_grad():
            y = F.softmax(OneJointEncoder()(pattern.view(1, 3, 1, 1, 1).expand(1, 3, 1, 25, 1)) @ centers.t() / tau,
                          dim=1)[0]
        per_kind.append(float((y * (y.log() - y3.log())).sum()))
    candidates = [per_kind[0], per_kind[1], sum(per_kind) / 2]  # the mean over the 2 sequences chosen
    assert min(abs(float(p[3]) - c) for c in candidates) < 1e-5 * max(candidates), (float(p[3]), candidates)
    assert max(per_kind) > 1.0  # joint 3 carries the feature: removing it moves y


def _hico_with_prosl(one_call: bool):
    return prosl_method("hico", encoder="hico", extra=["plugins.prosl.codebook_size=3",
                                                       f"plugins.prosl.one_encoder_call={str(one_call).lower()}"])


def test_on_hico_the_semantic_branch_shares_the_query_encoder_call_with_the_same_outputs():
    results = {}
    for one_call in (True, False):
        method = _hico_with_prosl(one_call)
        _set_codebook(method, torch.eye(3, 8), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1] * 2))
        calls = []
        hierarchy = method.encoder_q.hierarchy
        method.encoder_q.hierarchy = lambda x, f=hierarchy: calls.append(x.shape[0]) or f(x)
        batch = _batch(8)
        loss, _ = method.training_loss(batch)
        extra, logs = method.plugins["prosl"].extra_loss(method, batch)
        (loss + extra).backward()
        grads = {name: p.grad for name, p in method.named_parameters() if p.grad is not None}
        results[one_call] = (loss.detach(), extra.detach(), logs, grads, calls)
    shared, separate = results[True], results[False]
    assert shared[4] == [16] and separate[4] == [8, 8]  # one call of 2N, or the query's and the branch's
    torch.testing.assert_close(shared[0], separate[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(shared[1], separate[1], rtol=1e-5, atol=1e-8)
    for key in ("kl", "sem", "sem_prime"):
        torch.testing.assert_close(shared[2][key], separate[2][key], rtol=1e-5, atol=1e-8)
    assert set(shared[3]) == set(separate[3])
    for name, grad in shared[3].items():
        torch.testing.assert_close(grad, separate[3][name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_batchnorm_in_the_query_network_keeps_the_semantic_branch_separate():
    assert not mixes_samples(HiCoEncoder("ntu25", hidden_size=8, num_layers=1, granularities=2))
    assert mixes_samples(BiGRU("ntu25", hidden_size=4, num_layers=1))  # its input BatchNorm
    assert not mixes_samples(BiGRU("ntu25", hidden_size=4, num_layers=1, input_norm=False))
    batch = _batch()
    stgcn = prosl_method()  # SkeletonCLR on ST-GCN: BatchNorm everywhere
    assert stgcn.plugins["prosl"].query_companion(stgcn, batch, batch["x"]) is None
    hico = _hico_with_prosl(True)
    view = hico.plugins["prosl"].query_companion(hico, batch, batch["x"])
    assert view is not None and view.shape == batch["x"].shape
