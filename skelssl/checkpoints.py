"""Checkpoints of a pretraining run: written so that a kill cannot erase them, read without running code.

`RunCheckpoint` writes RUN/checkpoints/last.ckpt at the end of every `every_n_epochs`-th epoch, every
`every_n_minutes` inside an epoch (optional, for long epochs) and when training ends: to a temporary file,
flushed to disk, then renamed; the checkpoint it replaces becomes previous.ckpt. At any moment one complete
checkpoint exists, and a damaged last.ckpt (a copy cut short, a full disk) falls back to previous.ckpt
(`resume_checkpoint`). Lightning's ModelCheckpoint with save_top_k=0 wrote "last" only when training ended.

Checkpoints carry the skelssl version, a format number and a hash of the run's config; `read_checkpoint`
loads with `weights_only=True` (a file whose unpickling would run code is refused), refuses a format newer than
this skelssl reads, and migrates older ones (moved config keys, renamed state entries).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from omegaconf import OmegaConf

from skelssl import __version__
from skelssl.defaults import migrate_config
from skelssl.errors import UserError
from skelssl.models.finite import first_nonfinite

__all__ = ["LAST_CHECKPOINT", "PREVIOUS_CHECKPOINT", "CHECKPOINT_FORMAT", "RunCheckpoint", "read_checkpoint",
           "resume_checkpoint", "atomic_save", "run_dir_of", "checkpoint_file", "config_hash", "checkpoint_metadata",
           "initialize_from_checkpoint", "check_checkpoint_method"]

LAST_CHECKPOINT = "checkpoints/last.ckpt"
PREVIOUS_CHECKPOINT = "checkpoints/previous.ckpt"
# 1: before versioned checkpoints (flat model.* keys, ActCLR's selector.anchor); 2: this layout.
CHECKPOINT_FORMAT = 2


def config_hash(cfg: Any) -> str:
    """A short hash of a resolved config (what produced the weights)."""
    container = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
    return hashlib.sha256(json.dumps(container, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_metadata(cfg: Any) -> dict[str, Any]:
    """What every checkpoint carries besides the weights: who wrote it and for which config."""
    return {"version": __version__, "format": CHECKPOINT_FORMAT, "config_hash": config_hash(cfg)}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(trainer: L.Trainer, path: Path, keep_previous: Path | None = None) -> None:
    """trainer.save_checkpoint to `path` through a temporary file, flushed and renamed (rank 0 writes); the
    file it replaces is renamed to `keep_previous` first (when given)."""
    tmp = path.with_name(path.name + ".tmp")
    trainer.save_checkpoint(tmp)
    if trainer.is_global_zero:
        _fsync(tmp)
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
        _fsync(path.parent)  # the renames themselves reach the disk
    trainer.strategy.barrier()


class RunCheckpoint(Checkpoint):
    """last.ckpt at every `every_n_epochs`-th epoch end, every `every_n_minutes` (0: never) after an optimiser
    step inside an epoch, and at the end of training (module docstring).

    A subclass of Lightning's Checkpoint, so that Lightning calls it after the module's own epoch-end hook,
    as it does ModelCheckpoint. A mid-epoch checkpoint records how many batches of the epoch were done; the
    resumed run skips exactly those (data.dataset.EpochSeededSampler)."""

    def __init__(self, dirpath: str | Path, every_n_epochs: int = 1, every_n_minutes: float = 0.0) -> None:
        super().__init__()
        if int(every_n_epochs) < 1:
            raise UserError(f"trainer.checkpoint_every_n_epochs must be >= 1, got {every_n_epochs}")
        if float(every_n_minutes) < 0:
            raise UserError(f"trainer.checkpoint_every_minutes must be >= 0, got {every_n_minutes}")
        self.dirpath = Path(dirpath)
        self.every_n_epochs = int(every_n_epochs)
        self.every_seconds = 60.0 * float(every_n_minutes)
        self._saved_at_step: int | None = None
        self._last_time = time.monotonic()

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def save(self, trainer: L.Trainer) -> None:
        if self._saved_at_step == trainer.global_step:
            return
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
        atomic_save(trainer, self.last_path, keep_previous=self.dirpath / "previous.ckpt")
        self._saved_at_step = trainer.global_step
        self._last_time = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.every_seconds > 0 and time.monotonic() - self._last_time >= self.every_seconds:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)


def _load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        message = str(err).strip().splitlines()
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise UserError(f"'{path}' holds more than tensors and plain values (its unpickling would import or "
                            "run code); skelssl does not load such files. If you wrote it yourself with another "
                            "tool, re-save its state_dict with torch.save") from None
        raise UserError(f"'{path}' is not a readable checkpoint ({type(err).__name__}: "
                        f"{message[0] if message else 'empty'}); a copy cut short or a full disk leaves such "
                        "files") from None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A skelssl pretraining checkpoint as a dict, loaded with weights_only=True (no code runs), in the current
    format (older formats migrated, newer ones refused)."""
    path = checkpoint_file(path)
    ckpt = _load(path)
    if not isinstance(ckpt, dict) or "skelssl" not in ckpt or "hyper_parameters" not in ckpt:
        raise UserError(f"'{path}' is not a skelssl pretraining checkpoint (it lacks the skelssl metadata); "
                        "use RUN/checkpoints/last.ckpt of a `skelssl pretrain` run")
    hp, state = ckpt["hyper_parameters"], ckpt.get("state_dict")
    if not isinstance(hp, dict) or not isinstance(hp.get("cfg"), dict) or not isinstance(state, dict) or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        missing = "hyper_parameters.cfg (the run's config)" if not isinstance(hp, dict) or \
            not isinstance(hp.get("cfg"), dict) else "a state_dict of named tensors"
        raise UserError(f"'{path}' is a damaged skelssl checkpoint: it lacks {missing}; use the run's "
                        "checkpoints/previous.ckpt, or pretrain again")
    bad = first_nonfinite(state.items())
    if bad is not None:
        raise UserError(f"'{path}': the tensor '{bad}' holds NaN or infinite values; skelssl does not evaluate or "
                        "continue such weights (use the run's checkpoints/previous.ckpt, or pretrain again with a "
                        "lower optim.lr)")
    info = ckpt["skelssl"]
    found = int(info.get("format", 1))
    if found > CHECKPOINT_FORMAT:
        raise UserError(f"'{path}' was written by skelssl {info.get('version', '?')} in checkpoint format {found}; "
                        f"this skelssl ({__version__}) reads formats up to {CHECKPOINT_FORMAT}: upgrade skelssl")
    ckpt["hyper_parameters"]["cfg"] = migrate_config(ckpt["hyper_parameters"]["cfg"])
    return ckpt


def resume_checkpoint(run_dir: str | Path, quiet: bool = False) -> Path:
    """The checkpoint a resumed run starts from: last.ckpt, or previous.ckpt when last.ckpt is missing or
    damaged (said in one line, unless `quiet`). An error names both when neither is usable."""
    run_dir = Path(run_dir)
    last, previous = run_dir / LAST_CHECKPOINT, run_dir / PREVIOUS_CHECKPOINT
    problems = []
    for path in (last, previous):
        if not path.is_file():
            problems.append(f"{path} does not exist")
            continue
        try:
            read_checkpoint(path)
        except UserError as err:
            problems.append(str(err))
            continue
        if path == previous and not quiet:
            print(f"[skelssl] {problems[0]}; resuming from the checkpoint before it, {previous}", flush=True)
        return path
    raise UserError(f"nothing to resume in '{run_dir}': " + "; ".join(problems))


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint file a `--checkpoint` names: the file itself, or RUN/checkpoints/last.ckpt for a run
    directory RUN."""
    path = Path(path)
    if path.is_dir():
        if (path / LAST_CHECKPOINT).is_file():
            return path / LAST_CHECKPOINT
        raise UserError(f"'{path}' is a folder without {LAST_CHECKPOINT}: give a checkpoint file or the directory "
                        "of a `skelssl pretrain` run")
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist")
    return path


def run_dir_of(checkpoint: str | Path) -> Path:
    """RUN/checkpoints/last.ckpt (or RUN itself) -> RUN (a checkpoint elsewhere: its folder)."""
    path = Path(checkpoint).resolve()
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def initialize_from_checkpoint(method: Any, path: str | Path) -> list[str]:
    """Start `method` from another run's query encoder and projector (`model.init_from`, a checkpoint or a run
    directory), as the official ActCLR starts from AimCLR's epoch-300 weights, or continue pretraining an
    imported encoder (`skelssl import`, which holds an encoder and no projector: the projector then keeps its
    fresh initialisation). Both the query and the key networks get the weights (they start identical, as at any
    start); the queue, optimizer and schedule start fresh. Any method's checkpoint works as long as the encoder
    (and a projector it holds) have the same shapes. Returns the parts taken from the checkpoint."""
    ckpt = read_checkpoint(path)
    state = ckpt["state_dict"]
    taken = []
    for prefix in ("encoder", "projector"):
        source = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(f"{prefix}_q.")}
        if not source and prefix == "projector":  # an imported encoder: a fresh projector on it
            continue
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
        taken.append(prefix)
    return taken  # without a projector in the checkpoint, both keep their fresh, identical initialisation


def check_checkpoint_method(path: str | Path, method_name: str) -> None:
    ckpt = read_checkpoint(path)
    found = ckpt["skelssl"].get("method")
    if found != method_name:
        raise UserError(f"checkpoint '{path}' was trained with method '{found}', but the config asks for "
                        f"'{method_name}'; resume with the same method (method.name={found}) or start a new run")
