"""What `pretrain` does with its run_dir (issue 21): a refused start writes nothing; a run killed before its
first checkpoint starts again; a run with checkpoints is continued or replaced only when asked; a folder of the
user's, or the user's files beside a run, are never deleted; a resume cannot shorten a finished run."""

from __future__ import annotations

import shutil

import pytest

from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.cli import main
from tests.conftest import run_cli, tiny_overrides




def _copy(run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_killed_before_its_first_checkpoint_starts_again(tiny_dataset, finished_run, tmp_path, capsys,
                                                               resume):
    run_dir = _copy(finished_run, tmp_path)
    shutil.rmtree(run_dir / "checkpoints")  # as a kill in the first epoch leaves it: config, command, logs
    (run_dir / "config.yaml").write_text((run_dir / "config.yaml").read_text() + "# killed\n")
    extra = ["resume=true"] if resume else []
    code, out, err = run_cli(capsys, ["pretrain", *tiny_overrides(tiny_dataset, run_dir, **{"trainer.epochs": 1}),
                                   *extra])
    assert code == 0, err
    assert "holds a run that stopped before its first checkpoint: starting it again" in out
    assert (run_dir / LAST_CHECKPOINT).is_file() and "# killed" not in (run_dir / "config.yaml").read_text()


def test_a_run_with_checkpoints_is_refused_then_replaced_with_overwrite(tiny_dataset, finished_run, tmp_path,
                                                                       capsys):
    run_dir = _copy(finished_run, tmp_path)
    (run_dir / "notes.txt").write_text("mine\n")  # the user's file beside the run
    before = (run_dir / "config.yaml").read_bytes()
    code, _, err = run_cli(capsys, ["pretrain", *tiny_overrides(tiny_dataset, run_dir, **{"trainer.epochs": 1})])
    assert code == 2 and "already holds a run" in err and "resume=true" in err
    assert (run_dir / "config.yaml").read_bytes() == before
    code, out, err = run_cli(capsys, ["pretrain", *tiny_overrides(tiny_dataset, run_dir, **{"trainer.epochs": 1}),
                                   "overwrite=true"])
    assert code == 0, err
    assert "overwrite=true: deleting the run" in out and "notes.txt of yours stay" in out
    assert (run_dir / "notes.txt").read_text() == "mine\n"
    assert "epochs: 1" in (run_dir / "config.yaml").read_text()


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_of_the_users_is_never_a_run_dir(tiny_dataset, tmp_path, capsys, overwrite):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("mine\n")
    extra = ["overwrite=true"] if overwrite else []
    code, _, err = run_cli(capsys, ["pretrain", *tiny_overrides(tiny_dataset, user, **{"trainer.epochs": 1}), *extra])
    assert code == 2 and "holds no skelssl run (notes.txt)" in err
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(capsys, ["pretrain", *tiny_overrides(tiny_dataset, tmp_path / "afile")])
    assert code == 2 and "is an existing file" in err and (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("fault", ["trainer.epochs=abc", "method.name=aimclr model.encoder=bigru",
                                   "data.root=NOWHERE", "method.queue_size=4"])
def test_a_refused_start_writes_nothing(tiny_dataset, tmp_path, capsys, fault):
    run_dir = tmp_path / "new_run"
    faults = [item.replace("NOWHERE", str(tmp_path / "nowhere")) for item in fault.split()]
    code, _, err = run_cli(capsys, ["pretrain", *tiny_overrides(tiny_dataset, run_dir), "data.dataset=ntu60", *faults])
    assert code == 2 and "Traceback" not in err, err
    assert not run_dir.exists()


def test_a_failure_while_the_trainer_is_built_leaves_no_new_folder(tiny_dataset, tmp_path, capsys, monkeypatch):
    import skelssl.train as train

    def broken(*args, **kwargs):
        raise train.UserError("the trainer could not be built")

    monkeypatch.setattr(train, "build_trainer", broken)
    run_dir = tmp_path / "new_run"
    code, _, err = run_cli(capsys, ["pretrain", *tiny_overrides(tiny_dataset, run_dir)])
    assert code == 2 and "could not be built" in err and not run_dir.exists()


def test_resume_cannot_shorten_a_finished_run(tiny_dataset, finished_run, tmp_path, capsys):
    run_dir = _copy(finished_run, tmp_path)
    before = (run_dir / "config.yaml").read_bytes()
    code, _, err = run_cli(capsys, ["pretrain", *tiny_overrides(tiny_dataset, run_dir, **{"trainer.epochs": 1}),
                                 "resume=true"])
    assert code == 2 and "has already trained 2 epochs; trainer.epochs=1" in err
    assert (run_dir / "config.yaml").read_bytes() == before


def test_the_fallback_to_the_previous_checkpoint_is_said_once(tiny_dataset, finished_run, tmp_path, capsys):
    run_dir = _copy(finished_run, tmp_path)
    (run_dir / LAST_CHECKPOINT).write_bytes(b"cut short")
    code, out, err = run_cli(capsys, ["pretrain", *tiny_overrides(tiny_dataset, run_dir, **{"trainer.epochs": 3}),
                                   "resume=true"])
    assert code == 0, err
    assert (out + err).count("resuming from the checkpoint before it") == 1


def test_the_runs_own_dataset_inside_its_folder_is_kept(tiny_dataset, tmp_path, capsys):
    """The demo prepares its data in RUN/dataset before it pretrains: neither a foreign file nor the run's."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_dataset, run_dir / "dataset")
    argv = ["pretrain", *tiny_overrides(run_dir / "dataset", run_dir, **{"trainer.epochs": 1})]
    assert main(argv) == 0
    assert main(argv + ["overwrite=true"]) == 0, capsys.readouterr().err
    assert (run_dir / "dataset" / "meta.json").is_file() and (run_dir / LAST_CHECKPOINT).is_file()


def test_results_without_a_run_stay_when_a_run_starts_beside_them(tiny_dataset, finished_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["evaluate", "knn", "--checkpoint", str(finished_run), "--out", str(run_dir)]) == 0
    before = (run_dir / "results.json").read_bytes()
    assert main(["pretrain", *tiny_overrides(tiny_dataset, run_dir, **{"trainer.epochs": 1})]) == 0
    assert (run_dir / "results.json").read_bytes() == before and (run_dir / LAST_CHECKPOINT).is_file()
