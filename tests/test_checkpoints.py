"""Checkpoints a kill cannot erase, and checkpoints that cannot run code.

The kill test runs a real pretraining process, kills it with SIGKILL in the middle of its third epoch (after
two epoch-end checkpoints), resumes it, and compares the final weights with an uninterrupted run's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.cli import main
from skelssl.config import load_config
from skelssl.errors import UserError
from skelssl.train import pretrain
from tests.conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[1]

# A pretraining process that kills itself (SIGKILL: no handler, no cleanup) at batch 1 of epoch 2.
KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import lightning as L
    from skelssl.config import load_config
    from skelssl.train import pretrain

    class KillMidEpoch(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.current_epoch == 2 and batch_idx == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    pretrain(load_config(None, sys.argv[1:]), command=[], callbacks=[KillMidEpoch()])
""")


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / LAST_CHECKPOINT, map_location="cpu", weights_only=True)


def test_a_killed_run_leaves_its_last_epoch_and_resumes_to_the_same_weights(tiny_dataset, tmp_path):
    extra = {"trainer.epochs": 4, "optim.milestones": [3]}
    killed_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, *tiny_overrides(tiny_dataset, killed_dir, **extra)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    saved = _weights(killed_dir)
    assert saved["epoch"] == 1  # epochs 0 and 1 completed; the kill came in epoch 2
    assert not list((killed_dir / "checkpoints").glob("*.tmp"))

    pretrain(load_config(None, tiny_overrides(tiny_dataset, killed_dir, resume="true", **extra)), command=[])
    straight_dir = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "straight", **extra)),
                            command=[])
    resumed, straight = _weights(killed_dir), _weights(straight_dir)
    assert resumed["global_step"] == straight["global_step"] > saved["global_step"]
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert resumed["lr_schedulers"] == straight["lr_schedulers"]


def test_every_epoch_end_writes_last_checkpoint(tiny_dataset, tmp_path):
    """The epoch-end checkpoint is there while the run goes on (seen from a callback in the next epoch)."""
    import lightning as L

    seen = []

    class Look(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            path = tmp_path / "run" / LAST_CHECKPOINT
            seen.append(torch.load(path, weights_only=True)["epoch"] if path.is_file() else None)

    pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{"trainer.epochs": 3})),
             command=[], callbacks=[Look()])
    assert seen == [None, 0, 1]


class _WritesAFileWhenUnpickled:
    """Unpickling calls Path.touch(target): the kind of code a crafted checkpoint can run."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(capsys, tiny_dataset, tmp_path):
    run_dir = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{"trainer.epochs": 1})),
                       command=[])
    ckpt = torch.load(run_dir / LAST_CHECKPOINT, map_location="cpu", weights_only=True)
    marker = tmp_path / "code-ran"
    ckpt["skelssl"]["payload"] = _WritesAFileWhenUnpickled(marker)
    torch.save(ckpt, run_dir / LAST_CHECKPOINT)

    assert main(["evaluate", "knn", "--checkpoint", str(run_dir / LAST_CHECKPOINT)]) == 2
    assert "does not load such files" in capsys.readouterr().err
    assert main(["pretrain", *tiny_overrides(tiny_dataset, run_dir, resume="true", **{"trainer.epochs": 2})]) == 2
    assert "does not load such files" in capsys.readouterr().err
    assert not marker.exists()


# A process killed (SIGKILL) in the middle of epoch 1, with checkpoints written after every optimiser step.
KILLED_MID_EPOCH = textwrap.dedent("""
    import os, signal, sys
    import lightning as L
    from skelssl.config import load_config
    from skelssl.train import pretrain

    class KillMidEpoch(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.current_epoch == 1 and batch_idx == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    pretrain(load_config(None, sys.argv[1:]), command=[], callbacks=[KillMidEpoch()])
""")


def test_a_run_killed_mid_epoch_resumes_from_its_mid_epoch_checkpoint_bit_for_bit(tiny_dataset, tmp_path, capsys):
    extra = {"trainer.epochs": 3, "optim.milestones": [2], "trainer.checkpoint_every_minutes": 1e-9,
             "trainer.deterministic": "true"}
    killed_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_EPOCH, *tiny_overrides(tiny_dataset, killed_dir, **extra)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    saved = _weights(killed_dir)
    assert saved["epoch"] == 1 and saved["skelssl"]["data_position"] == {"epoch": 1, "batches": 2}
    assert (killed_dir / "checkpoints" / "previous.ckpt").is_file()  # the step before, kept

    pretrain(load_config(None, tiny_overrides(tiny_dataset, killed_dir, resume="true", **extra)), command=[])
    assert f"step {saved['global_step']}, epoch 1 after 2 batches" in capsys.readouterr().out
    straight_dir = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "straight", **extra)),
                            command=[])
    resumed, straight = _weights(killed_dir), _weights(straight_dir)
    assert resumed["global_step"] == straight["global_step"]
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    for k, state in straight["optimizer_states"][0]["state"].items():
        assert torch.equal(state["momentum_buffer"], resumed["optimizer_states"][0]["state"][k]["momentum_buffer"])


def test_a_damaged_last_checkpoint_falls_back_to_the_previous_one(tiny_dataset, tmp_path, capsys):
    run_dir = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run")), command=[])
    last = run_dir / LAST_CHECKPOINT
    previous = run_dir / "checkpoints" / "previous.ckpt"
    step_of_previous = torch.load(previous, weights_only=True)["global_step"]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])  # a copy cut short
    pretrain(load_config(None, tiny_overrides(tiny_dataset, run_dir, resume="true", **{"trainer.epochs": 3})),
             command=[])
    out = capsys.readouterr().out
    assert f"'{last}' is not a readable checkpoint" in out and "resuming from the checkpoint before it" in out
    assert f"from previous.ckpt: step {step_of_previous}" in out
    assert _weights(run_dir)["epoch"] == 2  # it went on and finished
    last.write_bytes(b"")
    previous.write_bytes(b"junk")
    assert main(["pretrain", *tiny_overrides(tiny_dataset, run_dir, resume="true")]) == 2
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "last.ckpt" in err and "previous.ckpt" in err


def test_resume_applies_what_it_can_and_refuses_the_rest(tiny_dataset, tmp_path, capsys):
    run_dir = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{"trainer.epochs": 1})),
                       command=[])
    # From the command line, resume starts from the run's own settings: nothing else needs repeating.
    assert main(["pretrain", "resume=true", f"run_dir={run_dir}", "optim.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "cannot change optim.lr: 0.1 in the run, 0.5 asked" in err
    assert main(["pretrain", "resume=true", f"run_dir={run_dir}", "trainer.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "changed on resume: trainer.epochs 1 -> 2" in out
    assert "trainer.epochs 1 -> 2" in (run_dir / "changes.log").read_text()
    assert _weights(run_dir)["epoch"] == 1  # two epochs: 0 and 1
    assert "epochs: 2" in (run_dir / "config.yaml").read_text()


def test_checkpoints_carry_version_format_and_config_hash(tiny_dataset, tmp_path, capsys):
    import skelssl
    from skelssl.checkpoints import CHECKPOINT_FORMAT, config_hash, read_checkpoint

    cfg = load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{"trainer.epochs": 1}))
    run_dir = pretrain(cfg, command=[])
    info = _weights(run_dir)["skelssl"]
    assert info["version"] == skelssl.__version__ and info["format"] == CHECKPOINT_FORMAT
    assert info["config_hash"] == config_hash(cfg) and len(info["config_hash"]) == 16
    ckpt = torch.load(run_dir / LAST_CHECKPOINT, weights_only=True)
    ckpt["skelssl"]["format"], ckpt["skelssl"]["version"] = CHECKPOINT_FORMAT + 1, "9.0"
    torch.save(ckpt, tmp_path / "future.ckpt")
    with pytest.raises(UserError, match=r"written by skelssl 9.0 in checkpoint format 3.*upgrade skelssl"):
        read_checkpoint(tmp_path / "future.ckpt")
    # An earlier format: flat model.* keys and no format number; it is migrated on reading.
    ckpt["skelssl"].pop("format")
    model = ckpt["hyper_parameters"]["cfg"]["model"]
    model.update(model.pop("stgcn"))
    torch.save(ckpt, tmp_path / "old.ckpt")
    migrated = read_checkpoint(tmp_path / "old.ckpt")["hyper_parameters"]["cfg"]["model"]
    assert migrated["stgcn"]["hidden_channels"] == 4 and "hidden_channels" not in migrated
