"""ActCLR+ end to end: the loss falls on a fixed batch, every module has a switch that removes it, every dataset-split
x stream config loads and trains, and a real fit warms up, refreshes the prototypes on schedule and resumes to
the same weights."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
import torch

from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.config import load_config, piece_names
from skelssl.errors import UserError
from skelssl.methods.actclr import ActCLRPlus
from skelssl.train import pretrain
from tests.conftest import tiny_overrides
from tests.methods.test_aimclr import hard_bank, loss_on_fixed_views, tiny_batch, tiny_config, train_steps


def ready(method: ActCLRPlus, batch: dict) -> ActCLRPlus:
    method.update_anchor(batch["x"].numpy())  # eq. 2's average motion, here of the batch
    method.refresh_prototypes(batch["x"].numpy())  # eq. 33 over the batch
    return method


def test_actclr_plus_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    method = ActCLRPlus(tiny_config(ActCLRPlus, num_prototypes=3), "ntu25").train()
    batch = tiny_batch()
    ready(method, batch)
    rng_state = method.generator.get_state()
    bank = hard_bank(method, batch)
    before, logs = loss_on_fixed_views(method, batch, rng_state, bank)
    assert {"intra_sd", "inter_sd", "sam"} <= set(logs)
    assert set(method.last_actionlet.unique().tolist()) == {0.0, 1.0}
    train_steps(method, batch, steps=32, lr=3e-3, rng_state=rng_state, bank=bank)
    after, after_logs = loss_on_fixed_views(method, batch, rng_state, bank)
    print("loss before", before, logs, "after", after, after_logs)
    assert np.isfinite([before, after]).all()
    assert after < 0.9 * before, (before, after)
    for name in ("intra_sd", "inter_sd", "sam"):  # each term falls
        assert float(after_logs[name]) < float(logs[name]), name


def _passes(method, batch):
    """Encoder calls of one step: (which encoder, its input) in order."""
    calls = []
    for name in ("encoder_q", "encoder_k"):
        encoder = getattr(method, name)
        features = encoder.features
        encoder.features = lambda v, f=features, n=name: calls.append((n, v)) or f(v)
    method.training_loss(batch)
    return [name for name, _ in calls]


@pytest.mark.parametrize("switch,passes", [
    ({}, ["encoder_k", "encoder_k", "encoder_q", "encoder_k", "encoder_q", "encoder_q"]),
    ({"adversarial": False}, ["encoder_k", "encoder_q", "encoder_k", "encoder_q", "encoder_q"]),
    ({"inter_sd": False}, ["encoder_k", "encoder_k", "encoder_q", "encoder_k", "encoder_q"]),
    ({"sam": False, "inter_sd": False}, ["encoder_k", "encoder_k", "encoder_q", "encoder_k"]),
])
def test_each_module_switch_removes_its_pass(switch, passes):
    """Actionlet (f_k), attack (f_k), query (f_q), key (f_k), Inter-SD's mixed query (f_q), SAM³'s masked
    query (f_q): a switch takes its pass away, and its loss term with it."""
    torch.manual_seed(0)
    method = ActCLRPlus(tiny_config(ActCLRPlus, num_prototypes=3, **switch), "ntu25").train()
    batch = tiny_batch()
    ready(method, batch)
    assert _passes(method, batch) == passes


@pytest.mark.parametrize("switch", [{"t_act": False}, {"t_non": False}, {"skeleton_mask": False},
                                    {"t_act": False, "t_non": False, "adversarial": False,
                                     "skeleton_mask": False}])
def test_table_xi_switches_change_the_query_view(switch):
    """With every transformation off the query is the plain normal view x_q; each switch changes x_trans."""
    torch.manual_seed(0)
    full = ActCLRPlus(tiny_config(ActCLRPlus, num_prototypes=3), "ntu25").train()
    ablated = ActCLRPlus(tiny_config(ActCLRPlus, num_prototypes=3, **switch), "ntu25").train()
    ablated.load_state_dict(full.state_dict(), strict=False)
    batch = tiny_batch()
    for method in (full, ablated):
        ready(method, batch)
    views = {}
    for name, method in (("full", full), ("ablated", ablated)):
        method.generator.manual_seed(5)
        actionlet = method.actionlet(method.to_stream(batch["x"]))
        from skelssl.methods.actclr.actionlet import upsample_to_frames

        x_q, _, tracker, _ = method.views(batch["x"])
        views[name] = (x_q, method.transform_query(x_q, upsample_to_frames(actionlet, 16), tracker))
    assert not torch.allclose(views["full"][1], views["ablated"][1])
    if len(switch) == 4:
        assert torch.equal(views["ablated"][1], views["ablated"][0])


def test_bad_switches_are_named():
    with pytest.raises(UserError, match="has no loss"):
        ActCLRPlus(tiny_config(ActCLRPlus, intra_sd=False, inter_sd=False, sam=False), "ntu25")
    with pytest.raises(UserError, match=r"method.mask_padding' = 'gaussian' \(the command line\): must be one of "
                                        "zero, noise, sequence"):
        load_config(None, ["method.name=actclr_plus", "method.mask_padding=gaussian"])
    with pytest.raises(UserError, match="num_prototypes"):
        ActCLRPlus(tiny_config(ActCLRPlus), "ntu25").num_prototypes()


DATASETS = piece_names("datasets")


@pytest.mark.parametrize("dataset,stream", itertools.product(DATASETS, ["joint", "motion", "bone"]))
def test_every_dataset_split_and_stream_config(dataset, stream):
    cfg = load_config(None, [f"data.stream={stream}"], dataset=dataset, method="actclr_plus", encoder="stgcn")
    assert cfg.method.name == "actclr_plus" and cfg.data.stream == stream
    assert (cfg.method.temperature_query, cfg.method.temperature_key) == (0.1, 0.04)  # §V-A
    assert (cfg.model.stgcn.hidden_channels, cfg.method.feature_dim, cfg.trainer.batch_size) == (16, 128, 128)
    assert (cfg.method.warmup.method, cfg.method.warmup.epochs, cfg.trainer.epochs) == ("skeletonclr", 100, 400)
    assert cfg.method.queue_size == (1024 if dataset.split("-")[0] in ("nwucla", "synthetic") else 65536)


@pytest.mark.parametrize("stream", ["joint", "motion", "bone"])
def test_every_stream_trains_a_step(stream):
    torch.manual_seed(0)
    cfg = tiny_config(ActCLRPlus, num_prototypes=3, sam_target="both")
    cfg.data.stream = stream
    method = ActCLRPlus(cfg, "ntu25").train()
    batch = tiny_batch()
    ready(method, batch)
    loss, logs = method.training_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and float(logs["sam"]) > 0


def _metrics(run_dir) -> list[dict]:
    rows = []
    for path in run_dir.glob("logs/*/metrics.csv"):
        with open(path) as fh:
            rows += [{k: v for k, v in row.items() if v} for row in csv.DictReader(fh)]
    return rows


def test_a_fit_warms_up_refreshes_prototypes_on_schedule_and_resumes(tiny_dataset, tmp_path):
    extra = {"method.name": "actclr_plus", "optim.name": "adam", "optim.lr": 1e-3, "method.num_prototypes": 4,
             "method.warmup.epochs": 1, "method.prototype_every": 2, "trainer.epochs": 4,
             "optim.milestones": [3]}
    straight = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "straight", **extra)), command=[])
    interrupted = tmp_path / "interrupted"
    pretrain(load_config(None, tiny_overrides(tiny_dataset, interrupted, **extra)), command=[], max_epochs=2)
    after_two = torch.load(interrupted / LAST_CHECKPOINT, map_location="cpu", weights_only=True)
    assert int(after_two["state_dict"]["prototypes.epoch"]) == 1  # first epoch after the warm-up
    pretrain(load_config(None, tiny_overrides(tiny_dataset, interrupted, resume="true", **extra)), command=[])
    a = torch.load(straight / LAST_CHECKPOINT, map_location="cpu", weights_only=True)
    b = torch.load(interrupted / LAST_CHECKPOINT, map_location="cpu", weights_only=True)
    assert int(a["state_dict"]["prototypes.epoch"]) == 3  # refreshed at epochs 1 and 3
    assert a["global_step"] == b["global_step"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    by_epoch: dict[int, set] = {}
    for row in _metrics(straight):
        if "epoch" in row:
            by_epoch.setdefault(int(row["epoch"]), set()).update(row)
    assert "train/warmup/info_nce" in by_epoch[0] and "train/intra_sd" not in by_epoch[0]
    assert {"train/intra_sd", "train/inter_sd", "train/sam", "train/prototype_share"} <= by_epoch[1]
    assert "train/prototype_share" not in by_epoch[2] and "train/prototype_share" in by_epoch[3]
