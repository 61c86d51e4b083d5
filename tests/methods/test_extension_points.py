"""The MoCo base's extension points, each with a test that fails if a method bypasses it: negatives filtered by a
plug-in, parameter groups with their own learning rate, extra momentum pairs, named banks updated after the
step, the collapse monitor fed only what it is handed, and the dense-features requirement checked at build."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch import nn

from skelssl.config import load_config
from skelssl.errors import UserError
from skelssl.methods import PLUGINS, Plugin
from skelssl.methods.aimclr import AimCLR
from skelssl.methods.core.banks import MemoryQueue
from skelssl.methods.core.monitor import CollapseMonitor, embedding_spread
from skelssl.methods.skeletonclr import SkeletonCLR
from skelssl.models import ENCODERS, Encoder
from tests.methods.test_aimclr import tiny_batch, tiny_config


class KeepOneNegative(Plugin):
    """Test plug-in: each query may use only bank entry 0 as a negative."""

    name = "keep_one"
    DEFAULTS = {"entry": 0}

    def filter_negatives(self, method, bank_name, bank, query, key, keep):
        mine = torch.zeros(query.shape[0], bank.shape[0], dtype=torch.bool, device=bank.device)
        mine[:, int(self.cfg.entry)] = True
        return mine if keep is None else keep & mine


@pytest.fixture
def keep_one_plugin():
    PLUGINS[KeepOneNegative.name] = KeepOneNegative
    yield KeepOneNegative
    del PLUGINS[KeepOneNegative.name]


def _fixed_loss(method, batch):
    method.generator.manual_seed(7)
    with torch.no_grad():
        loss, _ = method.training_loss(batch)
    return loss


def test_a_plugin_that_keeps_one_negative_changes_the_loss_to_infonce_over_one(keep_one_plugin):
    torch.manual_seed(0)
    plain = SkeletonCLR(tiny_config(SkeletonCLR), "ntu25").train()
    cfg = load_config(None, ["plugins.keep_one.enabled=true", "method.queue_size=64",
                             "model.stgcn.hidden_channels=4", "model.stgcn.out_channels=16",
                             "model.stgcn.dropout=0"])
    filtered = SkeletonCLR(cfg, "ntu25").train()
    filtered.load_state_dict(plain.state_dict())
    batch = tiny_batch()
    full, one = _fixed_loss(plain, batch), _fixed_loss(filtered, batch)
    assert not torch.isclose(full, one)
    # By hand: InfoNCE over the positive and bank entry 0 only, from the exposed query and key.
    q, k = filtered.exposed["query"], filtered.exposed["key"]
    tau = filtered.cfg.method.temperature
    pos, neg = (q * k).sum(dim=1) / tau, q @ filtered.queue.bank[0] / tau
    expected = -(pos - torch.logaddexp(pos, neg)).mean()
    torch.testing.assert_close(one, expected, rtol=1e-5, atol=1e-6)


def test_plugin_keys_are_validated_once_for_every_method(keep_one_plugin):
    for method in ("skeletonclr", "aimclr", "actclr"):
        cfg = load_config(None, [f"method.name={method}", "plugins.keep_one.entry=3"])
        assert cfg.plugins.keep_one.entry == 3 and cfg.plugins.keep_one.enabled is False
    with pytest.raises(UserError, match="plugins.keep_one.entyr.*plugins.keep_one.entry"):
        load_config(None, ["plugins.keep_one.entyr=3"])


class WithHead(SkeletonCLR):
    """A method with a classifier head on its own learning rate and an extra momentum pair."""

    def __init__(self, cfg, layout):
        super().__init__(cfg, layout)
        self.head = nn.Linear(self.encoder_q.feature_dim, 5)
        self.head_target = nn.Linear(self.encoder_q.feature_dim, 5)
        self.head_target.requires_grad_(False)

    @property
    def momentum_pairs(self):
        return super().momentum_pairs + [(self.head, self.head_target)]

    def learnable_params(self):
        return super().learnable_params() + [{"name": "head", "params": list(self.head.parameters()), "lr": 0.5}]


def test_a_second_parameter_group_gets_its_own_learning_rate_and_pairs_follow_by_momentum():
    torch.manual_seed(0)
    method = WithHead(tiny_config(SkeletonCLR, momentum=0.9), "ntu25")
    optimizer = method.configure_optimizers()["optimizer"]
    lrs = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert lrs == {"encoder": method.cfg.optim.lr, "projector": method.cfg.optim.lr, "head": 0.5}
    # One SGD step on the head alone moves it by exactly its own lr times its gradient (no momentum yet).
    before = method.head.weight.detach().clone()
    optimizer.zero_grad()
    method.head(torch.ones(2, method.encoder_q.feature_dim)).sum().backward()
    grad = method.head.weight.grad.clone()
    optimizer.step()
    wd = method.cfg.optim.weight_decay
    torch.testing.assert_close(method.head.weight, before - 0.5 * (grad + wd * before))
    target_before = method.head_target.weight.detach().clone()
    method.after_optimizer_step()
    torch.testing.assert_close(method.head_target.weight, 0.9 * target_before + 0.1 * method.head.weight)


def test_a_forgotten_trainable_parameter_is_an_error():
    class Forgets(WithHead):
        def learnable_params(self):
            return SkeletonCLR.learnable_params(self)

    with pytest.raises(ValueError, match="head.weight"):
        Forgets(tiny_config(SkeletonCLR), "ntu25").configure_optimizers()


def test_named_banks_take_their_keys_only_after_the_step():
    method = SkeletonCLR(tiny_config(SkeletonCLR), "ntu25")
    second = method.register_bank("second", MemoryQueue(16, 128, generator=torch.Generator().manual_seed(1)))
    before = second.bank.clone()
    keys = torch.nn.functional.normalize(torch.randn(4, 128), dim=1)
    method.enqueue(keys, bank="second")
    assert torch.equal(second.bank, before)  # the step's losses still see the old bank
    method.after_optimizer_step()
    assert torch.equal(second.bank[:4], keys) and int(second.ptr) == 4
    assert "second.bank" in method.state_dict()  # saved and resumed like the queue
    with pytest.raises(KeyError, match="third"):
        method.enqueue(keys, bank="third")


class ExtraForward(SkeletonCLR):
    """Runs the query encoder on an unrelated batch first (as an attack or an auxiliary pass would)."""

    def training_loss(self, batch):
        self.encode_query(torch.randn_like(batch["x"]) * 10)
        return super().training_loss(batch)


def test_the_collapse_monitor_watches_only_what_it_is_handed():
    torch.manual_seed(0)
    method = ExtraForward(tiny_config(SkeletonCLR), "ntu25").train()
    calls = []
    original = method.encode_query
    method.encode_query = lambda x: calls.append(original(x)) or calls[-1]
    monitor = CollapseMonitor()
    method.training_step(tiny_batch(), 0)
    monitor.on_train_batch_end(None, method, None, None, 0)
    (h_extra, _), (h_main, z_main) = calls
    cos, std = embedding_spread(h_main)
    assert monitor._sums["backbone_mean_cosine"] == [pytest.approx(cos)]
    assert monitor._sums["backbone_std_ratio"] == [pytest.approx(std)]
    assert monitor._sums["projector_mean_cosine"] == [pytest.approx(embedding_spread(z_main)[0])]
    assert embedding_spread(h_extra)[0] != pytest.approx(cos)


class PooledOnly(Encoder):
    """A stand-in recurrent-style encoder: a pooled feature and no (T', V) map."""

    name = "pooled_only"
    DEFAULTS = {"width": 16}

    def __init__(self, layout, in_channels=3, init="pytorch", width=16):
        super().__init__()
        self.feature_dim = width
        self.linear = nn.Linear(in_channels, width)

    def forward(self, x):
        return self.linear(x.mean(dim=(2, 3, 4)))


@pytest.fixture
def pooled_only_encoder():
    ENCODERS[PooledOnly.name] = PooledOnly
    yield
    del ENCODERS[PooledOnly.name]


def test_a_dense_method_on_a_pooled_only_encoder_stops_at_build_time(pooled_only_encoder):
    cfg = load_config(None, ["method.name=aimclr", "model.encoder=pooled_only"])
    with pytest.raises(UserError, match="'aimclr' needs dense.*'pooled_only'"):
        AimCLR(cfg, "ntu25")
    cfg = load_config(None, ["method.name=actclr", "model.encoder=pooled_only"])
    with pytest.raises(UserError, match="'actclr' needs dense.*'pooled_only'"):
        from skelssl.methods.actclr import ActCLR

        ActCLR(cfg, "ntu25")
    # SkeletonCLR needs only the pooled feature: it builds and its loss is finite.
    cfg = load_config(None, ["model.encoder=pooled_only", "model.pooled_only.width=8", "method.queue_size=32"])
    method = SkeletonCLR(cfg, "ntu25")
    loss, _ = method.training_loss(tiny_batch())
    assert math.isfinite(loss.item()) and method.encoder_q.feature_dim == 8


def test_the_stage_switch_follows_the_trainer_epoch(tiny_dataset, tmp_path):
    """AimCLR's NNM stage starts at nnm_start_epoch: seen from inside a real two-epoch fit."""
    from skelssl.train import pretrain
    from tests.conftest import tiny_overrides

    seen = []

    class Look(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if batch_idx == 0:
                seen.append((trainer.current_epoch, module.nnm_active()))

    pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{
        "method.name": "aimclr", "method.nnm_start_epoch": 1})), command=[], callbacks=[Look()])
    assert seen == [(0, False), (1, True)]
