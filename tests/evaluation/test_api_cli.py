"""The Python API (its docs example runs as written) and the evaluate --fuse / fuse / report commands."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from skelssl.api import load
from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.cli import main
from skelssl.data.dataset import SkeletonDataset
from skelssl.evaluation import extract_features
from skelssl.transforms.streams import to_stream

DOC = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"
NTU_OF_KINECT = [0, 1, 20, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]


def test_docs_api_example_runs(tiny_run, tiny_dataset, tmp_path, capsys):
    match = re.search(r"<!-- example: api -->\s*```python\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"the API example is missing from {DOC}"
    (tmp_path / "runs" / "demo" / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_run / LAST_CHECKPOINT, tmp_path / "runs" / "demo" / LAST_CHECKPOINT)
    shutil.copytree(tiny_dataset, tmp_path / "runs" / "demo" / "dataset")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(match.group(1), str(DOC), "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "PretrainedModel(model=skeletonclr" in out and "probe accuracy" in out


def test_embed_matches_the_evaluation_path(tiny_run, tiny_dataset):
    model = load(tiny_run / LAST_CHECKPOINT, device="cpu")
    test = SkeletonDataset(tiny_dataset, "xsub", "test")
    layout = model.layout
    expected = extract_features(model.encoder, test.array(), transform=lambda x: to_stream(x, "joint", layout))
    torch.testing.assert_close(model.embed(tiny_dataset, part="test"), expected)
    # one sequence (T, V, C) of one person = the same batch (1, C, T, V, 1)
    sequence = test.array()[0, :, :, :, 0].transpose(1, 2, 0)
    torch.testing.assert_close(model.embed(sequence), model.embed(test.array()[:1, ..., :1]))


def test_predict_raw_kinect_array_through_the_map(tiny_run, tiny_dataset):
    model = load(tiny_run / LAST_CHECKPOINT, device="cpu")
    probe = model.fit_probe(tiny_dataset, epochs=5)
    test = SkeletonDataset(tiny_dataset, "xsub", "test")
    features = model.embed(tiny_dataset, part="test")
    assert probe.test_top1 == pytest.approx((probe.predict(features).numpy() == test.labels).mean())
    kinect = test.array()[:4, :, :, NTU_OF_KINECT, :1]  # (4, 3, T, 20, 1), one person
    ntu = np.zeros(kinect.shape[:3] + (25, 2), dtype=np.float32)  # by hand: NTU-25 with a zero 2nd person
    ntu[:, :, :, NTU_OF_KINECT, :1] = kinect
    ntu[:, :, :, 2, 0] = 0.5 * (kinect[:, :, :, 2, 0] + kinect[:, :, :, 3, 0])
    ntu[:, :, :, [21, 22], 0] = kinect[:, :, :, [7], 0]
    ntu[:, :, :, [23, 24], 0] = kinect[:, :, :, [11], 0]
    torch.testing.assert_close(model.embed(kinect, layout="kinect20"), model.embed(ntu), atol=1e-5, rtol=1e-5)
    assert model.predict(kinect, probe, layout="kinect20").tolist() == probe.predict(model.embed(ntu)).tolist()


def stream_copy(ckpt: Path, stream: str, root: Path) -> Path:
    """The checkpoint as if its run had trained on `stream` (evaluation reads the stream from its config)."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state["hyper_parameters"]["cfg"]["data"]["stream"] = stream
    path = root / stream / LAST_CHECKPOINT
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return path


def test_evaluate_fuse_then_fuse_and_report(tiny_run, tmp_path, capsys):
    ckpts = [stream_copy(tiny_run / LAST_CHECKPOINT, stream, tmp_path) for stream in ("joint", "motion", "bone")]
    assert main(["evaluate", "linear", "--checkpoint", *map(str, ckpts), "--fuse", "eval.linear.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"skeletonclr\s+fused\s+linear\s+top1", out)
    # the fused row against the saved logits fused by hand (joint 0.6, motion 0.4, bone 0.6)
    saved = {}
    for stream in ("joint", "motion", "bone"):
        with np.load(tmp_path / stream / "scores" / f"synthetic_xsub_skeletonclr_{stream}_linear.npz") as f:
            saved[stream], labels = f["logits"].astype(np.float64), f["labels"]
    fused = 0.6 * saved["joint"] + 0.4 * saved["motion"] + 0.6 * saved["bone"]
    expected = round(100 * float((fused.argmax(1) == labels).mean()), 2)
    records = json.loads((tmp_path / "bone" / "results.json").read_text())
    assert [r["value"] for r in records if r["stream"] == "fused"] == [expected]
    # skelssl fuse on the three runs, with motion weighted 0: joint and bone only
    runs = [str(tmp_path / s) for s in ("joint", "motion", "bone")]
    assert main(["fuse", *runs, "eval.fusion_weights.motion=0", "--out", str(tmp_path / "fused")]) == 0
    two = 0.6 * saved["joint"] + 0.6 * saved["bone"]
    fused_record = json.loads((tmp_path / "fused" / "results.json").read_text())
    assert [r["value"] for r in fused_record] == [round(100 * float((two.argmax(1) == labels).mean()), 2)]
    capsys.readouterr()
    assert main(["report", *runs, "--metric", "top1", "--out", str(tmp_path / "table.md")]) == 0
    mark, *table = (tmp_path / "table.md").read_text().splitlines()
    assert mark == "<!-- written by skelssl report -->"  # how a later report knows it may replace the file
    assert table[0] == "| method      | stream | synthetic xsub linear top1 |"
    assert [line.split("|")[2].strip() for line in table[2:]] == ["joint", "motion", "bone", "fused"]


def test_fuse_errors_are_one_line(tiny_run, tmp_path, capsys):
    assert main(["fuse", str(tmp_path)]) == 2
    assert "no saved test logits" in capsys.readouterr().err
    assert main(["fuse", str(tmp_path), "eval.fusion_weights.hand=1"]) == 2
