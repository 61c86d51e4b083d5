"""What evaluate, report and analyze refuse (issue 21): an empty part, k < 1, a damaged checkpoint, a NaN result,
an --out that is a file of the user's; and `--checkpoint RUN` taking the run's last checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.cli import main
from skelssl.errors import UserError
from skelssl.evaluation.results import ResultRecord, read_results, write_results
from tests.conftest import run_cli




@pytest.mark.parametrize("part", ["train", "test"])
def test_an_empty_part_is_refused_before_any_work(finished_run, tiny_dataset, tmp_path, capsys, part):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    meta = json.loads((root / "meta.json").read_text())
    other = "train" if part == "test" else "test"
    meta["splits"]["xsub"][other] = sorted(meta["splits"]["xsub"][other] + meta["splits"]["xsub"][part])
    meta["splits"]["xsub"][part] = []
    (root / "meta.json").write_text(json.dumps(meta))
    code, _, err = run_cli(capsys, ["evaluate", "knn", "--checkpoint", str(finished_run), f"data.root={root}",
                                 "--out", str(tmp_path / "eval")])
    assert code == 2 and f"split 'xsub' of '{root}' has no {part} sequences" in err
    assert not (tmp_path / "eval" / "results.json").exists()


def test_k_below_one_is_refused_at_composition(finished_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, ["evaluate", "knn", "--checkpoint", str(finished_run), "eval.knn.k=[0]",
                                 "--out", str(tmp_path / "eval")])
    assert code == 2 and "'eval.knn.k' = [0] (the command line): item 0 (0) must be a whole number >= 1" in err


def test_a_run_directory_stands_for_its_last_checkpoint(finished_run, tmp_path, capsys):
    code, out, err = run_cli(capsys, ["evaluate", "knn", "--checkpoint", str(finished_run),
                                      "--out", str(tmp_path / "e")])
    assert code == 0, err
    assert {r.protocol for r in read_results(tmp_path / "e")} == {"knn"}
    code, _, err = run_cli(capsys, ["evaluate", "knn", "--checkpoint", str(tmp_path / "e")])
    assert code == 2 and f"'{tmp_path / 'e'}' is a folder without {LAST_CHECKPOINT}" in err


def test_a_checkpoint_without_its_config_is_named_damaged(finished_run, tmp_path, capsys):
    state = torch.load(finished_run / LAST_CHECKPOINT, weights_only=True)
    del state["hyper_parameters"]["cfg"]
    torch.save(state, tmp_path / "x.ckpt")
    code, _, err = run_cli(capsys, ["evaluate", "knn", "--checkpoint", str(tmp_path / "x.ckpt")])
    assert code == 2 and "is a damaged skelssl checkpoint: it lacks hyper_parameters.cfg" in err


def test_a_nan_result_is_not_written_and_results_json_stays_json(tmp_path):
    good = ResultRecord("d", "s", "m", "joint", "knn", "1nn_cosine", 50.0)
    write_results(tmp_path, [good])
    before = (tmp_path / "results.json").read_text()
    with pytest.raises(UserError, match=r"the result d/s/m/joint/knn/weighted_k0 is nan, not a number"):
        write_results(tmp_path, [ResultRecord("d", "s", "m", "joint", "knn", "weighted_k0", float("nan"))])
    assert (tmp_path / "results.json").read_text() == before and json.loads(before)[0]["value"] == 50.0


def test_an_out_that_is_a_users_file_is_refused_by_evaluate_report_and_analyze(finished_run, tmp_path, capsys):
    mine = tmp_path / "notes.txt"
    mine.write_text("mine\n")
    for argv in (["evaluate", "knn", "--checkpoint", str(finished_run), "--out", str(mine)],
                 ["analyze", "tsne", "--checkpoint", str(finished_run), "--out", str(mine)],
                 ["report", str(finished_run), "--out", str(mine)]):
        code, _, err = run_cli(capsys, argv)
        assert code == 2 and f"--out '{mine}'" in err and "Traceback" not in err, (argv, err)
        assert mine.read_text() == "mine\n"
    code, _, err = run_cli(capsys, ["report", str(finished_run), "--out", str(tmp_path)])
    assert code == 2 and "is a folder; give the report a file name" in err


def test_report_replaces_its_own_file(finished_run, tmp_path, capsys):
    assert main(["evaluate", "knn", "--checkpoint", str(finished_run), "--out", str(tmp_path / "e")]) == 0
    out = tmp_path / "report.md"
    for _ in range(2):  # the second time it replaces the report it wrote
        code, _, err = run_cli(capsys, ["report", str(tmp_path / "e"), "--out", str(out)])
        assert code == 0, err
    text = out.read_text()
    assert text.startswith("<!-- written by skelssl report -->\n") and "1nn_cosine" in text
