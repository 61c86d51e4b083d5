"""Stream fusion on hand-made logits, saved scores, and the markdown report against hand-written tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skelssl.errors import UserError
from skelssl.evaluation.fusion import StreamScores, fuse_logits, fuse_scores, load_scores, save_scores
from skelssl.evaluation.report import markdown_report

NAMES = ["a", "b", "c"]
LABELS = np.array([0, 1, 1])
# Sample a: joint says 0 strongly, bone and motion say 1 weakly.
#   weights joint .6, bone .6, motion .4: class 0 = .6*2 = 1.2; class 1 = .6*1 + .4*1.2 = 1.08 -> 0
#   equal weights:                          class 0 = 2;       class 1 = 1 + 1.2 = 2.2          -> 1
# Sample b: joint [0, 1], bone [1, 0], motion [0, 1]: fused [.6, .6 + .4] = [.6, 1.0] -> 1
# Sample c: joint [1, 0], bone [0, 2], motion [3, 0]: fused [.6 + 1.2, 1.2] = [1.8, 1.2] -> 0
JOINT = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
BONE = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
MOTION = np.array([[0.0, 1.2], [0.0, 1.0], [3.0, 0.0]])
FUSED = np.array([[1.2, 1.08], [0.6, 1.0], [1.8, 1.2]])


def scores(stream: str, logits: np.ndarray, model: str = "aimclr", names=NAMES) -> StreamScores:
    return StreamScores("ntu60", "xsub", model, stream, "linear", logits, LABELS, list(names))


def test_fused_logits_by_hand():
    fused = fuse_logits({"joint": JOINT, "bone": BONE, "motion": MOTION}, {"joint": 0.6, "bone": 0.6, "motion": 0.4})
    np.testing.assert_allclose(fused, FUSED, atol=1e-12)


def test_fusion_records_per_stream_and_fused():
    records, fused = fuse_scores([scores("joint", JOINT), scores("bone", BONE), scores("motion", MOTION)])
    values = {(r.stream, r.metric): r.value for r in records}
    # labels 0, 1, 1. joint predicts 0, 1, 0 (a, b right); motion 1, 1, 0 (b); bone 1, 0, 1 (c);
    # fused 0, 1, 0 (a, b)
    assert values == {("joint", "top1"): 66.67, ("motion", "top1"): 33.33, ("bone", "top1"): 33.33,
                      ("fused", "top1"): 66.67}
    assert [r.stream for r in records] == ["joint", "motion", "bone", "fused"]
    np.testing.assert_allclose(fused[0].logits, FUSED, atol=1e-6)
    equal, _ = fuse_scores([scores("joint", JOINT), scores("bone", BONE), scores("motion", MOTION)],
                           {"joint": 1.0, "bone": 1.0, "motion": 1.0})
    # equal weights: a -> 1 (wrong), b: [1, 2] -> 1, c: [4, 2] -> 0 (wrong): 33.33
    assert [r.value for r in equal if r.stream == "fused"] == [33.33]


def test_fusion_groups_by_model_and_refuses_mismatches():
    records, _ = fuse_scores([scores("joint", JOINT), scores("bone", BONE, model="skeletonclr")])
    assert records == []  # one stream per model: nothing to fuse
    with pytest.raises(UserError, match="different test samples"):
        fuse_scores([scores("joint", JOINT), scores("bone", BONE, names=["a", "c", "b"])])
    with pytest.raises(UserError, match="two joint-stream results"):
        fuse_scores([scores("joint", JOINT), scores("joint", BONE)])
    with pytest.raises(UserError, match="no fusion weight for stream"):
        fuse_scores([scores("joint", JOINT), scores("bone", BONE)], {"joint": 0.5})


def test_scores_saved_and_loaded(tmp_path):
    save_scores(tmp_path, [scores("joint", JOINT), scores("bone", BONE)])
    loaded = sorted(load_scores(tmp_path), key=lambda s: s.stream)
    assert [s.stream for s in loaded] == ["bone", "joint"]
    np.testing.assert_array_equal(loaded[1].logits, JOINT.astype(np.float32))
    assert loaded[1].sample_names == NAMES and loaded[1].labels.tolist() == [0, 1, 1]
    with pytest.raises(UserError, match="no saved test logits"):
        load_scores(tmp_path / "empty")


def write_run(path, rows):
    path.mkdir()
    keys = ("dataset", "split", "model", "stream", "protocol", "metric", "value")
    (path / "results.json").write_text(json.dumps([dict(zip(keys, row)) for row in rows]))


def test_report_pivot_and_long(tmp_path):
    write_run(tmp_path / "aim-joint", [("nw-ucla", "xview", "aimclr", "joint", "linear", "top1", 61.5),
                                       ("nw-ucla", "xview", "aimclr", "joint", "semi10", "top1", 40.0),
                                       ("nw-ucla", "xview", "aimclr", "fused", "linear", "top1", 70.25)])
    write_run(tmp_path / "clr-joint", [("nw-ucla", "xview", "skeletonclr", "joint", "linear", "top1", 55.0),
                                       ("nw-ucla", "xview", "skeletonclr", "joint", "linear", "best_top1", 58.0),
                                       ("nw-ucla", "xview", "aimclr", "fused", "linear", "top1", 70.25)])
    runs = [tmp_path / "aim-joint", tmp_path / "clr-joint"]
    assert markdown_report(runs, metrics=["top1"]) == "\n".join([
        "| method      | stream | nw-ucla xview linear top1 | nw-ucla xview semi10 top1 |",
        "| ----------- | ------ | ------------------------: | ------------------------: |",
        "| aimclr      | joint  |                     61.50 |                     40.00 |",
        "| aimclr      | fused  |                     70.25 |                           |",
        "| skeletonclr | joint  |                     55.00 |                           |",
    ])
    assert markdown_report(runs[1:], protocols=["linear"], long=True) == "\n".join([
        "| method      | dataset | split | stream | protocol | metric    | value (%) |",
        "| ----------- | ------- | ----- | ------ | -------- | --------- | --------: |",
        "| skeletonclr | nw-ucla | xview | joint  | linear   | top1      |     55.00 |",
        "| skeletonclr | nw-ucla | xview | joint  | linear   | best_top1 |     58.00 |",
        "| aimclr      | nw-ucla | xview | fused  | linear   | top1      |     70.25 |",
    ])


def test_report_adds_a_run_column_when_runs_disagree(tmp_path):
    write_run(tmp_path / "r1", [("d", "s", "aimclr", "joint", "linear", "top1", 50.0)])
    write_run(tmp_path / "r2", [("d", "s", "aimclr", "joint", "linear", "top1", 52.0)])
    lines = markdown_report([tmp_path / "r1", tmp_path / "r2"]).splitlines()
    assert lines[0] == "| run | method | stream | d s linear top1 |"
    assert lines[2:] == ["| r1  | aimclr | joint  |           50.00 |", "| r2  | aimclr | joint  |           52.00 |"]
