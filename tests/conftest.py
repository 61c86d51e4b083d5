"""Shared fixtures: tiny synthetic prepared datasets and tiny configs (CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors on a busy 2-core machine: OpenMP contention costs more than it gains.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A small synthetic prepared dataset: 16 frames, few samples per class."""
    from skelssl.data.synthetic import prepare_synthetic

    root = tmp_path_factory.mktemp("data") / "synthetic"
    prepare_synthetic(root, num_samples_per_class_per_subject=2, num_subjects=4, num_train_subjects=3,
                      frames=16, seed=0)
    return root


def tiny_overrides(root: Path, run_dir: Path, **extra: object) -> list[str]:
    items = {
        "data.root": str(root),
        "run_dir": str(run_dir),
        "model.stgcn.hidden_channels": 4,
        "model.stgcn.out_channels": 16,
        "model.stgcn.dropout": 0.0,
        "method.queue_size": 64,
        "method.feature_dim": 8,
        "method.momentum": 0.9,
        "trainer.epochs": 2,
        "trainer.batch_size": 8,
        "trainer.progress_bar": False,
        "trainer.accelerator": "cpu",
        "trainer.devices": 1,
        "optim.milestones": [1],
        "eval.linear.epochs": 5,
    }
    items.update(extra)
    return [f"{k}={v}" for k, v in items.items()]


def staging_left(folder: Path) -> list[str]:
    """The hidden staging folders (skelssl.outputs) a prepare left in `folder`: none after it ends."""
    from skelssl.outputs import is_staging_name

    return sorted(p.name for p in Path(folder).iterdir() if is_staging_name(p.name))


def write_earlier_dataset(out: Path) -> None:
    """A tiny prepared dataset at `out`, as an earlier `skelssl prepare` into the same --out leaves one."""
    import numpy as np

    from skelssl.data.prepared import PreparedMeta, write_prepared
    from skelssl.skeleton.layouts import NTU25

    write_prepared(out, np.ones((1, 3, 2, 25, 1), np.float32), PreparedMeta(
        dataset="earlier", layout=NTU25, class_names=["a"], labels=np.zeros(1, np.int64), lengths=np.array([2]),
        sample_names=["s"], splits={"all": {"train": np.array([0]), "test": np.zeros(0, np.int64)}}))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` by relative path, with its bytes (to show a folder untouched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """`skelssl ARGV` in this process: (exit code, stdout, stderr)."""
    from skelssl.cli import main

    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="session")
def finished_run(tiny_dataset, tmp_path_factory) -> Path:
    """A tiny run that trained its 2 epochs (tiny_overrides); copy it before changing it."""
    from skelssl.cli import main

    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert main(["pretrain", *tiny_overrides(tiny_dataset, run_dir)]) == 0
    return run_dir
