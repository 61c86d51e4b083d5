"""Every pretraining method by name, and the one place a method is built.

A leaf of the methods package: each method module registers its class with `@register_method`, and
skelssl.methods imports every method module, so the registry is full once any method is imported. Modules inside
the package (the warm-up stage, which takes another method's stage loss) look methods up here without importing them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from skelssl.registry import Registry

if TYPE_CHECKING:  # annotations only
    from skelssl.methods.core.base import MoCoMethod

__all__ = ["METHODS", "register_method", "get_method", "build_method"]

METHODS = Registry("method", "method.name")
register_method = METHODS.register


def get_method(name: str) -> "type[MoCoMethod]":
    return METHODS.lookup(name)


def build_method(cfg: Any, layout: Any, train_data_info: dict | None = None, *, seed: int | None = None,
                 name: str | None = None) -> "MoCoMethod":
    """The method `cfg.method.name` (or `name`) built on `cfg`, for data of `layout`.

    seed: draw the initial weights from torch.manual_seed(seed) inside a forked RNG state (the caller's global
    stream is left as it was): the random-init baseline and a rebuilt run draw exactly what `pretrain` drew
    after seeding; None draws from the global stream as it stands."""
    cls = get_method(str(name or cfg.method.name))
    if seed is None:
        return cls(cfg, layout=layout, train_data_info=train_data_info)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return cls(cfg, layout=layout, train_data_info=train_data_info)
