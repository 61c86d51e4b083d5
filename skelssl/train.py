"""Pretraining with Lightning: run directory, loggers, checkpoints (skelssl.checkpoints), exact resume."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from skelssl.checkpoints import (LAST_CHECKPOINT, PREVIOUS_CHECKPOINT, RunCheckpoint, check_checkpoint_method,
                                 initialize_from_checkpoint, read_checkpoint, resume_checkpoint)
from skelssl.defaults import migrate_config, save_config
from skelssl.data.dataset import SkeletonDataModule
from skelssl.data.normalize import dataset_warnings
from skelssl.data.prepared import load_meta, open_data
from skelssl.data.synthetic import prepare_synthetic
from skelssl.errors import UserError
from skelssl.lightning_progress import progress_callbacks
from skelssl.evaluation.monitor import knn_monitor_from_config
from skelssl.methods import build_method
from skelssl.methods.core.monitor import CollapseMonitor
from skelssl.models.sync_batchnorm import convert_to_global_batchnorm
from skelssl.outputs import list_entries, remove_entries
from skelssl.tracking import build_loggers
from skelssl.yamlio import load_yaml

def default_run_dir(cfg: DictConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.method.name}-{cfg.data.dataset}-{cfg.data.split}-{cfg.data.stream}-{stamp}"


def ensure_dataset(cfg: DictConfig) -> None:
    """The synthetic dataset is generated on first use; real datasets must be prepared by the user."""
    root = Path(cfg.data.root)
    if (root / "meta.json").is_file():
        return
    if cfg.data.dataset == "synthetic":

        prepare_synthetic(root, seed=int(cfg.trainer.seed))
        return
    raise UserError(f"no prepared dataset at data.root='{root}': run `skelssl prepare {cfg.data.dataset} ...` "
                    "first (see docs/data.md), or point data.root at a prepared dataset")


def warn_if_unnormalised(root: str | Path) -> None:
    """Say, before a run spends hours on it, when the prepared data looks un-normalised (and what fixes it)."""

    for warning in dataset_warnings(open_data(root), load_meta(root).channel_names or None):
        print(f"skelssl pretrain: warning: {root}: {warning}", file=sys.stderr)


def set_threads(cfg: DictConfig) -> None:
    if int(cfg.trainer.get("threads", 0)) > 0:
        torch.set_num_threads(int(cfg.trainer.threads))


def build_trainer(cfg: DictConfig, run_dir: Path, max_epochs: int | None = None,
                  extra_callbacks: list | None = None) -> L.Trainer:
    t = cfg.trainer
    callbacks: list[Any] = [RunCheckpoint(run_dir / "checkpoints", every_n_epochs=int(t.checkpoint_every_n_epochs),
                                          every_n_minutes=float(t.checkpoint_every_minutes)),
                            CollapseMonitor()]
    knn_monitor = knn_monitor_from_config(cfg, run_dir)  # after the collapse monitor: it reads its figures
    if knn_monitor is not None:
        callbacks.append(knn_monitor)
    progress = progress_callbacks(bool(t.progress_bar))
    callbacks.extend(progress)
    callbacks.extend(extra_callbacks or [])
    loggers = build_loggers(cfg, run_dir)
    return L.Trainer(
        max_epochs=max_epochs or int(t.epochs),
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        num_nodes=int(t.num_nodes),
        precision=t.precision,
        logger=loggers,
        callbacks=callbacks,
        enable_progress_bar=bool(progress),
        log_every_n_steps=int(t.log_every_n_steps),
        default_root_dir=str(run_dir),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=bool(t.deterministic),
        use_distributed_sampler=False,  # SkeletonDataModule shards the data itself (one global order)
    )


# What a resumed run may change: how long it trains, how it saves and reports, where it runs. Everything else
# (optimiser, schedule, method constants, model, data) continues from the checkpoint and cannot change.
RESUMABLE = ("trainer.epochs", "trainer.checkpoint_every_n_epochs", "trainer.checkpoint_every_minutes",
             "trainer.progress_bar", "trainer.threads", "trainer.log_every_n_steps", "trainer.nonfinite",
             "trainer.max_nonfinite_skips", "trainer.accelerator", "trainer.devices", "trainer.strategy",
             "trainer.num_nodes", "trainer.deterministic", "data.num_workers", "eval.",
             "monitor.", "tracking.")  # the KNN monitor and the trackers leave the training as it is
RUN_FILES = ("checkpoints", "logs", "tensorboard", "config.yaml", "command.txt", "changes.log", "results.json",
             "monitor.json", "monitor.png", "trackers.json")
# What a run directory holds besides: what `evaluate` and `analyze` write into it by default
RUN_ENTRIES = RUN_FILES + ("scores", "subsets", "analysis")


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def resume_changes(saved: dict[str, Any], cfg: DictConfig) -> dict[str, tuple[Any, Any]]:
    """Keys whose value differs between a run's saved config and the config asked for on resume: key ->
    (saved, asked). A key outside RESUMABLE is refused with a message naming it."""
    asked = _flat(OmegaConf.to_container(cfg, resolve=True))
    before = _flat(saved)
    changed = {key: (before.get(key), value) for key, value in asked.items()
               if key not in ("resume", "run_dir", "overwrite") and before.get(key) != value}
    refused = [key for key in changed if not key.startswith(RESUMABLE)]
    if refused:
        listing = "; ".join(f"{key}: {changed[key][0]!r} in the run, {changed[key][1]!r} asked" for key in refused)
        raise UserError(f"resume=true continues a run as it was configured and cannot change {listing}. The "
                        "optimiser, schedule and weights continue from the checkpoint; to train with other settings "
                        "start a new run from its weights with model.init_from=RUN/checkpoints/last.ckpt")
    return changed


def _is_run_entry(name: str) -> bool:
    return name in RUN_ENTRIES or name.endswith(".tmp")


def run_has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / LAST_CHECKPOINT).is_file() or (run_dir / PREVIOUS_CHECKPOINT).is_file()


def saved_run_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The config a run in `run_dir` was started with: from its checkpoint (resume), else from config.yaml (a
    run stopped before its first checkpoint), else None. Prints nothing (prepare_run_dir says what it does)."""
    run_dir = Path(run_dir)
    if run_has_checkpoint(run_dir):
        return read_checkpoint(resume_checkpoint(run_dir, quiet=True))["hyper_parameters"]["cfg"]
    if (run_dir / "config.yaml").is_file():
        saved = load_yaml(run_dir / "config.yaml", "run config")
        return migrate_config(saved) if isinstance(saved, dict) else None
    return None


@dataclass
class RunStart:
    """What `pretrain` will do with its run directory, decided before anything is written (prepare_run_dir):
    resume from `checkpoint`, or start afresh after removing `clear` (a replaced run's entries)."""

    run_dir: Path
    checkpoint: Path | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    clear: list[str] = field(default_factory=list)
    note: str | None = None
    created: bool = False  # whether apply() made the folder (undo() then removes it)

    def apply(self, cfg: DictConfig, command: list[str]) -> None:
        """Write the start: remove what a replaced run left, create the folder, config.yaml, command.txt."""
        if self.note:
            print(f"[skelssl] {self.note}", flush=True)
        remove_entries(self.run_dir, self.clear)
        self.created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.run_dir / "config.yaml")
        with open(self.run_dir / "command.txt", "a") as fh:
            fh.write(shlex.join(command) + "\n")

    def undo(self) -> None:
        """A start that failed before training began leaves no folder it created."""
        if self.created and self.checkpoint is None and not run_has_checkpoint(self.run_dir):
            shutil.rmtree(self.run_dir, ignore_errors=True)


def _trained_epochs(ckpt: dict[str, Any]) -> int:
    """Epochs a checkpoint's run has trained through (a mid-epoch checkpoint: those before its epoch), from
    Lightning's loop progress (an epoch counts as processed once its last batch is)."""
    try:
        return int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return int((ckpt["skelssl"].get("data_position") or {}).get("epoch", ckpt.get("epoch", 0)))


def prepare_run_dir(cfg: DictConfig) -> RunStart:
    """Decide, without writing anything, how this pretrain uses its run directory (RunStart); refuse what would
    lose work. A run_dir may hold a run (its checkpoints, config, logs, what evaluate wrote) and files of the
    user's beside it; a folder of other files that holds no run is refused. A run that stopped before its
    first checkpoint (killed, or failed in its first steps) starts again, with or without resume=true."""
    run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
    if bool(cfg.resume) and not cfg.run_dir:
        raise UserError("resume=true needs run_dir=DIR: the run directory printed when the run started")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run_dir '{run_dir}' is an existing file, not a folder; choose another run_dir (the file "
                        "was left as it is)")
    held = list_entries(run_dir) if run_dir.is_dir() else []
    # the run's own dataset may live inside it (the demo's RUN/dataset): read by the run, never cleared
    data_root = Path(cfg.data.root).resolve()
    held = [name for name in held if (run_dir / name).resolve() != data_root]
    ours = [name for name in held if _is_run_entry(name)]
    foreign = [name for name in held if not _is_run_entry(name)]
    is_run = "config.yaml" in ours or "checkpoints" in ours
    if foreign and not is_run:
        raise UserError(f"run_dir '{run_dir}' is a folder that holds no skelssl run ({', '.join(foreign[:4])}"
                        f"{' ...' if len(foreign) > 4 else ''}); choose a new or empty folder (it was left as it is)")
    kept = f"; {', '.join(foreign[:4])} of yours stay" if foreign else ""
    if is_run and not run_has_checkpoint(run_dir):
        return RunStart(run_dir, clear=ours, note=f"'{run_dir}' holds a run that stopped before its first "
                                                  f"checkpoint: starting it again{kept}")
    if bool(cfg.resume):
        if not is_run:
            raise UserError(f"nothing to resume in '{run_dir}': it holds no skelssl run (no config.yaml, no "
                            "checkpoints/); start the run without resume=true")
        ckpt = resume_checkpoint(run_dir)
        saved = read_checkpoint(ckpt)
        trained = _trained_epochs(saved)
        if int(cfg.trainer.epochs) < trained:
            raise UserError(f"'{run_dir}' has already trained {trained} epochs; trainer.epochs={cfg.trainer.epochs} "
                            f"would end before where it stands. Give trainer.epochs >= {trained} to continue it "
                            "(nothing was changed)")
        return RunStart(run_dir, checkpoint=ckpt, changes=resume_changes(saved["hyper_parameters"]["cfg"], cfg))
    if is_run and not bool(cfg.get("overwrite", False)):
        raise UserError(f"'{run_dir}' already holds a run ({', '.join(ours)}); pass resume=true to continue it, "
                        "overwrite=true to delete it and start again, or choose another run_dir")
    if not is_run:  # evaluate's or analyze's files without a run: they stay, the run starts beside them
        return RunStart(run_dir)
    return RunStart(run_dir, clear=ours, note=f"overwrite=true: deleting the run in '{run_dir}'{kept}")


def pretrain(cfg: DictConfig, command: list[str] | None = None, max_epochs: int | None = None,
             callbacks: list | None = None) -> Path:
    """Pretrain `cfg.method.name`; returns the run directory (holding config.yaml and checkpoints/last.ckpt).

    `max_epochs` stops early (used by tests to simulate an interruption) without changing the schedule;
    `callbacks` are extra Lightning callbacks. With resume=true the run continues from its last checkpoint
    (previous.ckpt if last.ckpt is damaged), mid-epoch checkpoints included, with the changes RESUMABLE allows.
    """
    set_threads(cfg)
    start = prepare_run_dir(cfg)  # refusals come before anything is written
    run_dir, ckpt = start.run_dir, start.checkpoint
    cfg.run_dir = str(run_dir)
    L.seed_everything(int(cfg.trainer.seed), workers=True, verbose=False)
    ensure_dataset(cfg)
    warn_if_unnormalised(cfg.data.root)
    datamodule = SkeletonDataModule(cfg.data.root, cfg.data.split, int(cfg.trainer.batch_size),
                                    int(cfg.data.num_workers), seed=int(cfg.trainer.seed))
    if int(cfg.method.queue_size) < int(cfg.trainer.batch_size):
        raise UserError(f"method.queue_size ({cfg.method.queue_size}) is smaller than trainer.batch_size "
                        f"({cfg.trainer.batch_size}); the queue must hold at least one batch of keys")
    layout = datamodule.train_dataset.layout
    method = build_method(cfg, layout, train_data_info={
        "root": str(cfg.data.root), "split": cfg.data.split, "samples": len(datamodule.train_dataset),
        "num_classes": datamodule.train_dataset.num_classes,
        "channels": int(datamodule.train_dataset.data.shape[1]),
        "channel_names": list(datamodule.train_dataset.meta.channel_names)})
    if bool(cfg.trainer.sync_batchnorm):  # statistics over the global batch of all processes
        convert_to_global_batchnorm(method)
    if ckpt is not None:
        check_checkpoint_method(ckpt, cfg.method.name)
    elif cfg.model.get("init_from"):
        taken = initialize_from_checkpoint(method, cfg.model.init_from)
        print(f"model.init_from: {' and '.join(taken)} from {cfg.model.init_from}"
              + ("" if "projector" in taken else "; a fresh projector (the checkpoint holds only an encoder)"))
    start.apply(cfg, command if command is not None else sys.argv)
    try:
        trainer = build_trainer(cfg, run_dir, max_epochs=max_epochs, extra_callbacks=callbacks)
    except BaseException:
        start.undo()
        raise
    if ckpt is not None:
        _announce_resume(ckpt, run_dir, start.changes, datamodule)
    with warnings.catch_warnings():
        # skelssl restores the data position of a mid-epoch checkpoint itself (SkeletonDataModule.resume_at)
        warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")
        trainer.fit(method, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
    return run_dir


def _announce_resume(ckpt: Path, run_dir: Path, changes: dict[str, tuple[Any, Any]],
                     datamodule: SkeletonDataModule) -> None:
    """Say where the run resumes, record the config changes, and put the data order where it stopped."""
    saved = read_checkpoint(ckpt)
    position = saved["skelssl"].get("data_position") or {}
    epoch, batches = int(position.get("epoch", saved.get("epoch", 0))), int(position.get("batches", 0))
    step = int(saved.get("global_step", 0))
    if batches and batches < len(datamodule.train_dataloader()):  # a mid-epoch checkpoint
        datamodule.resume_at(epoch, batches)
        where = f"epoch {epoch} after {batches} batches"
    else:
        where = f"the end of epoch {epoch}"
    print(f"[skelssl] resuming {run_dir} from {ckpt.name}: step {step}, {where}", flush=True)
    if changes:
        described = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())
        print(f"[skelssl] changed on resume: {described}", flush=True)
        with open(run_dir / "changes.log", "a") as fh:
            fh.write(f"step {step} ({where}): {described}\n")
