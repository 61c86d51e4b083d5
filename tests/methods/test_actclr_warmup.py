"""ActCLR's warm-up stage (training overview step 1, core/warmup.py): the first epochs of the same run train the
same networks with another method's loss; the stage switches in a real fit, resumes exactly, and is refused
for a warm-up method with state of its own."""

from __future__ import annotations

import csv

import pytest
import torch

from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.config import load_config
from skelssl.errors import UserError
from skelssl.methods import METHODS, get_method
from skelssl.methods.actclr import ActCLR
from skelssl.methods.skeletonclr import SkeletonCLR
from skelssl.train import pretrain
from skelssl.settings import plain
from tests.conftest import tiny_overrides
from tests.methods.test_aimclr import tiny_batch, tiny_config

ACTCLR = {"method.name": "actclr", "optim.name": "adam", "optim.lr": 1e-3}


def _logged_keys_by_epoch(run_dir) -> dict[int, set[str]]:
    keys: dict[int, set[str]] = {}
    for path in run_dir.glob("logs/*/metrics.csv"):
        with open(path) as fh:
            for row in csv.DictReader(fh):
                if row.get("epoch"):
                    keys.setdefault(int(row["epoch"]), set()).update(k for k, v in row.items() if v)
    return keys


def test_warmup_loss_is_skeletonclrs_loss_on_the_runs_own_networks():
    """An independent route: a SkeletonCLR built separately, given the ActCLR run's weights, queue and
    generator state, computes the same loss as the ActCLR run's warm-up stage."""
    torch.manual_seed(0)
    host = ActCLR(tiny_config(ActCLR, anchor="batch", warmup={"method": "skeletonclr", "epochs": 2,
                                                              "overrides": {"temperature": 0.2}}), "ntu25").train()
    assert host.in_warmup()  # epoch 0 without a trainer
    host.queue.enqueue(torch.nn.functional.normalize(torch.randn(64, 128), dim=1))
    reference = SkeletonCLR(tiny_config(SkeletonCLR, temperature=0.2), "ntu25").train()
    reference.load_state_dict(host.state_dict(), strict=False)  # encoders, projectors, queue
    batch = tiny_batch()
    host.generator.manual_seed(11)
    reference.generator.manual_seed(11)
    loss, logs = host.warmup.training_loss(host, batch)
    expected, _ = reference.training_loss(batch)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    assert set(logs) == {"warmup/info_nce"}
    assert [(name, keys.shape) for name, keys in host._pending_keys] == [("queue", (8, 128))]  # the run's queue
    assert "backbone" in host.watched  # the collapse monitor sees the warm-up's features
    loss.backward()
    assert all(p.grad is not None for p in host.encoder_q.parameters() if p.requires_grad)


def test_the_stage_switches_in_a_real_fit_and_the_warmup_is_off_with_one_key(tiny_dataset, tmp_path):
    run = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "on", **ACTCLR, **{
        "method.warmup.epochs": 1})), command=[])
    logged = _logged_keys_by_epoch(run)
    assert "train/warmup/info_nce" in logged[0] and "train/similarity_mining" not in logged[0]
    assert "train/similarity_mining" in logged[1] and "train/warmup/info_nce" not in logged[1]
    off = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "off", **ACTCLR, **{
        "method.warmup.epochs": 0, "trainer.epochs": 1})), command=[])
    assert "train/similarity_mining" in _logged_keys_by_epoch(off)[0]


def test_a_run_interrupted_in_its_warmup_resumes_to_the_same_weights(tiny_dataset, tmp_path):
    extra = {**ACTCLR, "method.warmup.epochs": 2, "trainer.epochs": 3, "optim.milestones": [2]}
    straight = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "straight", **extra)),
                        command=[])
    interrupted = tmp_path / "interrupted"
    pretrain(load_config(None, tiny_overrides(tiny_dataset, interrupted, **extra)), command=[], max_epochs=1)
    pretrain(load_config(None, tiny_overrides(tiny_dataset, interrupted, resume="true", **extra)), command=[])
    a = torch.load(straight / LAST_CHECKPOINT, map_location="cpu", weights_only=True)
    b = torch.load(interrupted / LAST_CHECKPOINT, map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"] == 2
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


class WithOwnHead(SkeletonCLR):
    name = "with_own_head"

    def __init__(self, cfg, layout, train_data_info=None):
        super().__init__(cfg, layout, train_data_info)
        self.head = torch.nn.Linear(4, 2)


def test_warmup_methods_with_state_of_their_own_are_refused():
    METHODS[WithOwnHead.name] = WithOwnHead
    try:
        with pytest.raises(UserError, match="'with_own_head' cannot be a warm-up stage"):
            ActCLR(tiny_config(ActCLR, warmup={"method": "with_own_head", "epochs": 1}), "ntu25")
    finally:
        del METHODS[WithOwnHead.name]
    with pytest.raises(UserError, match="the run's own method"):
        ActCLR(tiny_config(ActCLR, warmup={"method": "actclr", "epochs": 1}), "ntu25")
    with pytest.raises(UserError, match=r"\['temprature'\] are not keys of method 'skeletonclr'"):
        ActCLR(tiny_config(ActCLR, warmup={"method": "skeletonclr", "epochs": 1,
                                           "overrides": {"temprature": 0.1}}), "ntu25")
    # AimCLR (the official code's start) is a valid warm-up: its state is the shared networks and queue
    with pytest.raises(UserError, match=r"method.warmup.overrides.temperature' = -1"):
        ActCLR(tiny_config(ActCLR, warmup={"method": "skeletonclr", "epochs": 1,
                                           "overrides": {"temperature": -1}}), "ntu25")
    # AimCLR (the official code's start) is a valid warm-up: no second model, the run's state is all there is
    aim = ActCLR(tiny_config(ActCLR, warmup={"method": "aimclr", "epochs": 1}), "ntu25")
    alone = ActCLR(tiny_config(ActCLR, warmup={"method": "aimclr", "epochs": 0}), "ntu25")
    assert alone.warmup is None and set(aim.state_dict()) == set(alone.state_dict())
    assert aim.warmup.section.temperature == 0.07 and aim.warmup.section.queue_size == aim.cfg.method.queue_size
    assert plain(get_method("actclr").DEFAULTS)["warmup"]["epochs"] == 0  # off unless a config turns it on
    shipped = load_config(None, [], method="actclr", dataset="synthetic-xsub")
    assert (shipped.method.warmup.method, shipped.method.warmup.epochs, shipped.trainer.epochs) == \
        ("skeletonclr", 100, 400)
