"""The online KNN monitor: it leaves training bit-identical, and it measures what `evaluate knn` measures."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from skelssl.cli import main
from skelssl.evaluation import evaluate_checkpoints
from skelssl.evaluation.monitor import evenly_spaced
from tests.conftest import tiny_overrides


def test_evenly_spaced_rows():
    assert evenly_spaced(10, 4).tolist() == [0, 3, 6, 9]
    assert evenly_spaced(5, None).tolist() == [0, 1, 2, 3, 4]
    assert evenly_spaced(5, 9).tolist() == [0, 1, 2, 3, 4]


def _pretrain(root, run_dir, every: int) -> dict:
    # dropout on: a monitor pass in train mode would draw masks from the global RNG and shift later steps
    assert main(["pretrain", *tiny_overrides(root, run_dir, **{
        "trainer.epochs": 2, "trainer.batch_size": 24, "model.stgcn.dropout": 0.5,
        "monitor.knn_every_n_epochs": every})]) == 0
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory):
    base = tmp_path_factory.mktemp("monitor")
    return {"on": (base / "on", _pretrain(tiny_dataset, base / "on", every=1)),
            "off": (base / "off", _pretrain(tiny_dataset, base / "off", every=0))}


def test_monitor_leaves_training_bit_identical(runs):
    (on_dir, on), (off_dir, off) = runs["on"], runs["off"]
    assert on["state_dict"].keys() == off["state_dict"].keys()
    for name, tensor in on["state_dict"].items():  # weights, BatchNorm statistics, the queue
        assert torch.equal(tensor, off["state_dict"][name]), name
    assert torch.equal(on["skelssl"]["rng"]["torch"], off["skelssl"]["rng"]["torch"])
    assert torch.equal(on["skelssl"]["rng"]["augment"], off["skelssl"]["rng"]["augment"])
    # ... and it did run, after each of the two epochs, logged beside the loss
    history = json.loads((on_dir / "monitor.json").read_text())
    assert [entry["epoch"] for entry in history] == [1.0, 2.0]
    assert all("knn_1nn_cosine" in e and "train_loss_epoch" in e and e["monitor_seconds"] > 0 for e in history)
    assert (on_dir / "monitor.png").stat().st_size > 5000 and not (off_dir / "monitor.json").exists()
    rows = list(csv.DictReader(open(next(on_dir.glob("logs/version_*/metrics.csv")))))
    logged = [r for r in rows if r.get("monitor/knn_1nn_cosine")]
    assert len(logged) == 2 and all(r.get("monitor/share_of_epoch") for r in logged)


def test_monitor_measures_what_evaluate_knn_measures(runs):
    on_dir, _ = runs["on"]
    last = json.loads((on_dir / "monitor.json").read_text())[-1]
    records = evaluate_checkpoints([on_dir / "checkpoints" / "last.ckpt"], ["knn"], device=torch.device("cpu"))
    for record in records:
        assert last[f"knn_{record.metric}"] * 100 == pytest.approx(record.value, abs=0.006), record.metric
