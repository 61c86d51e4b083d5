"""Pretraining methods and plug-ins (ProSL: `prosl/`), by name.

Families: `skeletonclr.py` (MoCo v2 on skeletons), `aimclr/`, `actclr/` (ActCLR and ActCLR+), `a2mc/`, `hico/`;
what they share is in `core/`.
"""

from __future__ import annotations

from skelssl.methods.a2mc import A2MC
from skelssl.methods.actclr import ActCLR, ActCLRPlus
from skelssl.methods.aimclr import AimCLR
from skelssl.methods.core import PLUGINS, MoCoMethod, Plugin, register_plugin
from skelssl.methods.hico import HiCo
from skelssl.methods.prosl import ProSL  # noqa: F401 - registers the plug-in
from skelssl.methods.skeletonclr import SkeletonCLR
from skelssl.registry import Registry

__all__ = ["METHODS", "get_method", "register_method", "PLUGINS", "Plugin", "register_plugin", "MoCoMethod"]

METHODS = Registry("method", "method.name")
for _method in (SkeletonCLR, AimCLR, ActCLR, ActCLRPlus, A2MC, HiCo):
    METHODS.register(_method)
register_method = METHODS.register


def get_method(name: str) -> type[MoCoMethod]:
    return METHODS.lookup(name)
