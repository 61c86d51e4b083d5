"""A warm-up stage: the first epochs of a run trained with another method's loss, on the same networks.

ActCLR's training overview (ActCLR §3.2, step 1) starts from encoders pre-trained with MoCo v2, and the
official code starts ActCLR from AimCLR's weights; ActCLR+ extends ActCLR. Run as two separate runs this is a
chain of checkpoints (`model.init_from`); as a stage it is one command, one checkpoint, one resume.

A method whose `DEFAULTS` hold `"warmup": {"method": NAME, "epochs": E, "overrides": {}}` trains its first E
epochs (0-based epochs 0..E-1) with the loss of method NAME. The warm-up method (the *guest*) is built once
from the run's config with its own `method.*` defaults (e.g. SkeletonCLR's τ 0.07), the run's queue size,
momentum and feature size, and `warmup.overrides`; then its networks are replaced by the run's own: the
query and key encoders and projectors, the memory queue, the plug-ins and the augmentation generator are the
run's objects. The guest's loss therefore trains the run's networks, fills the run's queue, draws from the
run's generator, and everything the guest touched is saved in, and resumed from, the run's checkpoint. The
run's optimiser, learning-rate schedule and momentum update apply throughout.

Only guests whose whole state is those shared objects are accepted (SkeletonCLR, AimCLR); a guest with state
of its own (a head, an anchor) is refused at build time, since that state would not be checkpointed.
`warmup.epochs=0` switches the stage off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from skelssl.errors import UserError
from skelssl.methods.registry import build_method, get_method
from skelssl.settings import plain

if TYPE_CHECKING:
    from skelssl.methods.core.base import MoCoMethod

__all__ = ["WarmupStage", "SHARED_MODULES"]

# The run's objects the guest works on (its own copies are dropped).
SHARED_MODULES = ("encoder_q", "encoder_k", "projector_q", "projector_k", "queue", "plugins")
# Host keys the guest inherits: the networks and the queue it shares must have the run's shapes and update.
INHERITED_KEYS = ("queue_size", "momentum", "feature_dim")


class WarmupStage:
    """The warm-up of `host`: `active(epoch)` says whether `epoch` belongs to it, `training_loss(batch)` is
    the guest method's loss computed on the host's networks (module docstring)."""

    def __init__(self, host: "MoCoMethod", method: str, epochs: int, overrides: dict[str, Any] | None = None):
        self.epochs = int(epochs)
        if self.epochs < 0:
            raise UserError(f"method.warmup.epochs must be >= 0, got {epochs}")
        guest_cls = get_method(method)
        if guest_cls.name == host.name:
            raise UserError(f"method.warmup.method is '{method}', the run's own method: warm up with another "
                            "(e.g. skeletonclr, the paper's MoCo v2, or aimclr, the official code's start)")
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(guest_cls.DEFAULTS))
        if unknown:
            raise UserError(f"method.warmup.overrides: {unknown} are not keys of method '{method}'; its keys: "
                            f"{', '.join(sorted(guest_cls.DEFAULTS))}")
        cfg = OmegaConf.create(OmegaConf.to_container(host.cfg, resolve=True))
        section = {**plain(guest_cls.DEFAULTS), **{k: host.cfg.method[k] for k in INHERITED_KEYS}, **overrides}
        cfg.method = OmegaConf.create({**section, "name": guest_cls.name})
        cfg.plugins = {}  # the guest uses the run's plug-ins
        cfg.model.init_from = None
        # Building the guest draws its own (discarded) initial weights: keep the run's random stream as it was.
        with torch.random.fork_rng(devices=[]):
            guest = build_method(cfg, host.layout, host.train_data_info)
        for name in SHARED_MODULES:
            setattr(guest, name, getattr(host, name))
        own = [key for key in guest.state_dict() if key.split(".", 1)[0] not in SHARED_MODULES]
        if own:
            raise UserError(f"method '{method}' cannot be a warm-up stage: it has state of its own ({own[0]}, "
                            f"{len(own)} tensors) that the run's checkpoint would not hold; use skeletonclr "
                            "or aimclr")
        # Not an attribute nn.Module registers: the guest's modules are the host's, saved once, under their names.
        self._guest = [guest]
        self.method = guest_cls.name

    @classmethod
    def from_config(cls, host: "MoCoMethod") -> "WarmupStage | None":
        """The stage described by `host.cfg.method.warmup`, or None when absent or `epochs` is 0."""
        section = host.cfg.method.get("warmup")
        if section is None or int(section.get("epochs", 0)) == 0:
            return None
        overrides = section.get("overrides") or {}
        if isinstance(overrides, DictConfig):
            overrides = OmegaConf.to_container(overrides, resolve=True)
        return cls(host, str(section.method), int(section.epochs), overrides)

    @property
    def guest(self) -> "MoCoMethod":
        return self._guest[0]

    def active(self, epoch: int) -> bool:
        return epoch < self.epochs

    def training_loss(self, host: "MoCoMethod", batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        """The guest's loss on the host's networks; what it watches, exposes and enqueues lands in the host."""
        guest = self.guest
        if guest.device != host.device:
            guest.to(host.device)  # its modules are the host's, already there: this moves only its bookkeeping
        guest._trainer = host._trainer  # the guest's current_epoch is the run's (AimCLR's NNM switch reads it)
        guest._generator = host.generator
        guest.watched, guest.exposed, guest._pending_keys = host.watched, host.exposed, host._pending_keys
        loss, logs = guest.training_loss(batch)
        return loss, {f"warmup/{key}": value for key, value in logs.items()}
