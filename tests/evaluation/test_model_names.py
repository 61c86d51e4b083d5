"""Results name a run's model by its method, its enabled plug-ins and a foreign encoder, so that runs that
differ in either never share a name (a ProSL run's records used to read "skeletonclr", and one --out
results.json kept only one of the two)."""

from __future__ import annotations

import pytest

from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.cli import main
from skelssl.config import load_config, model_label
from skelssl.evaluation import read_results
from skelssl.train import pretrain
from tests.conftest import tiny_overrides


@pytest.mark.parametrize("method, encoder, overrides, expected", [
    ("skeletonclr", None, [], "skeletonclr"),
    ("prosl-skeletonclr", None, [], "prosl-skeletonclr"),
    ("hico", None, [], "hico"),  # HiCo's own encoder is not named
    ("prosl-hico", None, [], "prosl-hico"),
    ("a2mc", "bigru", [], "a2mc@bigru"),
    ("a2mc", None, [], "a2mc"),
    ("skeletonclr", "bilstm", [], "skeletonclr@bilstm"),
    ("aimclr", None, ["plugins.prosl.enabled=true"], "prosl-aimclr"),
])
def test_model_label(method, encoder, overrides, expected):
    assert model_label(load_config(None, overrides, method=method, encoder=encoder)) == expected


def test_evaluate_keeps_a_prosl_run_apart_from_its_base(tiny_run, tiny_dataset, tmp_path):
    prosl_dir = tmp_path / "prosl"
    pretrain(load_config(None, tiny_overrides(tiny_dataset, prosl_dir, **{
        "trainer.epochs": 1, "plugins.prosl.enabled": "true", "plugins.prosl.start_epoch": 5,
        "plugins.prosl.codebook_size": 3})), command=[])
    out = tmp_path / "both"
    assert main(["evaluate", "knn", "--no-progress", "--checkpoint", str(tiny_run / LAST_CHECKPOINT),
                 str(prosl_dir / LAST_CHECKPOINT), "--out", str(out)]) == 0
    models = {record.model for record in read_results(out)}
    assert models == {"skeletonclr", "prosl-skeletonclr"}
