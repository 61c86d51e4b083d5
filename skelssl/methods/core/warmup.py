"""A warm-up stage: the first epochs of a run trained with another method's loss, on the same networks.

ActCLR's training overview (ActCLR §3.2, step 1) starts from encoders pre-trained with MoCo v2, and the
official code starts ActCLR from AimCLR's weights; ActCLR+ extends ActCLR. Run as two separate runs this is a
chain of checkpoints (`model.init_from`); as a stage it is one command, one checkpoint, one resume.

A method whose `DEFAULTS` hold `"warmup": {"method": NAME, "epochs": E, "overrides": {}}` trains its first E
epochs (0-based epochs 0..E-1) with the loss of method NAME. No second model is built: method NAME gives its
loss as a function of the run and a batch (`MoCoMethod.stage_loss(section)`), computed on the run's own networks,
queue, plug-ins and augmentation generator, with its own `method.*` keys (`section`: its DEFAULTS, e.g.
SkeletonCLR's τ 0.07, then the run's queue size, momentum and feature size, then `warmup.overrides`, each
checked against the method's rules). So everything the warm-up touches is the run's, saved in and resumed from
the run's checkpoint; the run's optimiser, learning-rate schedule and momentum update apply throughout.

Only methods that declare their own `stage_loss` can be a stage (SkeletonCLR, AimCLR): their whole state is
the shared networks and queue. Any other (a head or an anchor of its own, which the run would not train or
save) is refused when the run is built. `warmup.epochs=0` switches the stage off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from skelssl.errors import UserError
from skelssl.methods.registry import get_method
from skelssl.settings import first_problem, plain, rules

if TYPE_CHECKING:
    from skelssl.methods.core.base import MoCoMethod

__all__ = ["WarmupStage", "INHERITED_KEYS"]

# Host keys the warm-up inherits: the networks and the queue it shares must have the run's shapes and update.
INHERITED_KEYS = ("queue_size", "momentum", "feature_dim")

class WarmupStage:
    """The warm-up of `host`: `active(epoch)` says whether `epoch` belongs to it, `training_loss(host, batch)`
    is the warm-up method's loss computed on the host's networks (module docstring)."""

    def __init__(self, host: "MoCoMethod", method: str, epochs: int, overrides: dict[str, Any] | None = None):
        self.epochs = int(epochs)
        if self.epochs < 0:
            raise UserError(f"method.warmup.epochs must be >= 0, got {epochs}")
        stage_cls = get_method(method)
        if stage_cls.name == host.name:
            raise UserError(f"method.warmup.method is '{method}', the run's own method: warm up with another "
                            "(e.g. skeletonclr, the paper's MoCo v2, or aimclr, the official code's start)")
        if "stage_loss" not in vars(stage_cls):  # inherited: a subclass's own state would be left out
            raise UserError(f"method '{method}' cannot be a warm-up stage: only a method whose whole state is the "
                            "run's networks and queue gives its loss as a stage (skeletonclr, aimclr)")
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(stage_cls.DEFAULTS))
        if unknown:
            raise UserError(f"method.warmup.overrides: {unknown} are not keys of method '{method}'; its keys: "
                            f"{', '.join(sorted(stage_cls.DEFAULTS))}")
        wrong = first_problem(((f"method.warmup.overrides.{k}", v) for k, v in overrides.items()),
                              rules(stage_cls.DEFAULTS, "method.warmup.overrides."))
        if wrong is not None:
            raise UserError(wrong)
        inherited = {key: host.cfg.method[key] for key in INHERITED_KEYS}
        self.section: DictConfig = OmegaConf.create({**plain(stage_cls.DEFAULTS), **inherited, **overrides,
                                                     "name": stage_cls.name})
        self._loss = stage_cls.stage_loss(self.section)  # a picklable function of (run, batch)
        self.method = stage_cls.name

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

    def active(self, epoch: int) -> bool:
        return epoch < self.epochs

    def training_loss(self, host: "MoCoMethod", batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        """The warm-up method's loss on the host's networks; what it watches, exposes and enqueues is the host's."""
        loss, logs = self._loss(host, batch)
        return loss, {f"warmup/{key}": value for key, value in logs.items()}
