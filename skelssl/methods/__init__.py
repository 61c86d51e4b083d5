"""Pretraining methods and plug-ins (ProSL: `prosl/`), by name.

Families: `skeletonclr.py` (MoCo v2 on skeletons), `aimclr/`, `actclr/` (ActCLR and ActCLR+), `a2mc/`, `hico/`;
what they share is in `core/`. Each method registers itself (`@register_method`, methods.registry); importing
this package imports every method, so the registry is complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from skelssl.checkpoints import read_checkpoint
from skelssl.errors import UserError
from skelssl.methods.a2mc import A2MC
from skelssl.methods.actclr import ActCLR, ActCLRPlus
from skelssl.methods.aimclr import AimCLR
from skelssl.methods.core import PLUGINS, MoCoMethod, Plugin, register_plugin
from skelssl.methods.hico import HiCo
from skelssl.methods.prosl import ProSL
from skelssl.methods.registry import METHODS, build_method, get_method, register_method
from skelssl.methods.skeletonclr import SkeletonCLR

__all__ = ["METHODS", "get_method", "register_method", "build_method", "method_from_checkpoint", "PLUGINS", "Plugin",
           "register_plugin", "MoCoMethod", "SkeletonCLR", "AimCLR", "ActCLR", "ActCLRPlus", "A2MC", "HiCo", "ProSL"]


def method_from_checkpoint(path: str | Path, overrides: dict[str, Any] | None = None,
                           load_weights: bool = True) -> MoCoMethod:
    """Rebuild the pretraining method of a run's checkpoint (for the analyses that need more than the encoder:
    actionlets, the projector's spectrum; evaluation reads only the encoder, skelssl.evaluation.loading).

    load_weights=False gives the run's own starting point, drawn again from its seed (as `pretrain` draws it).
    overrides: {"method": {"actionlet_map": "official"}} or {"method.actionlet_map": "official"}.
    """
    ckpt = read_checkpoint(path)
    hp = ckpt["hyper_parameters"]
    cfg = OmegaConf.create(hp["cfg"])
    if str(cfg.method.name) not in METHODS:
        raise UserError(f"'{path}' holds no pretraining method (method '{cfg.method.name}', e.g. an imported "
                        "encoder): this needs a `skelssl pretrain` run")
    for key, value in (overrides or {}).items():  # nested ({"method": {...}}) or dotted ("method.x") keys
        OmegaConf.update(cfg, key, value, merge=True)
    method = build_method(cfg, hp["layout"], hp.get("train_data_info"), seed=int(cfg.trainer.seed))
    if load_weights:
        method.load_state_dict(method.migrate_state_dict(ckpt["state_dict"]))
    return method
