"""Experiment trackers: chosen in the config, clear errors for unknown or missing ones, the results table logged."""

from __future__ import annotations

import importlib.util
import json

import pytest
from omegaconf import OmegaConf

from skelssl.config import load_config
from skelssl.errors import UserError
from skelssl.evaluation.results import ResultRecord
from skelssl.tracking import TRACKERS_FILE, build_loggers, log_results

RECORDS = [ResultRecord("synthetic", "xsub", "skeletonclr", "joint", "knn", "1nn_cosine", 41.5),
           ResultRecord("synthetic", "xsub", "skeletonclr", "joint", "linear", "top1", 52.25)]


def _cfg(tmp_path, loggers):
    return load_config(overrides=[f"tracking.loggers={json.dumps(loggers)}", f"run_dir={tmp_path}"])


def test_loggers_follow_the_config(tmp_path):
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    assert [type(x) for x in build_loggers(_cfg(tmp_path, ["csv"]), tmp_path)] == [CSVLogger]
    both = build_loggers(_cfg(tmp_path, ["csv", "tensorboard"]), tmp_path)
    assert [type(x) for x in both] == [CSVLogger, TensorBoardLogger]
    assert json.loads((tmp_path / TRACKERS_FILE).read_text()) == {"tensorboard": {"dir": str(tmp_path / "tensorboard")}}


def test_unknown_logger_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"'tracking.loggers' = \['csv', 'comet'\] \(the command line\): item 1 "
                                        r"\('comet'\) must be one of csv, tensorboard, mlflow, wandb"):
        _cfg(tmp_path, ["csv", "comet"])
    raw = OmegaConf.create({"tracking": {"loggers": ["csv", "comet"]}})  # a config built without composition
    with pytest.raises(UserError, match="unknown logger.*'comet'.*csv, tensorboard, mlflow, wandb"):
        build_loggers(raw, tmp_path)


@pytest.mark.parametrize("name, package", [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_missing_optional_tracker_names_the_extra(tmp_path, name, package):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here; the error for a missing one cannot be shown")
    with pytest.raises(UserError, match=rf"pip install 'skelssl\[{name}\]'"):
        build_loggers(_cfg(tmp_path, ["csv", name]), tmp_path)


def test_results_table_reaches_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    build_loggers(_cfg(tmp_path, ["tensorboard"]), tmp_path)
    assert log_results(tmp_path, RECORDS) == ["tensorboard"]
    events = EventAccumulator(str(tmp_path / "tensorboard" / "results"), size_guidance={"tensors": 0}).Reload()
    scalars = {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}
    assert scalars == {"results/knn/1nn_cosine/skeletonclr/joint/synthetic": pytest.approx(41.5),
                       "results/linear/top1/skeletonclr/joint/synthetic": pytest.approx(52.25)}
    text = events.Tensors("results/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert "1nn_cosine" in text and "52.25" in text


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="MLflow is not installed (skelssl[mlflow])")
def test_mlflow_run_gets_the_config_metrics_and_results(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    elsewhere = tmp_path / "where-the-user-is"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # MLflow's default artifact store is ./mlruns: nothing may land here
    cfg = _cfg(tmp_path, ["mlflow"])
    (logger,) = build_loggers(cfg, tmp_path)
    logger.log_hyperparams({"cfg": OmegaConf.to_container(cfg)})
    logger.log_metrics({"train/loss": 3.5}, step=0)
    logger.finalize("success")
    assert log_results(tmp_path, RECORDS) == ["mlflow"]
    info = json.loads((tmp_path / TRACKERS_FILE).read_text())["mlflow"]
    run = MlflowClient(tracking_uri=info["tracking_uri"]).get_run(info["run_id"])
    assert run.data.params["cfg/method/name"] == "skeletonclr"
    assert run.data.metrics["train/loss"] == 3.5
    assert run.data.metrics["results.linear.top1.skeletonclr.joint.synthetic"] == 52.25
    assert list(elsewhere.iterdir()) == []  # artifacts went beside the database (RUN/../mlartifacts)
