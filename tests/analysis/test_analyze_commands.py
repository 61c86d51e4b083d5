"""`skelssl analyze` end to end on a tiny ActCLR run: pictures, clustering, spectrum, strength, segmentation."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from skelssl.cli import main
from skelssl.data.synthetic_untrimmed import prepare_synthetic_untrimmed
from tests.conftest import SHARED, tiny_overrides

PKU_SAMPLE = SHARED / "data" / "pkummd_sample" / "A10N08-L.txt"


@pytest.fixture(scope="module")
def actclr_run(tiny_dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("analyze") / "run"
    assert main(["pretrain", *tiny_overrides(tiny_dataset, run_dir, **{
        "method.name": "actclr", "trainer.epochs": 1, "trainer.batch_size": 24, "optim.name": "adam",
        "optim.lr": 1e-3})]) == 0
    return run_dir


def _records(run_dir, protocol):
    return {(r["model"], r["metric"]): r["value"] for r in json.loads((run_dir / "results.json").read_text())
            if r["protocol"] == protocol}


def test_actionlet_pictures(actclr_run):
    ckpt = str(actclr_run / "checkpoints" / "last.ckpt")
    assert main(["analyze", "actionlets", "--checkpoint", ckpt, "--limit", "6"]) == 0
    out = actclr_run / "analysis"
    (gif,) = out.glob("actionlet_*.gif")
    with Image.open(gif) as image:
        assert image.n_frames == 16  # one per frame of the tiny dataset's sequences
    for name in ("actionlet_heatmaps.png", "actionlet_heatmaps_truth.png", "average_motion.png"):
        assert (out / name).stat().st_size > 5000


def test_clustering_and_spectrum_records(actclr_run):
    ckpt = str(actclr_run / "checkpoints" / "last.ckpt")
    assert main(["analyze", "tsne", "--checkpoint", ckpt, "--with-random-init"]) == 0
    clustering = _records(actclr_run, "clustering")
    assert {m for _, m in clustering} == {"nmi", "davies_bouldin"} and len(clustering) == 4
    assert main(["analyze", "spectrum", "--checkpoint", ckpt, "--max-nodes", "30"]) == 0
    spectrum = _records(actclr_run, "spectrum")
    assert 1 <= spectrum[("actclr", "kappa")] <= 30
    assert (actclr_run / "analysis" / "spectrum_actclr.png").is_file()


def test_strength_sweep_trains_one_run_per_value(actclr_run, tmp_path):
    ckpt = str(actclr_run / "checkpoints" / "last.ckpt")
    assert main(["analyze", "strength", "--checkpoint", ckpt, "--vary", "augment.shear_amplitude=0.0,1.5",
                 "--epochs", "1", "--out", str(tmp_path), "--max-nodes", "30"]) == 0
    sweep = json.loads((tmp_path / "strength.json").read_text())
    assert [r["value"] for r in sweep] == [0.0, 1.5]
    for r in sweep:  # each value was its own pretraining run, with that value in its config
        saved = (tmp_path / f"augment.shear_amplitude={r['label']}" / "config.yaml").read_text()
        assert f"shear_amplitude: {r['value']}" in saved
    for name in ("strength_spectrum.png", "strength_kappa.png", "strength_accuracy.png"):
        assert (tmp_path / name).is_file()
    assert ("actclr@augment.shear_amplitude=1.5", "kappa") in _records(tmp_path, "spectrum")


def test_segmentation_pictures_and_a_raw_pku_sequence(actclr_run, tmp_path):
    untrimmed = prepare_synthetic_untrimmed(tmp_path / "untrimmed", num_sequences_per_subject=2, num_subjects=3,
                                            num_train_subjects=2, actions_per_sequence=(2, 3), clip_frames=16)
    ckpt = str(actclr_run / "checkpoints" / "last.ckpt")
    raw = ["--sequence", str(PKU_SAMPLE)] if PKU_SAMPLE.is_file() else []
    assert main(["analyze", "segmentation", "--checkpoint", ckpt, "--out", str(tmp_path / "out"), *raw,
                 f"data.root={untrimmed}", "eval.seg.epochs=2"]) == 0
    assert {m for _, m in _records(tmp_path / "out", "segmentation")} == {"acc", "macc", "fwiou", "miou"}
    assert (tmp_path / "out" / "segmentation_actclr.png").is_file()
    if raw:
        assert (tmp_path / "out" / "segmentation_actclr_A10N08-L.png").is_file()
