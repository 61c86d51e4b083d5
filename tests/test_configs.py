"""Every shipped config loads: no typo in a key, every method and stream known."""

from __future__ import annotations

from pathlib import Path

import pytest

from skelssl.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*/*.yaml"))


def test_configs_exist_for_every_dataset_split_method_and_stream():
    names = {(p.parent.name, p.stem) for p in CONFIGS}
    for split in ("ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset", "synthetic-xsub"):
        for stream in ("joint", "motion", "bone"):
            assert (split, f"skeletonclr-{stream}") in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_loads(path):
    cfg = load_config(path)
    dataset_split = path.parent.name
    method, stream = path.stem.rsplit("-", 1)
    assert cfg.method.name == method and cfg.data.stream == stream
    assert dataset_split.endswith(cfg.data.split)
