"""Pretraining with Lightning: run directory, loggers, checkpoints (skelssl.checkpoints), exact resume."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from skelssl.checkpoints import (RunCheckpoint, check_checkpoint_method, initialize_from_checkpoint, read_checkpoint,
                                 resume_checkpoint)
from skelssl.config import save_config
from skelssl.data.dataset import SkeletonDataModule
from skelssl.errors import UserError
from skelssl.lightning_progress import progress_callbacks
from skelssl.evaluation.monitor import knn_monitor_from_config
from skelssl.methods import get_method
from skelssl.methods.core.monitor import CollapseMonitor
from skelssl.models.sync_batchnorm import convert_to_global_batchnorm
from skelssl.tracking import build_loggers

def default_run_dir(cfg: DictConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.method.name}-{cfg.data.dataset}-{cfg.data.split}-{cfg.data.stream}-{stamp}"


def ensure_dataset(cfg: DictConfig) -> None:
    """The synthetic dataset is generated on first use; real datasets must be prepared by the user."""
    root = Path(cfg.data.root)
    if (root / "meta.json").is_file():
        return
    if cfg.data.dataset == "synthetic":
        from skelssl.data.synthetic import prepare_synthetic

        prepare_synthetic(root, seed=int(cfg.trainer.seed))
        return
    raise UserError(f"no prepared dataset at data.root='{root}': run `skelssl prepare {cfg.data.dataset} ...` "
                    "first (see docs/data.md), or point data.root at a prepared dataset")


def warn_if_unnormalised(root: str | Path) -> None:
    """Say, before a run spends hours on it, when the prepared data looks un-normalised (and what fixes it)."""
    from skelssl.data.normalize import dataset_warnings
    from skelssl.data.prepared import load_meta, open_data

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


def prepare_run_dir(cfg: DictConfig) -> tuple[Path, Path | None, dict[str, tuple[Any, Any]]]:
    """(run directory, checkpoint to resume from or None, config changes applied on resume)."""
    if bool(cfg.resume):
        if not cfg.run_dir:
            raise UserError("resume=true needs run_dir=DIR: the run directory printed when the run started")
        run_dir = Path(cfg.run_dir)
        ckpt = resume_checkpoint(run_dir)
        return run_dir, ckpt, resume_changes(read_checkpoint(ckpt)["hyper_parameters"]["cfg"], cfg)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
    held = [name for name in RUN_FILES if (run_dir / name).exists()]
    if held and not bool(cfg.get("overwrite", False)):
        raise UserError(f"'{run_dir}' already holds a run ({', '.join(held)}); pass resume=true to continue it, "
                        "overwrite=true to delete it and start again, or choose another run_dir")
    for name in held:  # overwrite=true
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return run_dir, None, {}


def pretrain(cfg: DictConfig, command: list[str] | None = None, max_epochs: int | None = None,
             callbacks: list | None = None) -> Path:
    """Pretrain `cfg.method.name`; returns the run directory (holding config.yaml and checkpoints/last.ckpt).

    `max_epochs` stops early (used by tests to simulate an interruption) without changing the schedule;
    `callbacks` are extra Lightning callbacks. With resume=true the run continues from its last checkpoint
    (previous.ckpt if last.ckpt is damaged), mid-epoch checkpoints included, with the changes RESUMABLE allows.
    """
    set_threads(cfg)
    run_dir, ckpt, changes = prepare_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.run_dir = str(run_dir)
    save_config(cfg, run_dir / "config.yaml")
    with open(run_dir / "command.txt", "a") as fh:
        fh.write(shlex.join(command if command is not None else sys.argv) + "\n")

    L.seed_everything(int(cfg.trainer.seed), workers=True, verbose=False)
    ensure_dataset(cfg)
    warn_if_unnormalised(cfg.data.root)
    datamodule = SkeletonDataModule(cfg.data.root, cfg.data.split, int(cfg.trainer.batch_size),
                                    int(cfg.data.num_workers), seed=int(cfg.trainer.seed))
    if int(cfg.method.queue_size) < int(cfg.trainer.batch_size):
        raise UserError(f"method.queue_size ({cfg.method.queue_size}) is smaller than trainer.batch_size "
                        f"({cfg.trainer.batch_size}); the queue must hold at least one batch of keys")
    layout = datamodule.train_dataset.layout
    method = get_method(cfg.method.name)(cfg, layout=layout, train_data_info={
        "root": str(cfg.data.root), "split": cfg.data.split, "samples": len(datamodule.train_dataset),
        "num_classes": datamodule.train_dataset.num_classes,
        "channels": int(datamodule.train_dataset.data.shape[1]),
        "channel_names": list(datamodule.train_dataset.meta.channel_names)})
    if bool(cfg.trainer.sync_batchnorm):  # statistics over the global batch of all processes
        convert_to_global_batchnorm(method)
    if ckpt is not None:
        check_checkpoint_method(ckpt, cfg.method.name)
        _announce_resume(ckpt, run_dir, changes, datamodule)
    elif cfg.model.get("init_from"):
        initialize_from_checkpoint(method, cfg.model.init_from)
    trainer = build_trainer(cfg, run_dir, max_epochs=max_epochs, extra_callbacks=callbacks)
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
