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
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from skelssl.checkpoints import LAST_CHECKPOINT, RunCheckpoint, read_checkpoint
from skelssl.config import save_config
from skelssl.data.dataset import SkeletonDataModule
from skelssl.errors import UserError
from skelssl.methods import get_method
from skelssl.methods.base import MoCoMethod

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
    callbacks: list[Any] = [RunCheckpoint(run_dir / "checkpoints", every_n_epochs=int(t.checkpoint_every_n_epochs))]
    if t.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    callbacks.extend(extra_callbacks or [])
    loggers = [CSVLogger(str(run_dir), name="logs")]
    try:
        loggers.append(TensorBoardLogger(str(run_dir), name="tensorboard"))
    except ModuleNotFoundError:  # tensorboard is optional at run time
        pass
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
        "num_classes": datamodule.train_dataset.num_classes})
    if ckpt is not None:
        check_checkpoint_method(ckpt, cfg.method.name)
    elif cfg.model.get("init_from"):
        initialize_from_checkpoint(method, cfg.model.init_from)
    trainer = build_trainer(cfg, run_dir, max_epochs=max_epochs, extra_callbacks=callbacks)
    trainer.fit(method, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
    return run_dir


def initialize_from_checkpoint(method: MoCoMethod, path: str | Path) -> None:
    """Start `method` from another run's query encoder and projector (`model.init_from`), as the official
    ActCLR starts from AimCLR's epoch-300 weights. Both the query and the key networks get them (they start
    identical, as at any start); the queue, optimizer and schedule start fresh. Any method's checkpoint
    works as long as the encoder and projector have the same shapes."""
    ckpt = read_checkpoint(path)
    state = ckpt["state_dict"]
    for prefix in ("encoder", "projector"):
        source = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(f"{prefix}_q.")}
        query, key_net = getattr(method, f"{prefix}_q"), getattr(method, f"{prefix}_k")  # same structure
        own = query.state_dict()
        differ = [k for k in own if k not in source or source[k].shape != own[k].shape]
        differ += [k for k in source if k not in own]
        if differ:
            name = differ[0]
            theirs = tuple(source[name].shape) if name in source else "absent"
            ours = tuple(own[name].shape) if name in own else "absent"
            raise UserError(f"model.init_from='{path}': its {prefix} does not fit this run's: '{name}' is "
                            f"{theirs} there and {ours} here ({len(differ)} tensors differ); use the same "
                            "model.* settings and method.feature_dim as the run that wrote it")
        query.load_state_dict(source)
        key_net.load_state_dict(source)


def check_checkpoint_method(path: str | Path, method_name: str) -> None:
    ckpt = read_checkpoint(path)
    found = ckpt["skelssl"].get("method")
    if found != method_name:
        raise UserError(f"checkpoint '{path}' was trained with method '{found}', but the config asks for "
                        f"'{method_name}'; resume with the same method (method.name={found}) or start a new run")


def method_from_checkpoint(path: str | Path, overrides: dict[str, Any] | None = None,
                           load_weights: bool = True) -> MoCoMethod:
    """Rebuild the pretrained method from a checkpoint.

    load_weights=False gives the random-init baseline: the run's own starting point, drawn again from the
    run's seed (as `pretrain` draws it), so the baseline is reproducible and shared by every method with
    the same model settings and seed.
    """
    ckpt = read_checkpoint(path)
    hp = ckpt["hyper_parameters"]
    cfg = OmegaConf.create(hp["cfg"])
    if overrides:
        cfg = OmegaConf.merge(cfg, overrides)
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG stream is left as it was
        if not load_weights:
            torch.manual_seed(int(cfg.trainer.seed))
        method = get_method(cfg.method.name)(cfg, layout=hp["layout"], train_data_info=hp.get("train_data_info"))
    if load_weights:
        method.load_state_dict(ckpt["state_dict"])
    return method
