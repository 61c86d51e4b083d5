"""Checkpoints of a pretraining run: written so that a kill cannot erase them, read without running code.

`RunCheckpoint` writes RUN/checkpoints/last.ckpt at the end of every `every_n_epochs`-th epoch and when
training ends: to a temporary file, flushed to disk, then renamed over the previous one, so that at any
moment last.ckpt is a complete checkpoint (the previous one until the new one is whole). Lightning's
ModelCheckpoint with save_top_k=0 writes "last" only when training ends, so a run killed at epoch 299 of
300 would leave nothing to resume.

`read_checkpoint` loads with `weights_only=True`: a checkpoint holds tensors and plain containers only, and
a file that needs more (a crafted pickle that would run code) is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from omegaconf import OmegaConf

from skelssl.config import migrate_config
from skelssl.errors import UserError

__all__ = ["LAST_CHECKPOINT", "RunCheckpoint", "read_checkpoint", "atomic_save", "run_dir_of",
           "method_from_checkpoint", "initialize_from_checkpoint", "check_checkpoint_method"]

LAST_CHECKPOINT = "checkpoints/last.ckpt"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(trainer: L.Trainer, path: Path) -> None:
    """trainer.save_checkpoint to `path` through a temporary file, flushed and renamed (rank 0 writes)."""
    tmp = path.with_name(path.name + ".tmp")
    trainer.save_checkpoint(tmp)
    if trainer.is_global_zero:
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)  # the rename itself reaches the disk
    trainer.strategy.barrier()


class RunCheckpoint(Checkpoint):
    """last.ckpt at every `every_n_epochs`-th epoch end and at the end of training (module docstring).

    A subclass of Lightning's Checkpoint, so that Lightning calls it after the module's own epoch-end hook,
    as it does ModelCheckpoint."""

    def __init__(self, dirpath: str | Path, every_n_epochs: int = 1) -> None:
        super().__init__()
        if int(every_n_epochs) < 1:
            raise UserError(f"trainer.checkpoint_every_n_epochs must be >= 1, got {every_n_epochs}")
        self.dirpath = Path(dirpath)
        self.every_n_epochs = int(every_n_epochs)
        self._saved_at_step: int | None = None

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def save(self, trainer: L.Trainer) -> None:
        if self._saved_at_step == trainer.global_step:
            return
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
        atomic_save(trainer, self.last_path)
        self._saved_at_step = trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A skelssl pretraining checkpoint as a dict, loaded with weights_only=True (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        message = str(err).strip().splitlines()
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise UserError(f"'{path}' holds more than tensors and plain values (its unpickling would import or "
                            "run code); skelssl does not load such files. If you wrote it yourself with another "
                            "tool, re-save its state_dict with torch.save") from None
        raise UserError(f"'{path}' is not a readable checkpoint ({type(err).__name__}: "
                        f"{message[0] if message else ''})") from None
    if not isinstance(ckpt, dict) or "skelssl" not in ckpt or "hyper_parameters" not in ckpt:
        raise UserError(f"'{path}' is not a skelssl pretraining checkpoint (it lacks the skelssl metadata); "
                        "use RUN/checkpoints/last.ckpt of a `skelssl pretrain` run")
    ckpt["hyper_parameters"]["cfg"] = migrate_config(ckpt["hyper_parameters"]["cfg"])
    return ckpt


def run_dir_of(checkpoint: str | Path) -> Path:
    """RUN/checkpoints/last.ckpt -> RUN (a checkpoint elsewhere: its folder)."""
    path = Path(checkpoint).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def initialize_from_checkpoint(method: Any, path: str | Path) -> None:
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
                           load_weights: bool = True) -> Any:
    """Rebuild the pretrained method from a checkpoint.

    load_weights=False gives the random-init baseline: the run's own starting point, drawn again from the
    run's seed (as `pretrain` draws it), so the baseline is reproducible and shared by every method with
    the same model settings and seed.
    """
    from skelssl.methods import get_method

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
        method.load_state_dict(method.migrate_state_dict(ckpt["state_dict"]))
    return method

