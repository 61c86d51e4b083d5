"""Pretraining methods, by name."""

from __future__ import annotations

from skelssl.methods.actclr import ActCLR
from skelssl.methods.aimclr import AimCLR
from skelssl.methods.base import MoCoMethod
from skelssl.methods.skeletonclr import SkeletonCLR

METHODS: dict[str, type[MoCoMethod]] = {
    SkeletonCLR.name: SkeletonCLR,
    AimCLR.name: AimCLR,
    ActCLR.name: ActCLR,
}


def get_method(name: str) -> type[MoCoMethod]:
    if name not in METHODS:
        from skelssl.errors import UserError

        raise UserError(f"unknown method '{name}'; known methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]
