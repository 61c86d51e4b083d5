"""A tiny pretrained run shared by the evaluation tests (one epoch of SkeletonCLR on the tiny dataset)."""

from __future__ import annotations

import pytest

from skelssl.config import load_config
from skelssl.train import pretrain
from tests.conftest import tiny_overrides


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    pretrain(load_config(None, tiny_overrides(tiny_dataset, run_dir, **{"trainer.epochs": 1})), command=[])
    return run_dir
