"""What an encoder reads: data of any layout brought to the encoder's layout, persons and stream.

Every evaluation path (frozen features, finetuning, transfer, prediction, the Python API) builds its input
with `model_input`, so data of another layout goes through the same joint map (skelssl.skeleton.joint_maps) and
the same stream view the encoder learnt on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from skelssl.evaluation.backbone import Backbone
from skelssl.skeleton.joint_maps import get_joint_map
from skelssl.skeleton.layouts import Layout, get_layout
from skelssl.transforms.streams import to_stream

__all__ = ["model_input", "pretraining_persons", "pad_persons"]


def pretraining_persons(backbone: Backbone) -> int | None:
    """The person count M of the data the encoder learnt on (Backbone.persons, else its prepared data.npy
    header), or None when that dataset is no longer where the run left it."""
    if backbone.persons is not None:
        return int(backbone.persons)
    root = backbone.pretrained_on.get("root")
    path = Path(root) / "data.npy" if root else None
    if path is None or not path.is_file():
        return None
    try:
        return int(np.load(path, mmap_mode="r").shape[4])
    except (OSError, ValueError, IndexError):
        return None


def pad_persons(x: Tensor, persons: int | None) -> Tensor:
    """(N, C, T, V, M) with zero persons appended up to `persons` (as NTU stores an absent second person);
    data with as many or more persons is returned as it is."""
    if persons is None or x.shape[4] >= persons:
        return x
    pad = x.new_zeros(*x.shape[:4], persons - x.shape[4])
    return torch.cat([x, pad], dim=4)


def model_input(backbone: Backbone, data_layout: Layout | str | dict | None = None,
                persons: int | None = None) -> Callable[[Tensor], Tensor]:
    """x (N, C, T, V, M) in `data_layout` (default: the encoder's own) -> the encoder's input: joints mapped to
    the encoder's layout (a clear error when no map is known), zero persons appended up to `persons`
    (default: the pretraining data's count), then the backbone's stream view (joint, motion or bone)."""
    data_layout = backbone.layout if data_layout is None else get_layout(data_layout)
    joint_map = get_joint_map(data_layout, backbone.layout)  # raises before any work when there is none
    persons = pretraining_persons(backbone) if persons is None else persons
    stream, layout = str(backbone.stream), backbone.layout

    def transform(x: Tensor) -> Tensor:
        if joint_map is not None:
            x = joint_map.apply(x)
        return to_stream(pad_persons(x, persons), stream, layout)

    return transform
