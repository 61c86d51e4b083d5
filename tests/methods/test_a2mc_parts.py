"""A²MC's parts against values computed by hand or by an independent route: the attack (eqs. 5-6), the M0
update (eq. 7), the mixed banks (eq. 8) and the MC loss (eqs. 9-11)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from skelssl.config import defaults_for
from skelssl.methods.a2mc import A2MC
from skelssl.methods.a2mc.attack import (adam_first_step, information_maximization, present_mask, project_l2,
                                         uniform_attack_loss)
from skelssl.methods.a2mc.mc_loss import mc_loss
from skelssl.methods.a2mc.pnm import AdversarialBank, mixed_logits
from skelssl.models.passes import side_effect_free
from skelssl.transforms.temporal import crop_resize


def tiny_a2mc(encoder: str = "bigru", **method) -> A2MC:
    cfg = defaults_for("a2mc", encoder)
    cfg.method = OmegaConf.merge(cfg.method, {"queue_size": 64, "attack_classes": 5}, method)
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
    method = tiny_a2mc(encoder, attack_bound=0.05)  # small enough for the first-order step to hold
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
    assert (rho.flatten(1).norm(dim=1) <= 0.05 + 1e-6).all()
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
    # the independent route: torch.optim.Adam on the input with eq. 5 as its loss (train mode gives the same
    # forward here: no dropout, BatchNorm normalises with the batch's statistics either way)
    leaf = x.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([leaf], lr=0.1)
    seen = crop_resize(leaf, torch.Generator().manual_seed(0), scale=(1.0, 1.0), min_frames=1)
    uniform_attack_loss(method.head(method.encoder_q(method.to_stream(seen)))).backward()
    optimizer.step()
    expected = (leaf.detach() - x) * present_mask(x)
    torch.testing.assert_close(x_hat - x, expected, atol=1e-6, rtol=1e-4)
    assert (x_hat - x).abs().max() <= 0.1 + 1e-6


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


def test_m0_gradient_by_hand_and_the_ascent_moves_entries_toward_the_queries():
    """Without mixed banks, dL/dm_k = (p1_k f1 + p3_k f3 + (p2_k − t_k) f2) / (τ N), with p the softmax of
    each query over [f0, M0] and t the basic view's (the target of L2)."""
    torch.manual_seed(0)
    f0, f1, f2, f3 = (_unit(3, 8, seed=s) for s in range(4))
    bank, tau = _unit(4, 8, seed=5), 0.03
    method = tiny_a2mc("bigru", mix_lambdas=[], bank_temperature=tau)
    grad = method.bank_gradient(f0, f1, f2, f3, bank, None)

    def probs(q):
        return F.softmax(torch.cat([(q * f0).sum(1, keepdim=True), q @ bank.t()], dim=1) / tau, dim=1)[:, 1:]

    p1, p2, p3 = probs(f1), probs(f2), probs(f3)
    expected = (p1.t() @ f1 + p3.t() @ f3 + (p2 - p3).t() @ f2) / (tau * 3)
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
