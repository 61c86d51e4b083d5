"""Encoders behind one interface (models.base), their registry, and how a config builds one."""

from __future__ import annotations

from typing import Any, Mapping

from skelssl.models.base import DenseEncoder, Encoder
from skelssl.models.hico import HiCoEncoder
from skelssl.models.pooling import pool
from skelssl.models.recurrent import BiGRU, BiLSTM
from skelssl.models.stgcn import STGCN, init_official_
from skelssl.registry import Registry
from skelssl.skeleton.layouts import Layout

__all__ = ["ENCODERS", "register_encoder", "get_encoder", "build_encoder", "Encoder", "DenseEncoder", "STGCN",
           "BiGRU", "BiLSTM", "HiCoEncoder", "init_official_", "pool"]

ENCODERS = Registry("encoder", "model.encoder")
for _encoder in (STGCN, BiGRU, BiLSTM, HiCoEncoder):
    ENCODERS.register(_encoder)
register_encoder = ENCODERS.register


def get_encoder(name: str) -> type[Encoder]:
    return ENCODERS.lookup(name)


def build_encoder(model_cfg: Mapping[str, Any], layout: Layout | str, in_channels: int = 3) -> Encoder:
    """The encoder a config's `model` section describes: `model.encoder` names it, `model.<name>.*` holds its
    settings, `model.init` the initialisation ("pytorch" or "official")."""
    name = str(model_cfg["encoder"])
    cls = get_encoder(name)
    settings = dict(model_cfg.get(name) or {})
    return cls(layout, in_channels=in_channels, init=model_cfg.get("init", "pytorch"), **settings)
