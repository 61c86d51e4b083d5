"""Experiment trackers: Lightning's own loggers, chosen with `tracking.loggers` in the config.

- "csv" (RUN/logs/version_k/metrics.csv, hparams.yaml) and "tensorboard" (RUN/tensorboard/) come with the
  default install and are on by default;
- "mlflow" (`pip install 'skelssl[mlflow]'`): an MLflow run in experiment `tracking.experiment` at
  `tracking.mlflow_tracking_uri` (default: a SQLite database RUN/../mlflow.db and artifacts in
  RUN/../mlartifacts, shared by the runs of one folder; `mlflow ui --backend-store-uri
  sqlite:///RUN/../mlflow.db` shows them);
- "wandb" (`pip install 'skelssl[wandb]'`): a Weights & Biases run in project `tracking.experiment`
  (`tracking.wandb_entity`, `tracking.wandb_offline`).

Each logs the config (Lightning logs the module's hyper-parameters: the whole resolved config), every metric
(loss, collapse figures, the online KNN monitor) and, when `skelssl evaluate` (or the demo) writes the run's
results, the final results table (`log_results`): each value as a metric `results/<protocol>/<metric>/...`
and the table as text. RUN/trackers.json remembers each tracker's run id, so that a resumed run and its
later evaluation continue the same MLflow / W&B run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from skelssl.defaults import BASE_DEFAULTS, LOGGERS
from skelssl.errors import UserError
from skelssl.evaluation.results import format_table

__all__ = ["LOGGERS", "build_loggers", "log_results", "TRACKERS_FILE"]

TRACKERS_FILE = "trackers.json"
_EXTRA = {"mlflow": ("mlflow", "MLflow"), "wandb": ("wandb", "Weights & Biases")}


def _require(name: str) -> None:
    module, title = _EXTRA[name]
    try:
        __import__(module)
    except ImportError:
        raise UserError(f"tracking.loggers names '{name}', but {title} is not installed: "
                        f"pip install 'skelssl[{name}]' (or leave '{name}' out of tracking.loggers)") from None


def _read_trackers(run_dir: Path) -> dict[str, Any]:
    path = run_dir / TRACKERS_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def _write_trackers(run_dir: Path, trackers: dict[str, Any]) -> None:
    path = run_dir / TRACKERS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(trackers, indent=1))
    tmp.replace(path)


def _settings(cfg: Any) -> dict[str, Any]:
    return {**BASE_DEFAULTS["tracking"], **dict(cfg.get("tracking") or {})}


def build_loggers(cfg: Any, run_dir: str | Path) -> list[Any]:
    """The run's Lightning loggers from tracking.* (module docstring); records their ids in RUN/trackers.json."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    run_dir = Path(run_dir)
    settings = _settings(cfg)
    names = [str(name) for name in settings["loggers"]]
    unknown = [name for name in names if name not in LOGGERS]
    if unknown:
        raise UserError(f"tracking.loggers: unknown logger(s) {unknown}; choose from {', '.join(LOGGERS)}")
    for name in names:
        if name in _EXTRA:
            _require(name)
    known = _read_trackers(run_dir)
    run_name = str(settings["run_name"] or run_dir.name)
    loggers: list[Any] = []
    if "csv" in names:
        loggers.append(CSVLogger(str(run_dir), name="logs"))
    if "tensorboard" in names:
        try:
            loggers.append(TensorBoardLogger(str(run_dir), name="tensorboard"))
        except ModuleNotFoundError:  # tensorboard missing at run time: the CSV log remains
            pass
    if "mlflow" in names:
        from lightning.pytorch.loggers import MLFlowLogger

        # MLflow 3 keeps its file store only on request; its own advice is a SQLite database
        uri = settings["mlflow_tracking_uri"] or f"sqlite:///{run_dir.resolve().parent / 'mlflow.db'}"
        # the artifacts beside the database too: MLflow's default is ./mlruns in whatever folder the user is in
        artifacts = None if settings["mlflow_tracking_uri"] else (run_dir.resolve().parent / "mlartifacts").as_uri()
        logger = MLFlowLogger(experiment_name=str(settings["experiment"]), run_name=run_name, tracking_uri=uri,
                              run_id=known.get("mlflow", {}).get("run_id"), artifact_location=artifacts)
        known["mlflow"] = {"run_id": logger.run_id, "tracking_uri": uri, "experiment": str(settings["experiment"])}
        loggers.append(logger)
    if "wandb" in names:
        from lightning.pytorch.loggers import WandbLogger

        run_id = known.get("wandb", {}).get("id")
        logger = WandbLogger(project=str(settings["experiment"]), name=run_name, save_dir=str(run_dir),
                             id=run_id, resume="allow", entity=settings["wandb_entity"],
                             offline=bool(settings["wandb_offline"]))
        known["wandb"] = {"id": logger.version, "project": str(settings["experiment"]),
                          "entity": settings["wandb_entity"], "offline": bool(settings["wandb_offline"])}
        loggers.append(logger)
    known["tensorboard"] = {"dir": str(run_dir / "tensorboard")} if "tensorboard" in names else None
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_trackers(run_dir, {k: v for k, v in known.items() if v})
    return loggers


def _metric_name(record: Any) -> str:
    return "/".join(["results", record.protocol, record.metric, record.model, record.stream, record.dataset])


def log_results(run_dir: str | Path, records: Iterable[Any]) -> list[str]:
    """Log a run's final results table to the trackers it trained with (RUN/trackers.json); returns their names.

    A tracker whose package is missing now is skipped with a note (the results stay in RUN/results.json).
    """

    run_dir = Path(run_dir)
    records = list(records)
    trackers = _read_trackers(run_dir)
    if not records or not trackers:
        return []
    table = format_table(records)
    values = {_metric_name(r): float(r.value) for r in records}
    done: list[str] = []
    if trackers.get("tensorboard"):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            pass
        else:
            with SummaryWriter(str(Path(trackers["tensorboard"]["dir"]) / "results")) as writer:
                writer.add_text("results", "    " + table.replace("\n", "\n    "))  # markdown code block
                for name, value in values.items():
                    writer.add_scalar(name, value)
            done.append("tensorboard")
    if trackers.get("mlflow"):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            print("results not sent to MLflow: it is not installed (pip install 'skelssl[mlflow]')")
        else:
            info = trackers["mlflow"]
            client = MlflowClient(tracking_uri=info["tracking_uri"])
            for name, value in values.items():
                client.log_metric(info["run_id"], name.replace("/", "."), value)
            client.log_text(info["run_id"], table + "\n", "results.txt")
            done.append("mlflow")
    if trackers.get("wandb"):
        try:
            import wandb
        except ImportError:
            print("results not sent to W&B: it is not installed (pip install 'skelssl[wandb]')")
        else:
            info = trackers["wandb"]
            run = wandb.init(id=info["id"], project=info["project"], entity=info.get("entity"), resume="allow",
                             dir=str(run_dir), mode="offline" if info.get("offline") else None)
            columns = ["dataset", "split", "model", "stream", "protocol", "metric", "value"]
            run.log({"results": wandb.Table(columns=columns, data=[[*r.key, r.value] for r in records]),
                     **values})
            run.finish()
            done.append("wandb")
    return done
