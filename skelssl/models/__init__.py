"""Encoders and their registry."""

from __future__ import annotations

from typing import Any

from torch import nn

from skelssl.models.stgcn import STGCN, init_official_
from skelssl.skeleton.layouts import Layout

__all__ = ["ENCODERS", "build_encoder", "STGCN", "init_official_"]

ENCODERS: dict[str, type[nn.Module]] = {"stgcn": STGCN}


def build_encoder(name: str, layout: Layout | str, **kwargs: Any) -> nn.Module:
    """An encoder by registry name, e.g. build_encoder("stgcn", NTU25, hidden_channels=16)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder '{name}'; known encoders: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name](layout, **kwargs)
