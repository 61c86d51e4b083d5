"""Pretraining with Lightning: run directory, loggers, checkpoints (skelssl.checkpoints), exact resume."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from omegaconf import DictConfig

from skelssl.checkpoints import LAST_CHECKPOINT, RunCheckpoint, check_checkpoint_method, initialize_from_checkpoint
from skelssl.config import save_config
from skelssl.data.dataset import SkeletonDataModule
from skelssl.errors import UserError
from skelssl.evaluation.monitor import knn_monitor_from_config
from skelssl.methods import get_method
from skelssl.methods.core.monitor import CollapseMonitor
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


def set_threads(cfg: DictConfig) -> None:
    if int(cfg.trainer.get("threads", 0)) > 0:
        torch.set_num_threads(int(cfg.trainer.threads))


def build_trainer(cfg: DictConfig, run_dir: Path, max_epochs: int | None = None,
                  extra_callbacks: list | None = None) -> L.Trainer:
    t = cfg.trainer
    callbacks: list[Any] = [RunCheckpoint(run_dir / "checkpoints", every_n_epochs=int(t.checkpoint_every_n_epochs)),
                            CollapseMonitor()]
    knn_monitor = knn_monitor_from_config(cfg, run_dir)  # after the collapse monitor: it reads its figures
    if knn_monitor is not None:
        callbacks.append(knn_monitor)
    if t.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
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
        enable_progress_bar=bool(t.progress_bar),
        log_every_n_steps=int(t.log_every_n_steps),
        default_root_dir=str(run_dir),
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def pretrain(cfg: DictConfig, command: list[str] | None = None, max_epochs: int | None = None,
             callbacks: list | None = None) -> Path:
    """Pretrain `cfg.method.name`; returns the run directory (holding config.yaml and checkpoints/last.ckpt).

    `max_epochs` stops early (used by tests to simulate an interruption) without changing the schedule;
    `callbacks` are extra Lightning callbacks.
    """
    set_threads(cfg)
    resume = bool(cfg.resume)
    if resume:
        if not cfg.run_dir:
            raise UserError("resume=true needs run_dir=DIR: the run directory printed when the run started")
        run_dir = Path(cfg.run_dir)
        ckpt = run_dir / LAST_CHECKPOINT
        if not ckpt.is_file():
            raise UserError(f"nothing to resume in '{run_dir}': {ckpt} does not exist")
    else:
        run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
        if (run_dir / LAST_CHECKPOINT).is_file():
            raise UserError(f"'{run_dir}' already holds a run; pass resume=true to continue it, "
                            "or choose another run_dir")
        ckpt = None
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.run_dir = str(run_dir)
    save_config(cfg, run_dir / "config.yaml")
    with open(run_dir / "command.txt", "a") as fh:
        fh.write(shlex.join(command if command is not None else sys.argv) + "\n")

    L.seed_everything(int(cfg.trainer.seed), workers=True, verbose=False)
    ensure_dataset(cfg)
    datamodule = SkeletonDataModule(cfg.data.root, cfg.data.split, int(cfg.trainer.batch_size),
                                    int(cfg.data.num_workers), seed=int(cfg.trainer.seed))
    if int(cfg.method.queue_size) < int(cfg.trainer.batch_size):
        raise UserError(f"method.queue_size ({cfg.method.queue_size}) is smaller than trainer.batch_size "
                        f"({cfg.trainer.batch_size}); the queue must hold at least one batch of keys")
    layout = datamodule.train_dataset.layout
    method = get_method(cfg.method.name)(cfg, layout=layout, train_data_info={
        "root": str(cfg.data.root), "split": cfg.data.split, "samples": len(datamodule.train_dataset),
        "num_classes": datamodule.train_dataset.num_classes,
        "channels": int(datamodule.train_dataset.data.shape[1])})
    if ckpt is not None:
        check_checkpoint_method(ckpt, cfg.method.name)
    elif cfg.model.get("init_from"):
        initialize_from_checkpoint(method, cfg.model.init_from)
    trainer = build_trainer(cfg, run_dir, max_epochs=max_epochs, extra_callbacks=callbacks)
    trainer.fit(method, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
    return run_dir
