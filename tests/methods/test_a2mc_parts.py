"""A²MC's parts against values computed by hand or by an independent route: the attack (eqs. 5-6), the M0
update (eq. 7), the mixed banks (eq. 8), the MC loss (eqs. 9-11), which sequence each view is cut from, the
query views in one call."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from skelssl.config import defaults_for
from skelssl.methods.a2mc import A2MC
from skelssl.methods.a2mc.attack import (adam_first_step, attack_perturbation, information_maximization,
                                         present_mask, project_l2, rnn_backward_allowed, uniform_attack_loss)
from skelssl.methods.a2mc.mc_loss import mc_loss
from skelssl.methods.a2mc.pnm import AdversarialBank, mixed_logits
from skelssl.models.passes import side_effect_free
from skelssl.transforms.temporal import crop_resize


def tiny_a2mc(encoder: str = "bigru", augment: dict | None = None, **method) -> A2MC:
    cfg = defaults_for("a2mc", encoder)
    cfg.method = OmegaConf.merge(cfg.method, {"queue_size": 64, "attack_classes": 5}, method)
    cfg.augment = OmegaConf.merge(cfg.augment, augment or {})
    if encoder == "stgcn":
        cfg.model.stgcn.update(hidden_channels=4, out_channels=16, dropout=0.0)
    else:
        cfg.model[encoder].update(hidden_size=8, num_layers=1)
    torch.manual_seed(0)
    return A2MC(cfg, "ntu25").train()


def moving_batch(n: int = 6, t: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 1, 25, 2, generator=g) * 0.3 + torch.randn(n, 3, t, 25, 2, generator=g).cumsum(2) * 0.05
    x[n // 2:, :, :, :, 1] = 0  # single-person samples
    return x


def attack_losses(method: A2MC, x: torch.Tensor) -> torch.Tensor:
    """Per-sample eq. 5 of the class feature, seen as the attack sees it (batch statistics, no side effects)."""
    seen = crop_resize(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), min_frames=1)
    with torch.no_grad(), side_effect_free(method):
        probs = F.softmax(method.head(method.encoder_q(method.to_stream(seen))), dim=1)
    return (probs - 1 / probs.shape[1]).pow(2).mean(dim=1)


def test_attack_loss_by_hand():
    assert uniform_attack_loss(torch.zeros(3, 4)) == 0  # already uniform
    # C = 2, p = (2/3, 1/3): ((1/6)^2 + (1/6)^2) / 2 = 1/36, summed over 2 samples
    logits = torch.tensor([[math.log(2.0), 0.0], [0.0, math.log(2.0)]])
    torch.testing.assert_close(uniform_attack_loss(logits), torch.tensor(2 / 36))


def test_phi_is_the_first_step_of_a_fresh_adam():
    g = torch.Generator().manual_seed(0)
    grad = torch.randn(5, 7, generator=g) * torch.logspace(-9, 1, 7)  # some gradients below Adam's eps
    param = torch.zeros(5, 7, requires_grad=True)
    optimizer = torch.optim.Adam([param], lr=0.1)
    param.grad = grad.clone()
    optimizer.step()
    torch.testing.assert_close(-param.detach(), adam_first_step(grad, 0.1))


def test_l2_projection_by_hand():
    rho = torch.tensor([[3.0, 4.0], [0.03, 0.04]])
    torch.testing.assert_close(project_l2(rho, 0.5), torch.tensor([[0.3, 0.4], [0.03, 0.04]]))


def test_present_mask_is_zero_where_a_person_is_absent():
    x = torch.ones(2, 3, 4, 5, 2)
    x[0, :, 2:, :, 1] = 0  # person 2 leaves after frame 1
    x[1, :, :, 0, 0] = 0   # one joint at the origin (the centre joint of centred data) is still present
    mask = present_mask(x)
    assert mask.shape == (2, 1, 4, 1, 2)
    assert mask[0, 0, :, 0, 1].tolist() == [1, 1, 0, 0] and mask[1].min() == 1


@pytest.mark.parametrize("encoder", ["bigru", "stgcn"])
def test_the_attack_moves_the_class_feature_toward_uniform_within_the_bound(encoder):
    # ε√3 > η: every joint's displacement is cut to η; small enough for the first-order step to hold
    method = tiny_a2mc(encoder, attack_lr=0.01, attack_bound=0.005)
    x = moving_batch()
    bn = method.encoder_q.input_norm if encoder == "bigru" else method.encoder_q.data_bn
    running = bn.running_mean.clone()
    weights = {name: p.detach().clone() for name, p in method.named_parameters()}
    rng = method.generator.get_state()
    before = attack_losses(method, x)
    x_hat, logs = method.attack(x, None)
    after = attack_losses(method, x_hat)
    # the attack descends the batch's loss (BatchNorm couples the samples); most samples follow
    assert after.sum() < before.sum() and (after < before).float().mean() > 0.5, (before, after)
    rho = x_hat - x
    joint_norms = rho.norm(dim=1)[:, :, :, 0]  # person 1, present everywhere
    assert (joint_norms <= 0.005 + 1e-7).all() and ((joint_norms - 0.005).abs() < 1e-7).float().mean() > 0.9
    assert (rho[3:, :, :, :, 1] == 0).all()  # no ghost second person
    assert torch.equal(bn.running_mean, running)  # BatchNorm statistics untouched
    assert torch.equal(method.generator.get_state(), rng)  # no augmentation draws
    # encoder and head fixed during the attack: not stepped, and no gradient left behind for the next step
    assert all(torch.equal(p, weights[name]) for name, p in method.named_parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in method.parameters())
    assert method.watched == {}  # the collapse monitor never sees the attack


def test_an_unbounded_attack_is_one_adam_step_of_eps():
    method = tiny_a2mc("bigru", attack_bound=1e9)
    x = moving_batch()
    x_hat, _ = method.attack(x, None)
    # the independent route: the view by F.interpolate; torch.optim.Adam on it with eq. 5 as its loss, its
    # gradient divided by its largest magnitude per sequence; the step back at the 40 raw frames by F.interpolate
    # (train mode gives the same forward here: no dropout, BatchNorm normalises with the batch's statistics)
    n, c, t, v, m = x.shape
    flat = x.permute(0, 1, 3, 4, 2).reshape(n, c * v * m, t)
    seen = F.interpolate(flat, size=64, mode="linear", align_corners=False)
    seen = seen.reshape(n, c, v, m, 64).permute(0, 1, 4, 2, 3).contiguous().requires_grad_(True)
    (grad,) = torch.autograd.grad(uniform_attack_loss(method.head(method.encoder_q(method.to_stream(seen)))), seen)
    leaf = torch.zeros_like(seen, requires_grad=True)
    optimizer = torch.optim.Adam([leaf], lr=0.1)
    leaf.grad = grad / grad.flatten(1).abs().amax(dim=1).view(n, 1, 1, 1, 1)
    optimizer.step()
    step = leaf.detach().permute(0, 1, 3, 4, 2).reshape(n, c * v * m, 64)
    raw = F.interpolate(step, size=t, mode="linear", align_corners=False).reshape(n, c, v, m, t)
    expected = raw.permute(0, 1, 4, 2, 3) * present_mask(x)
    # where |g| / max |g| is near Adam's eps the step is a fraction of ε that float rounding of the two routes'
    # views moves (d step / d g = lr·eps / (|g| + eps)², up to lr / (4 eps)): 2 of 36000 coordinates here, by up
    # to 1.3e-3 of ε = 0.1 on some 2-core machines of this kind, below 1e-3 on others
    close = ((x_hat - x) - expected).abs() <= 1e-6 + 1e-4 * expected.abs()
    assert close.float().mean() > 0.999 and ((x_hat - x) - expected).abs().max() < 5e-3
    moved = (x_hat - x).abs()[present_mask(x).expand_as(x) > 0]
    assert moved.max() <= 0.1 + 1e-6 and (moved > 0.099).float().mean() > 0.9  # ε on (almost) every coordinate


def _signs() -> torch.Tensor:
    """(2, 3, 1, 2, 2) gradient signs per coordinate, joint and person; joint 1 of person 1 has no z gradient."""
    s = torch.tensor([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]]).view(2, 3, 1, 1, 1).expand(2, 3, 1, 2, 2).clone()
    s[:, :, :, 1, 1] *= -1
    s[:, 2, :, 1, 0] = 0.0
    return s


@pytest.mark.parametrize("eps, per_coordinate", [(0.1, 0.1), (0.2, 0.2), (0.4, 0.5 / math.sqrt(3))])
def test_the_attack_step_on_a_linear_objective_by_hand(eps, per_coordinate):
    """L = Σ w · view, w = s on every frame of the 4-frame grid: ∂L/∂view = s, the fresh Adam step is −ε s on
    every coordinate (|s| / max |s| = 1 ≫ Adam's eps), the same at each of the 10 raw frames. A joint moves by
    ε√3: within η = 0.5 for ε 0.1 and 0.2 (so ρ doubles with ε), cut to η for ε 0.4 (0.5/√3 per coordinate);
    the joint without a z gradient moves by ε√2 (cut to 0.5/√2 per coordinate at ε 0.4)."""
    s = _signs()
    w = s.expand(2, 3, 4, 2, 2)
    x = torch.randn(2, 3, 10, 2, 2, generator=torch.Generator().manual_seed(0))
    x[1, :, :, :, 1] = 0.0  # sample 1 has one person
    rho, loss = attack_perturbation(lambda view: (w * view).sum(), x, None, grid_frames=4, eps=eps, eta=0.5)
    two_coords = min(eps, 0.5 / math.sqrt(2))
    expected = -s.expand(2, 3, 10, 2, 2) * per_coordinate
    expected[:, :, :, 1, 0] = -s[:, :, :, 1, 0] * two_coords
    expected[1, :, :, :, 1] = 0.0  # no ghost second person
    torch.testing.assert_close(rho, expected, atol=1e-7, rtol=1e-6)
    # Adam's step does not depend on the gradient's scale: eq. 5's gradients are far below Adam's eps 1e-8
    tiny, _ = attack_perturbation(lambda view: 1e-10 * (w * view).sum(), x, None, grid_frames=4, eps=eps, eta=0.5)
    torch.testing.assert_close(tiny, expected, atol=1e-7, rtol=1e-6)
    # the literal per-sequence ball always binds: ε has no effect there (the defect of the earlier step)
    whole, _ = attack_perturbation(lambda view: (w * view).sum(), x, None, grid_frames=4, eps=eps, eta=0.5,
                                   bound_unit="sequence")
    torch.testing.assert_close(whole.flatten(1).norm(dim=1), torch.full((2,), 0.5))
    direction = -s.expand(2, 3, 10, 2, 2).clone()
    direction[1, :, :, :, 1] = 0.0
    torch.testing.assert_close(whole, direction / direction.flatten(1).norm(dim=1).view(2, 1, 1, 1, 1) * 0.5)


def test_every_valid_raw_frame_of_a_long_sequence_is_perturbed():
    """200 valid frames (of 220) seen at 64: a gradient through the resampling reaches at most 128 of them; the
    step found on the 64-frame grid reaches all 200. The gradient's magnitude varies over the grid, its sign
    does not, so each raw frame gets −ε s; nothing past the valid length."""
    g = torch.Generator().manual_seed(1)
    s = _signs()
    w = s * (0.2 + torch.rand(2, 1, 64, 1, 1, generator=g))  # |∂L/∂view| / max between ~0.17 and 1
    x = torch.zeros(2, 3, 220, 2, 2)
    x[:, :, :200] = torch.randn(2, 3, 200, 2, 2, generator=g)
    lengths = torch.tensor([200, 200])
    rho, _ = attack_perturbation(lambda view: (w * view).sum(), x, lengths, grid_frames=64, eps=0.1, eta=0.5)
    expected = torch.zeros_like(x)
    expected[:, :, :200] = -0.1 * s
    torch.testing.assert_close(rho, expected, atol=1e-7, rtol=1e-6)
    assert (rho[:, :, :200].abs().amax(dim=(1, 3, 4)) > 0).all()  # every valid raw frame of both sequences


def test_cudnn_is_switched_off_only_for_a_recurrent_layer_in_eval_mode():
    """The decision, on the CPU: cuDNN's flag inside the context for a CUDA device."""
    cuda, cpu = torch.device("cuda"), torch.device("cpu")

    def cudnn_on(device, *modules):
        with rnn_backward_allowed(device, *modules):
            return torch.backends.cudnn.enabled

    assert torch.backends.cudnn.enabled
    plain = nn.GRU(4, 4, num_layers=2)  # no inter-layer dropout: side_effect_free leaves it in train mode
    dropped = nn.GRU(4, 4, num_layers=2, dropout=0.5)  # side_effect_free puts it in eval mode
    with side_effect_free(plain, dropped):
        assert cudnn_on(cuda, nn.Sequential(nn.Linear(4, 4), plain)) is True
        assert cudnn_on(cuda, plain, dropped) is False
        assert cudnn_on(cpu, dropped) is True
    assert cudnn_on(cuda, dropped) is True  # back in train mode
    assert cudnn_on(cuda, plain.eval()) is False  # any recurrent layer in eval mode
    assert cudnn_on(cuda, nn.Linear(4, 4).eval()) is True


@pytest.mark.parametrize("encoder", ["bigru", "bilstm", "stgcn"])
def test_the_three_query_views_in_one_call_equal_three_calls(encoder):
    method = tiny_a2mc(encoder)
    twin = copy.deepcopy(method)
    views = [method.to_stream(moving_batch(seed=s)[:, :, :32] * (1 + s)) for s in range(3)]  # own statistics
    calls = []
    method.encoder_q.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    joined = method.encode_queries(views)
    separate = [twin.encode_query(view) for view in views]
    for (h, z), (h_ref, z_ref) in zip(joined, separate):
        torch.testing.assert_close(h, h_ref, atol=1e-6, rtol=0)
        torch.testing.assert_close(z, z_ref, atol=1e-6, rtol=0)
    # the running statistics moved as by the three calls, one view after the other
    for (name, buf), (_, ref) in zip(method.named_buffers(), twin.named_buffers()):
        if "running" in name or "num_batches" in name:
            torch.testing.assert_close(buf, ref, atol=1e-6, rtol=0, msg=name)
    # one call where only the input BatchNorm couples the samples; ST-GCN normalises in every block
    assert calls == ([6, 6, 6] if encoder == "stgcn" else [18])


def test_each_view_is_cut_from_its_own_sequence_and_reaches_its_own_loss_term():
    """Stand-in views that name their input: the key and the basic query view from x, the weak view from x̂,
    the strong view from x̂ by the strong augmentation; L1, L2, L3 recomputed from the four features."""
    method = tiny_a2mc("bigru", mix_lambdas=[0.4, 0.2])
    x = moving_batch()
    x_hat = x + 0.7 * present_mask(x)
    twin = copy.deepcopy(method)
    method.attack = lambda seq, lengths: (x_hat, {})
    method.basic_view = lambda seq, lengths: seq.clone()
    method.strong_view = lambda seq, lengths: seq.flip(2) * 0.5
    _, logs = method.training_loss({"x": x, "index": torch.arange(6)})
    with torch.no_grad():
        f0 = twin.encode_key(twin.to_stream(x))
        f3 = twin.encode_query(twin.to_stream(x))[1]
        f1 = twin.encode_query(twin.to_stream(x_hat))[1]
        f2 = twin.encode_query(twin.to_stream(x_hat.flip(2) * 0.5))[1]
        want = mc_loss(f0, f1, f2, f3, twin.queue.bank, [0.4, 0.2], float(twin.cfg.method.temperature))
    for term in ("l1", "l2", "l3"):
        torch.testing.assert_close(logs[term], getattr(want, term), atol=1e-5, rtol=1e-5, msg=term)


def test_the_strong_view_is_the_basic_view_then_the_extra_augmentations():
    """Only the axis mask left on (p 1; flip, noise, blur p 0; rotation 0°): the strong view is the basic view
    of the same draws with one whole coordinate axis zeroed per sample."""
    method = tiny_a2mc("bigru", augment={"spatial_flip_p": 0.0, "max_angle": 0.0, "minor_angle": 0.0,
                                         "noise_p": 0.0, "blur_p": 0.0, "axis_mask_p": 1.0})
    x = moving_batch()
    state = method.generator.get_state()
    strong = method.strong_view(x, None)
    method.generator.set_state(state)
    basic = method.basic_view(x, None)
    zeroed = strong.abs().amax(dim=(2, 3, 4)) == 0  # (N, C)
    assert zeroed.sum(dim=1).tolist() == [1] * 6 and not (basic.abs().amax(dim=(2, 3, 4)) == 0).any()
    kept = (~zeroed)[:, :, None, None, None].expand_as(basic)
    torch.testing.assert_close(strong[kept], basic[kept])


def test_information_maximization_by_hand():
    # two confident predictions of different classes: entropy 0 each, mean prediction (1/2, 1/2) -> −log 2
    logits = torch.tensor([[30.0, 0.0], [0.0, 30.0]])
    torch.testing.assert_close(information_maximization(logits), torch.tensor(-math.log(2)), atol=1e-6, rtol=0)
    # uniform predictions: log 2 − log 2 = 0
    torch.testing.assert_close(information_maximization(torch.zeros(3, 2)), torch.tensor(0.0))


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.mark.parametrize("normalize", [False, True])
def test_mixed_banks_against_materialised_entries(normalize):
    n, k, lambdas = 3, 5, [0.4, 0.3, 0.2, 0.1]
    q, f, bank = _unit(n, 8, seed=1), _unit(n, 8, seed=2), _unit(k, 8, seed=3)
    got = mixed_logits(q @ bank.t(), (q * f).sum(1), lambdas, f @ bank.t(), normalize)
    assert got.shape == (n, len(lambdas) * k)
    for i in range(n):
        for j, lam in enumerate(lambdas):
            entries = lam * f[i] + (1 - lam) * bank  # eq. 8, sample i's own mixed bank
            if normalize:
                entries = F.normalize(entries, dim=1)
            torch.testing.assert_close(got[i, j * k:(j + 1) * k], entries @ q[i])


def _explicit_logits(q, positive, mixer, bank, lambdas, tau):
    entries = [bank] + [lam * mixer[:, None] + (1 - lam) * bank[None] for lam in lambdas]
    rows = []
    for i in range(q.shape[0]):
        bank_i = torch.cat([e if e.dim() == 2 else e[i] for e in entries])
        rows.append(torch.cat([(q[i] * positive[i]).sum()[None], bank_i @ q[i]]) / tau)
    return torch.stack(rows)


def test_mc_loss_by_hand_l2_pulls_the_strong_view_to_the_basic_views_distribution():
    f0, f1, f2, f3 = (_unit(4, 8, seed=s) for s in range(4))
    f1, f2, f3 = (f.clone().requires_grad_(True) for f in (f1, f2, f3))
    bank, lambdas, tau = _unit(6, 8, seed=9), [0.4, 0.1], 0.07
    out = mc_loss(f0, f1, f2, f3, bank, lambdas, tau)
    zero = torch.zeros(4, dtype=torch.long)
    l1 = F.cross_entropy(_explicit_logits(f1, f0, f1, bank, lambdas, tau), zero)
    l3 = F.cross_entropy(_explicit_logits(f3, f0, f3, bank, lambdas, tau), zero)
    # eq. 11: target ψ(f3, ·) and student ψ(f2, ·) over [f0] ∪ M0 ∪ M2 (M2 mixes f2, not f3)
    target = F.softmax(_explicit_logits(f3, f0, f2, bank, lambdas, tau), dim=1)
    student = F.log_softmax(_explicit_logits(f2, f0, f2, bank, lambdas, tau), dim=1)
    l2 = -(target * student).sum(1).mean()
    for got, want in ((out.l1, l1), (out.l2, l2), (out.l3, l3)):
        torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.total, (l1 + l2 + l3).detach(), rtol=1e-5, atol=1e-5)
    out.l2.backward()
    assert f3.grad is None or f3.grad.abs().max() == 0  # the target side is not trained by L2
    assert f2.grad.abs().max() > 0


def test_a_removed_m0_entry_takes_its_mixed_entries_with_it():
    f0, f1, f2, f3 = (_unit(2, 8, seed=s) for s in range(4))
    bank, lambdas = _unit(5, 8, seed=7), [0.4, 0.2]
    keep = torch.ones(2, 5, dtype=torch.bool)
    keep[:, 3] = False
    filtered = mc_loss(f0, f1, f2, f3, bank, lambdas, 0.1, keep=keep)
    without = mc_loss(f0, f1, f2, f3, bank[[0, 1, 2, 4]], lambdas, 0.1)
    torch.testing.assert_close(filtered.total, without.total)


def _bank_gradient_by_hand(f0, f1, f2, f3, bank, tau):
    """dL/dM0 without mixed banks (next test's docstring)."""
    def probs(q):
        return F.softmax(torch.cat([(q * f0).sum(1, keepdim=True), q @ bank.t()], dim=1) / tau, dim=1)[:, 1:]

    p1, p2, p3 = probs(f1), probs(f2), probs(f3)
    return (p1.t() @ f1 + p3.t() @ f3 + (p2 - p3).t() @ f2) / (tau * f0.shape[0])


def test_m0_ascends_its_gradient_after_the_optimizer_step():
    """A full M0 after one training step: M0 <- normalize(M0 + β dL/dM0) (eq. 7), dL/dM0 by hand from the
    step's four features at the bank's temperature; the keys no longer enter."""
    method = tiny_a2mc("bigru", mix_lambdas=[], bank_temperature=0.03, bank_lr=3.0)
    method.queue.filled.fill_(method.queue.size)
    bank = method.queue.bank.clone()
    loss, _ = method.training_loss({"x": moving_batch(), "index": torch.arange(6)})
    loss.backward()
    f = {name: value.detach() for name, value in method.exposed.items()}
    grad = _bank_gradient_by_hand(f["key"], f["weak"], f["strong"], f["query"], bank, 0.03)
    assert torch.equal(method.queue.bank, bank)  # not before the optimiser step
    method.after_optimizer_step()
    torch.testing.assert_close(method.queue.bank, F.normalize(bank + 3.0 * grad, dim=1), rtol=1e-4, atol=1e-6)


def test_m0_gradient_by_hand_and_the_ascent_moves_entries_toward_the_queries():
    """Without mixed banks, dL/dm_k = (p1_k f1 + p3_k f3 + (p2_k − t_k) f2) / (τ N), with p the softmax of
    each query over [f0, M0] and t the basic view's (the target of L2)."""
    torch.manual_seed(0)
    f0, f1, f2, f3 = (_unit(3, 8, seed=s) for s in range(4))
    bank, tau = _unit(4, 8, seed=5), 0.03
    method = tiny_a2mc("bigru", mix_lambdas=[], bank_temperature=tau)
    grad = method.bank_gradient(f0, f1, f2, f3, bank, None)

    expected = _bank_gradient_by_hand(f0, f1, f2, f3, bank, tau)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)

    m0 = AdversarialBank(4, 8)
    m0.bank.copy_(bank)
    m0.ascend(grad, beta=3.0)
    torch.testing.assert_close(m0.bank, F.normalize(bank + 3.0 * expected, dim=1), rtol=1e-4, atol=1e-6)
    queries = torch.cat([f1, f3])
    assert (m0.bank @ queries.t()).sum() > (bank @ queries.t()).sum()  # closer to the anchors (eq. 7)


def test_m0_fills_from_the_keys_then_changes_only_by_its_gradient():
    m0 = AdversarialBank(5, 4, generator=torch.Generator().manual_seed(0))
    keys = _unit(3, 4, seed=1)
    m0.enqueue(keys)
    m0.enqueue(keys * -1)
    assert int(m0.filled) == 5
    torch.testing.assert_close(m0.bank, torch.cat([keys, -keys[:2]]))
    before = m0.bank.clone()
    m0.enqueue(_unit(3, 4, seed=2))  # full: keys no longer enter
    assert torch.equal(m0.bank, before)
    # the official code's momentum and weight decay: v = 0.9 v + g − wd M0
    m1 = AdversarialBank(5, 4, momentum=0.9, weight_decay=0.1)
    m1.bank.copy_(before)
    g = _unit(5, 4, seed=3)
    m1.ascend(g, beta=1.0)
    first = F.normalize(before + (g - 0.1 * before), dim=1)
    torch.testing.assert_close(m1.bank, first)
    m1.ascend(g, beta=1.0)
    torch.testing.assert_close(m1.bank, F.normalize(first + (0.9 * (g - 0.1 * before) + g - 0.1 * first), dim=1))


def test_the_head_trains_on_its_own_learning_rate_and_only_from_its_own_loss():
    method = tiny_a2mc("bigru", head_lr=0.123)
    groups = {g["name"]: g for g in method.configure_optimizers()["optimizer"].param_groups}
    assert groups["head"]["lr"] == 0.123 and groups["encoder"]["lr"] == method.cfg.optim.lr
    assert method.head.out_features == 5
    inputs_needing_grad = []
    forward = method.head.forward
    method.head.forward = lambda h: inputs_needing_grad.append(h.requires_grad) or forward(h)
    loss, _ = method.training_loss({"x": moving_batch(), "index": torch.arange(6)})
    assert inputs_needing_grad == [True, False]  # the attack pass, then the head's loss on a detached feature
    loss.backward()
    # the head's gradient is exactly that of its own loss: the MC loss sends it nothing
    own = torch.nn.Linear(method.head.in_features, 5)
    own.load_state_dict(method.head.state_dict())
    information_maximization(own(method.watched["backbone"])).backward()
    torch.testing.assert_close(method.head.weight.grad, own.weight.grad)
    frozen = tiny_a2mc("bigru", head_training="frozen")
    names = [g["name"] for g in frozen.configure_optimizers()["optimizer"].param_groups]
    assert "head" not in names and not frozen.head.weight.requires_grad
