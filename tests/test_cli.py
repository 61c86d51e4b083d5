"""The command line: user mistakes give one plain line (no traceback); evaluate and info work end to end."""

from __future__ import annotations

import json

import pytest
import torch

from skelssl.cli import main
from skelssl.config import load_config
from skelssl.errors import UserError
from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.train import pretrain
from tests.conftest import tiny_overrides


def _run(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_config_typo_names_the_key_and_the_nearest(capsys, tmp_path):
    code, _, err = _run(capsys, ["pretrain", "trainer.epoch=3"])
    assert code == 2 and "Traceback" not in err
    assert "unknown config key 'trainer.epoch'" in err and "trainer.epochs" in err
    assert len(err.strip().splitlines()) == 1


def test_config_typo_in_a_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(UserError, match=r"unknown config key 'optim.lrr' in .*bad.yaml.*optim.lr"):
        load_config(path)


def test_missing_dataset_path_says_to_prepare(capsys, tmp_path):
    code, _, err = _run(capsys, ["pretrain", "data.dataset=ntu60", f"data.root={tmp_path / 'nowhere'}",
                                 f"run_dir={tmp_path / 'run'}", "trainer.progress_bar=false"])
    assert code == 2 and "Traceback" not in err
    assert "skelssl prepare ntu60" in err and "nowhere" in err


def test_missing_config_file(capsys, tmp_path):
    code, _, err = _run(capsys, ["pretrain", "--config", str(tmp_path / "none.yaml")])
    assert code == 2 and "does not exist" in err


def test_resume_with_a_checkpoint_of_another_method(capsys, tiny_dataset, tmp_path):
    run_dir = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{"trainer.epochs": 1})),
                       command=[])
    ckpt = torch.load(run_dir / LAST_CHECKPOINT, map_location="cpu", weights_only=False)
    ckpt["skelssl"]["method"] = "aimclr"  # as if another method had written it
    torch.save(ckpt, run_dir / LAST_CHECKPOINT)
    code, _, err = _run(capsys, ["pretrain", *tiny_overrides(tiny_dataset, run_dir, resume="true")])
    assert code == 2 and "Traceback" not in err
    assert "trained with method 'aimclr'" in err


def test_evaluate_rejects_a_file_that_is_not_a_checkpoint(capsys, tmp_path):
    bogus = tmp_path / "model.ckpt"
    torch.save({"weights": torch.zeros(3)}, bogus)
    code, _, err = _run(capsys, ["evaluate", "knn", "--checkpoint", str(bogus)])
    assert code == 2 and "not a skelssl pretraining checkpoint" in err


def test_pretrain_then_evaluate_knn_and_linear(capsys, tiny_dataset, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["pretrain", *tiny_overrides(tiny_dataset, run_dir, **{"trainer.epochs": 1})]) == 0
    assert (run_dir / "config.yaml").is_file() and (run_dir / "command.txt").is_file()
    ckpt = str(run_dir / LAST_CHECKPOINT)
    assert main(["evaluate", "knn", "--checkpoint", ckpt, "--with-random-init"]) == 0
    assert main(["evaluate", "linear", "--checkpoint", ckpt, "eval.linear.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "weighted_k20" in out and "random_init" in out
    records = json.loads((run_dir / "results.json").read_text())
    assert {r["protocol"] for r in records} == {"knn", "linear"}
    assert {r["model"] for r in records} == {"skeletonclr", "random_init"}
    for r in records:
        assert set(r) == {"dataset", "split", "model", "stream", "protocol", "metric", "value"}
        assert 0.0 <= r["value"] <= 100.0


def test_info_json(capsys, tiny_dataset):
    assert main(["info", str(tiny_dataset), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["joints"] == 25 and info["persons"] == 2 and info["frames"] == 16
    parts = info["splits"]["xsub"]
    assert parts["train"]["samples"] + parts["test"]["samples"] == info["samples"]


def test_pretrain_composes_pieces_and_shows_the_config(capsys):
    assert main(["pretrain", "--dataset", "nwucla-xview", "--method", "actclr", "--encoder", "stgcn",
                 "data.stream=bone", "--show-config"]) == 0
    shown = capsys.readouterr().out
    for line in ("name: actclr", "queue_size: 1024", "dataset: nw-ucla", "stream: bone", "encoder: stgcn",
                 "hidden_channels: 16", "name: adam"):
        assert line in shown, line
    code, _, err = _run(capsys, ["pretrain", "--dataset", "nwucla-xview", "model.hidden_channels=8"])
    assert code == 2 and "model.stgcn.hidden_channels" in err


def test_evaluate_several_checkpoints_in_one_table(capsys, tiny_dataset, tmp_path):
    runs = [pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / name, **{
        "trainer.epochs": 1, "data.stream": stream})), command=[]) for name, stream in (("a", "joint"), ("b", "bone"))]
    assert main(["evaluate", "knn", "--checkpoint", *(str(r / LAST_CHECKPOINT) for r in runs),
                 "eval.knn.k=[5]"]) == 0
    out = capsys.readouterr().out
    assert "joint" in out and "bone" in out and "weighted_k5" in out
    for run, stream in zip(runs, ("joint", "bone")):  # each run directory holds its own records
        assert {r["stream"] for r in json.loads((run / "results.json").read_text())} == {stream}
