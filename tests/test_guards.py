"""Values that would train or evaluate silently wrong (issue 21): coordinates too large for float32 statistics,
BatchNorm statistics or weights that became non-finite with a finite loss, checkpoints holding NaN."""

from __future__ import annotations

import json
import shutil

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from skelssl.checkpoints import LAST_CHECKPOINT, PREVIOUS_CHECKPOINT
from skelssl.config import load_config
from skelssl.data.dataset import SkeletonDataset
from skelssl.data.prepared import PreparedDatasetError
from skelssl.errors import NonFiniteError
from skelssl.train import pretrain
from tests.conftest import run_cli, tiny_overrides



def test_the_coordinate_limit_keeps_a_batchs_variance_finite():
    """Closed form: values ±L have variance L² (here 1e30 at the limit, finite in float32); at ±1e30 the
    variance (1e60) is not, and the training-mode BatchNorm's running variance becomes inf."""
    signs = torch.ones(1024, 1, 1024)
    signs[::2] = -1
    for scale, finite in ((1e15, True), (1e30, False)):
        bn = nn.BatchNorm1d(1, momentum=1.0).train()
        bn(signs * scale)
        assert bool(torch.isfinite(bn.running_var).all()) is finite
        if finite:
            assert bn.running_var.item() == pytest.approx(1e30, rel=1e-3)


@pytest.fixture
def huge_copy(tiny_dataset, tmp_path):
    root = tmp_path / "huge"
    shutil.copytree(tiny_dataset, root)
    meta = json.loads((root / "meta.json").read_text())
    victim = meta["splits"]["xsub"]["train"][2]
    data = np.load(root / "data.npy", mmap_mode="r+")
    data[victim] *= np.float32(1e30)
    data.flush()
    del data
    return root, victim, meta["sample_names"][victim]


@pytest.mark.parametrize("in_memory", [True, False])
def test_coordinates_beyond_the_limit_are_refused_at_load(huge_copy, in_memory):
    root, victim, name = huge_copy
    with pytest.raises(PreparedDatasetError, match=rf"sample {victim} \('{name}'\) holds a value of .*e\+30, "
                                                   r"beyond ±1e\+15"):
        dataset = SkeletonDataset(root, "xsub", "train", in_memory=in_memory)
        dataset.array() if not in_memory else None


def test_pretrain_and_info_on_coordinates_beyond_the_limit(huge_copy, tmp_path, capsys):
    root, _, name = huge_copy
    code, _, err = run_cli(capsys, ["pretrain", *tiny_overrides(root, tmp_path / "run")])
    assert code == 2 and f"('{name}') holds a value of" in err and not (tmp_path / "run").exists()
    code, out, _ = run_cli(capsys, ["info", str(root)])
    assert code == 0 and f"the first, '{name}', holds a value of" in out


def test_prepare_refuses_coordinates_beyond_the_limit(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(4, 6, 25, 3)).astype(np.float32)
    x[1] *= np.float32(1e30)
    np.savez(tmp_path / "rec.npz", data=x, labels=np.array([0, 1, 0, 1]))
    argv = ["prepare", "custom", "--arrays", str(tmp_path / "rec.npz"), "--layout", "ntu25", "--out",
            str(tmp_path / "out"), "--normalize", "off", "--no-progress"]
    code, _, err = run_cli(capsys, argv)
    assert code == 2 and "sample 1: NaN or infinite coordinate (or one beyond ±1e+15)" in err
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli(capsys, argv + ["--skip-bad"])
    assert code == 0, err
    assert len(json.loads((tmp_path / "out" / "meta.json").read_text())["labels"]) == 3


class _ScaleBatch(L.Callback):
    """Multiply the input of one (epoch, batch) step by 1e30: a finite batch whose spread float32 cannot hold."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == self.step:
            batch["x"].mul_(1e30)


def test_a_batchnorm_statistic_gone_infinite_stops_the_run_though_the_loss_is_finite(tiny_dataset, tmp_path):
    cfg = load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{"trainer.epochs": 2}))
    with pytest.raises(NonFiniteError, match=r"at epoch 1, step \d+ \(batch 1\), the BatchNorm statistic "
                                             r"'encoder_q\.data_bn\.running_var' became infinite or NaN"):
        pretrain(cfg, command=[], callbacks=[_ScaleBatch((1, 1))])
    kept = torch.load(tmp_path / "run" / LAST_CHECKPOINT, weights_only=True)
    assert kept["epoch"] == 0 and all(torch.isfinite(v).all() for v in kept["state_dict"].values())


def test_with_nonfinite_skip_such_a_step_is_skipped_and_its_statistics_undone(tiny_dataset, tmp_path):
    cfg = load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{
        "trainer.epochs": 2, "trainer.nonfinite": "skip"}))
    run_dir = pretrain(cfg, command=[], callbacks=[_ScaleBatch((0, 1))])
    state = torch.load(run_dir / LAST_CHECKPOINT, weights_only=True)
    assert state["skelssl"]["skipped_steps"] == 1
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


class _PoisonWeight(L.Callback):
    """Set a weight to inf after the gradients were checked: the optimiser step leaves it non-finite."""

    def on_before_optimizer_step(self, trainer, module, optimizer):
        if trainer.current_epoch == 0 and trainer.fit_loop.epoch_loop.batch_idx == 2:
            with torch.no_grad():
                module.projector_q[0].weight[0, 0] = float("inf")


@pytest.mark.parametrize("nonfinite", ["stop", "skip"])
def test_a_weight_gone_infinite_in_the_optimiser_step_stops_the_run(tiny_dataset, tmp_path, nonfinite):
    cfg = load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{
        "trainer.epochs": 1, "trainer.nonfinite": nonfinite}))
    with pytest.raises(NonFiniteError, match=r"the weight 'projector_q\.0\.weight' became infinite or NaN in the "
                                             "optimiser step"):
        pretrain(cfg, command=[], callbacks=[_PoisonWeight()])



def test_a_checkpoint_with_a_nan_tensor_is_refused_naming_it(finished_run, tmp_path, capsys):
    state = torch.load(finished_run / LAST_CHECKPOINT, weights_only=True)
    state["state_dict"]["encoder_q.blocks.3.tcn.2.weight"][0] = float("nan")
    torch.save(state, tmp_path / "nan.ckpt")
    code, _, err = run_cli(capsys, ["evaluate", "knn", "--checkpoint", str(tmp_path / "nan.ckpt"),
                                 "--out", str(tmp_path / "eval")])
    assert code == 2 and "the tensor 'encoder_q.blocks.3.tcn.2.weight' holds NaN or infinite values" in err
    assert not (tmp_path / "eval" / "results.json").exists()
    run_dir = tmp_path / "run"  # resuming: a NaN last.ckpt falls back to previous.ckpt
    shutil.copytree(finished_run, run_dir)
    torch.save(state, run_dir / LAST_CHECKPOINT)
    from skelssl.checkpoints import resume_checkpoint

    assert resume_checkpoint(run_dir, quiet=True) == run_dir / PREVIOUS_CHECKPOINT


def test_info_on_unusable_values_prints_no_library_warning_and_no_statistics_of_them(huge_copy, capsys):
    root, _, _ = huge_copy
    data = np.load(root / "data.npy", mmap_mode="r+")
    data[0, 0, 0, 0, 0] = np.inf
    data.flush()
    del data
    code, out, err = run_cli(capsys, ["info", str(root)])
    assert code == 0 and "WARNING: 2 sample(s) hold NaN, infinite or unusably large values" in out
    assert "RuntimeWarning" not in err and "invalid value" not in err
    assert "warning:" not in out  # the normalisation warnings read the usable samples only (these are fine)
