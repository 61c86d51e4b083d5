"""ProSL smoke tests: the loss (base + plug-in terms) falls on a fixed batch in phase 2 on SkeletonCLR and on
HiCo; a Lightning run builds the codebook at the right epoch, logs where its time goes, and resumes exactly."""

from __future__ import annotations

import csv

import pytest
import torch

from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.config import load_config
from skelssl.train import pretrain
from tests.conftest import tiny_overrides
from tests.methods.test_hico import losses_on_a_fixed_batch
from tests.methods.test_prosl_parts import prosl_method


def _total_loss(method, batch):
    loss, _ = method.training_loss(batch)
    extra, logs = method.plugins["prosl"].extra_loss(method, batch)
    assert {"kl", "sem", "sem_prime"} <= set(logs)  # phase 2
    return loss + extra


@pytest.mark.parametrize("method_name", ["skeletonclr", "hico"])
def test_prosl_loss_falls_on_a_fixed_batch_in_phase_two(method_name):
    method = prosl_method(method_name, encoder="hico" if method_name == "hico" else "stgcn", samples=24,
                          extra=["plugins.prosl.codebook_size=3", "plugins.prosl.coefficient_samples=8"])
    g = torch.Generator().manual_seed(0)
    data = torch.randn(24, 3, 1, 25, 2, generator=g) * 0.3 + torch.randn(24, 3, 24, 25, 2, generator=g).cumsum(2) * 0.05
    lengths = torch.full((24,), 24)
    batch = {"x": data[:8], "index": torch.arange(8), "length": lengths[:8]}
    with torch.no_grad():  # negatives: the keys of the other training sequences, in every bank
        for start in (8, 16):
            method.training_loss({"x": data[start:start + 8], "index": torch.arange(start, start + 8),
                                  "length": lengths[:8]})
            method.after_optimizer_step()
    method.plugins["prosl"].refresh(method, data, lengths)  # the codebook of the 24 training sequences
    assert (method.plugins["prosl"].codebook.assignments >= 0).all()
    before, after = losses_on_a_fixed_batch(method, batch, steps=16, total_loss=_total_loss)
    print(method_name, "prosl loss before", before, "after", after)
    assert after < before - 0.5, (before, after)


def _metrics(run_dir):
    rows = []
    for path in sorted(run_dir.glob("logs/*/metrics.csv")):
        with open(path) as fh:
            rows += list(csv.DictReader(fh))
    return rows


def test_prosl_codebook_schedule_logs_and_exact_resume(tiny_dataset, tmp_path):
    extra = {"plugins.prosl.enabled": "true", "plugins.prosl.start_epoch": 2, "plugins.prosl.codebook_size": 5,
             "plugins.prosl.coefficient_samples": 8, "trainer.epochs": 3, "optim.milestones": [2]}

    def cfg(name, **more):
        return load_config(None, tiny_overrides(tiny_dataset, tmp_path / name, **{**extra, **more}))

    straight = pretrain(cfg("straight"), command=[])
    pretrain(cfg("cut"), command=[], max_epochs=2)  # stops after epoch 1, whose end builds the codebook
    cut_state = torch.load(tmp_path / "cut" / LAST_CHECKPOINT, weights_only=False)["state_dict"]
    assert bool(cut_state["plugins.prosl.codebook.ready"])
    resumed = pretrain(cfg("cut", resume="true"), command=[])
    a = torch.load(straight / LAST_CHECKPOINT, weights_only=False)["state_dict"]
    b = torch.load(resumed / LAST_CHECKPOINT, weights_only=False)["state_dict"]
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a), \
        [k for k in a if not torch.equal(a[k], b[k])]
    assert (a["plugins.prosl.codebook.assignments"] >= 0).all()  # every training sample has a cluster
    rows = _metrics(straight)
    sem_epochs = sorted({int(r["epoch"]) for r in rows if r.get("train/prosl/sem")})
    kl_epochs = sorted({int(r["epoch"]) for r in rows if r.get("train/prosl/kl")})
    assert sem_epochs == [2] and kl_epochs == [0, 1, 2]  # eq. 11 before start_epoch, eq. 12 from it
    refresh = [r for r in rows if r.get("prosl/refresh_kmeans_s")]
    assert sorted(int(r["epoch"]) for r in refresh) == [1, 2]  # built at the end of epoch 1, then refreshed


def test_prosl_on_hico_with_the_epochs_keys(tiny_dataset, tmp_path):
    overrides = [o for o in tiny_overrides(tiny_dataset, tmp_path / "hico") if not o.startswith("model.stgcn.")]
    overrides += ["model.hico.hidden_size=8", "model.hico.num_layers=1", "model.hico.granularities=2",
                  "plugins.prosl.enabled=true", "plugins.prosl.start_epoch=1", "plugins.prosl.codebook_size=4",
                  "plugins.prosl.features=epoch", "plugins.prosl.coefficient_samples=4", "trainer.epochs=2"]
    run = pretrain(load_config(None, overrides, method="hico"), command=[])
    state = torch.load(run / LAST_CHECKPOINT, weights_only=False)["state_dict"]
    assigned = state["plugins.prosl.codebook.assignments"]
    # drop_last leaves a few samples out of each epoch: those have no cluster until they are seen
    assert (assigned >= 0).float().mean() > 0.8 and assigned.max() < 4
    rows = _metrics(run)
    assert any(r.get("train/prosl/sem") for r in rows)
