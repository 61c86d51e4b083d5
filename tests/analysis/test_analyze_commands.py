"""`skelssl analyze` end to end on a tiny ActCLR run: pictures, clustering, spectrum, strength, segmentation."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from skelssl.analysis import strength
from skelssl.cli import main
from skelssl.data.dataset import SkeletonDataset
from skelssl.skeleton.layouts import NTU25
from tests.analysis.test_spectrum import blobs_on_sphere
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
    # the trained tiny run's features all but coincide: what the command records is checked below on embeddings
    # whose κ is known, and what it embeds in test_the_spectrum_embeds_the_test_part_in_eval_mode
    assert {m for _, m in spectrum} == {"kappa", "diameter", "centre_distance"}
    assert (actclr_run / "analysis" / "spectrum_actclr.png").is_file()


def test_the_spectrum_records_the_cluster_count_and_diameter_of_what_it_embeds(actclr_run, tmp_path, monkeypatch):
    """Four tight blobs: κ 4 at ε 0.1, τ 0.1 (ActCLR has no InfoNCE temperature), and each class's diameter the
    largest distance between two of its points, computed here with numpy."""
    z, labels = blobs_on_sphere(np.eye(4), per_class=6)
    seen = {}

    def fake_embed(method, device, max_nodes=1000):
        seen["max_nodes"] = max_nodes
        return torch.from_numpy(z).float(), labels

    monkeypatch.setattr(strength, "embed_test_part", fake_embed)
    ckpt = str(actclr_run / "checkpoints" / "last.ckpt")
    assert main(["analyze", "spectrum", "--checkpoint", ckpt, "--max-nodes", "24", "--out", str(tmp_path)]) == 0
    recorded = _records(tmp_path, "spectrum")
    assert seen["max_nodes"] == 24 and recorded[("actclr", "kappa")] == 4
    # at ε 1.5 every eigenvalue counts (those of 4 near-complete 6-node blocks are 0 and about 6/5)
    assert main(["analyze", "spectrum", "--checkpoint", ckpt, "--epsilon", "1.5", "--out", str(tmp_path / "e")]) == 0
    assert _records(tmp_path / "e", "spectrum")[("actclr", "kappa")] == 24
    diameters = [max(np.linalg.norm(a - b) for a in z[labels == k] for b in z[labels == k]) for k in range(4)]
    assert recorded[("actclr", "diameter")] == pytest.approx(np.mean(diameters), abs=0.006)
    assert recorded[("actclr", "centre_distance")] == pytest.approx(np.sqrt(2), abs=0.01)  # orthogonal centres


class _Projection(torch.nn.Module):
    def __init__(self, joints: int):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(joints)
        self.norm.running_mean.fill_(0.5)
        self.norm.running_var.fill_(4.0)

    def forward(self, x):  # (N, C, T, V, M) -> (N, V): per-joint means, then the input BatchNorm
        return self.norm(x.mean(dim=(1, 2, 4)))


def test_the_spectrum_embeds_the_test_part_in_eval_mode(tiny_dataset):
    """z = normalise(projector(encoder(x))) of the test sequences, with the running statistics (eval mode), for
    evenly spaced rows: computed by hand from the stored arrays."""
    test = SkeletonDataset(tiny_dataset, "xsub", "test")
    encoder = _Projection(25).train()
    scale = torch.nn.Linear(25, 25, bias=False)
    scale.weight.data = torch.diag(torch.arange(1.0, 26.0))  # joint v scaled by v + 1
    method = SimpleNamespace(backbone=encoder, projector_q=scale, layout=NTU25,
                             cfg=OmegaConf.create({"data": {"root": str(tiny_dataset), "split": "xsub",
                                                            "stream": "joint"}, "eval": {"batch_size": 4}}))
    z, labels = strength.embed_test_part(method, torch.device("cpu"), max_nodes=3)
    rows = [0, int(np.rint((len(test) - 1) / 2)), len(test) - 1]  # first, middle, last
    x = np.asarray(test.array())[rows]
    by_hand = np.arange(1.0, 26.0) * (x.mean(axis=(1, 2, 4)) - 0.5) / np.sqrt(4.0 + 1e-5)
    by_hand /= np.linalg.norm(by_hand, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(z), by_hand, rtol=1e-4, atol=1e-5)
    assert list(labels) == list(test.labels[rows])


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
