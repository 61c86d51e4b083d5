"""Pretraining methods, by name."""

from __future__ import annotations

from skelssl.methods.base import MoCoMethod
from skelssl.methods.skeletonclr import SkeletonCLR

METHODS: dict[str, type[MoCoMethod]] = {
    SkeletonCLR.name: SkeletonCLR,
}


def get_method(name: str) -> type[MoCoMethod]:
    if name not in METHODS:
        from skelssl.errors import UserError

        raise UserError(f"unknown method '{name}'; known methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]
