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

import torch

from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.cli import main
from skelssl.config import load_config
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
