"""Actionlet metrics against hand-counted masks; the analyze command end to end on a tiny ActCLR run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skelssl.analysis.actionlets import actionlet_scores, ranking_auc
from skelssl.cli import main
from tests.conftest import tiny_overrides


def test_actionlet_scores_hand_counted():
    truth = np.zeros((1, 2, 4), dtype=bool)
    truth[0, :, :2] = True  # 4 true cells of 8
    pred = np.zeros((1, 2, 4), dtype=bool)
    pred[0, 0, :3] = True  # 3 predicted, 2 of them true
    s = actionlet_scores(pred, truth)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 4)
    assert s["iou"] == pytest.approx(2 / 5) and s["chance_precision"] == pytest.approx(0.5)
    # (sequence, joint): joints 0-2 predicted, 0-1 true; (sequence, frame): frame 0 predicted, both true
    assert s["joint_precision"] == pytest.approx(2 / 3) and s["frame_precision"] == pytest.approx(1.0)
    early = np.zeros_like(truth)
    early[0, 0, :2] = True  # the action: joints 0-1 in frame 0 only
    late = np.zeros_like(pred)
    late[0, 1, :2] = True  # the right joints in the wrong frame: space right, time wrong
    assert actionlet_scores(late, early)["joint_precision"] == pytest.approx(1.0)
    assert actionlet_scores(late, early)["frame_precision"] == pytest.approx(0.0)
    assert actionlet_scores(late, early)["joint_chance"] == pytest.approx(2 / 4)  # joints 0-1 of 4
    assert actionlet_scores(late, early)["frame_chance"] == pytest.approx(1 / 2)  # frame 0 of 2
    with pytest.raises(ValueError):
        actionlet_scores(pred[:, :1], truth)


def test_ranking_auc_hand_counted():
    # true cells score 0.9 and 0.4, the others 0.8, 0.1 and 0.4: of the 6 (true, other) pairs, 0.9 beats all
    # three, 0.4 beats 0.1, ties 0.4 (half) and loses to 0.8 -> (3 + 1 + 0.5) / 6
    scores = np.array([[[0.9, 0.8, 0.1, 0.4, 0.4]]])
    truth = np.array([[[True, False, False, True, False]]])
    assert ranking_auc(scores, truth) == pytest.approx(4.5 / 6)
    assert ranking_auc(1 - scores, truth) == pytest.approx(1.5 / 6)
    with pytest.raises(ValueError, match="both inside and outside"):
        ranking_auc(scores, np.ones_like(truth))


def test_analyze_actionlets_and_tsne_write_pngs_and_records(tiny_dataset, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["pretrain", *tiny_overrides(tiny_dataset, run_dir, **{
        "method.name": "actclr", "trainer.epochs": 1, "optim.name": "adam", "optim.lr": 1e-3})]) == 0
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    assert main(["analyze", "actionlets", "--checkpoint", ckpt, "--limit", "6"]) == 0
    pngs = sorted((run_dir / "analysis").glob("actionlet_*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    records = json.loads((run_dir / "results.json").read_text())
    metrics = {r["metric"]: r["value"] for r in records if r["protocol"] == "actionlet"}
    assert set(metrics) == {"precision", "recall", "iou", "predicted_fraction", "chance_precision", "auc",
                            "joint_precision", "joint_chance", "frame_precision", "frame_chance"}
    # both sides count the hits over all cells: precision·predicted share = recall·true share
    assert metrics["precision"] * metrics["predicted_fraction"] == pytest.approx(
        metrics["recall"] * metrics["chance_precision"], rel=1e-3, abs=1e-6)
    assert main(["analyze", "tsne", "--checkpoint", ckpt]) == 0
    assert (run_dir / "analysis" / "tsne_actclr.png").stat().st_size > 1000
