"""The torchlight family (CrosSCLR, AimCLR, ActCLR and their forks): ST-GCN checkpoints in `.pt` files.

Their ST-GCN (`net/st_gcn.py`) names its parts `A` (the spatial partition, a buffer), `data_bn`,
`st_gcn_networks.{i}.{gcn.conv, tcn.0, tcn.2, tcn.3, residual.0, residual.1}`, `edge_importance.{i}` and `fc`;
the MoCo wrapper puts the query encoder under `encoder_q` (`encoder_q_motion`, `encoder_q_bone` for CrosSCLR's
three streams), the key encoder under `encoder_k*`, the memory under `queue*`. skelssl's ST-GCN has the same
layers under `adjacency`, `data_bn`, `blocks.{i}`, `edge_importance.{i}`, so the weights load one to one.

`fc` is, in a linear-evaluation checkpoint (no key encoder), the classifier to the classes: a 1x1 Conv2d
(K, D, 1, 1) or a Linear (K, D) - both become skelssl's ClassifierHead (K, D); in a pretext checkpoint the
projector: Linear (D -> dim), or with `mlp` Linear-ReLU-Linear (`fc.0`, `fc.2`), which is skelssl's
Projector. Widths (hidden, out, temporal kernel, input channels, joints) are read from the tensor shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from skelssl.data.ntu import NTU120_CLASS_NAMES
from skelssl.errors import UserError
from skelssl.interop.imported import ImportedModel, KeyPlacer, NTU_AIMCLR_EXPECTS
from skelssl.interop.sources import SourceFile
from skelssl.models.graph import spatial_partition
from skelssl.skeleton.layouts import get_layout

__all__ = ["FAMILY", "looks_like", "read_torchlight", "STREAM_PREFIXES"]

FAMILY = "torchlight"
# query-encoder prefix -> stream (CrosSCLR 3s: encoder_q, encoder_q_motion, encoder_q_bone)
STREAM_PREFIXES = {"encoder_q": "joint", "encoder_q_motion": "motion", "encoder_q_bone": "bone"}
BLOCKS = 10
WIDTH_FACTORS = (1, 1, 1, 1, 2, 2, 2, 4, 4)  # blocks 0-8 as multiples of the hidden width; block 9 = out


def looks_like(tensors: dict[str, torch.Tensor]) -> bool:
    return any(".st_gcn_networks." in key or key.startswith("st_gcn_networks.") for key in tensors)


def _block_rename(rest: str) -> str:
    """`st_gcn_networks.3.tcn.2.weight` -> `blocks.3.tcn.2.weight`; `A` -> `adjacency`; the rest unchanged."""
    if rest == "A":
        return "adjacency"
    if rest.startswith("st_gcn_networks."):
        return "blocks." + rest[len("st_gcn_networks."):]
    return rest


def _source_name(key: str, prefix: str) -> str:
    """skelssl's `encoder_q.blocks.2.tcn.0.weight` as the torchlight file names it."""
    rest = key.split(".", 1)[1] if key.startswith(("encoder_q.", "head.")) else key
    if rest == "adjacency":
        rest = "A"
    elif rest.startswith("blocks."):
        rest = "st_gcn_networks." + rest[len("blocks."):]
    elif key.startswith("head.linear."):
        rest = "fc." + rest.split(".", 1)[1]
    return f"{prefix}.{rest}"


def _layout_for(joints: int, path: Any) -> str:
    for name in ("ntu25", "kinect20"):
        if get_layout(name).num_joints == joints:
            return name
    raise UserError(f"'{path}': its graph has {joints} joints; skelssl reads torchlight checkpoints of the NTU "
                    "(25 joints) and Kinect v1 (20 joints) layouts")


def _encoder_settings(tensors: dict[str, torch.Tensor], prefix: str, path: Any) -> tuple[dict[str, Any], str, int]:
    def shape(name: str) -> tuple[int, ...]:
        key = f"{prefix}{name}"
        if key not in tensors:
            raise UserError(f"'{path}': the tensor '{key}' is missing (every torchlight ST-GCN has it)")
        return tuple(tensors[key].shape)

    blocks = sorted({int(k[len(prefix + "st_gcn_networks."):].split(".")[0]) for k in tensors
                     if k.startswith(prefix + "st_gcn_networks.")})
    if blocks != list(range(BLOCKS)):
        raise UserError(f"'{path}': '{prefix}' has ST-GCN blocks {blocks}; skelssl's ST-GCN has the ten blocks of "
                        "SkeletonCLR/AimCLR/ActCLR")
    hidden = shape("st_gcn_networks.0.tcn.2.weight")[0]
    out = shape(f"st_gcn_networks.{BLOCKS - 1}.tcn.2.weight")[0]
    kernel = shape("st_gcn_networks.0.tcn.2.weight")[2]
    in_channels = shape("st_gcn_networks.0.gcn.conv.weight")[1]
    subsets, joints, _ = shape("A")
    for i, factor in enumerate(WIDTH_FACTORS):
        width = shape(f"st_gcn_networks.{i}.tcn.2.weight")[0]
        if width != factor * hidden:
            raise UserError(f"'{path}': block {i} has {width} channels where skelssl's ST-GCN has {factor} x "
                            f"{hidden} (the widths 1,1,1,1,2,2,2,4,4 x hidden, then out)")
    layout = _layout_for(joints, path)
    adjacency = tensors[prefix + "A"].float().numpy()
    official = bool(np.allclose(adjacency, spatial_partition(get_layout(layout), official_code=True), atol=1e-6))
    settings = {"hidden_channels": int(hidden), "out_channels": int(out), "temporal_kernel": int(kernel),
                "dropout": 0.5, "edge_importance": f"{prefix}edge_importance.0" in tensors,
                "official_graph": official}
    if subsets != 3:
        raise UserError(f"'{path}': its graph has {subsets} partitions; skelssl's ST-GCN uses the 3 of the spatial "
                        "partition")
    return settings, layout, int(in_channels)


def _class_names(count: int) -> list[str]:
    if count in (60, 120):
        return list(NTU120_CLASS_NAMES[:count])
    return [str(i) for i in range(count)]


def read_torchlight(source: SourceFile, head: str = "auto", trained_on: str | None = None) -> list[ImportedModel]:
    """One ImportedModel per query-encoder stream of a torchlight checkpoint (module docstring).

    head: what `encoder_q.fc` is: "classifier", "projector", or "auto" (a projector when the file has a key
    encoder or a queue, i.e. is a pretext checkpoint; else the classifier)."""
    tensors, path = source.tensors, source.path
    streams = [p for p in STREAM_PREFIXES if any(k.startswith(p + ".") for k in tensors)]
    if not streams:
        if any(k.startswith("st_gcn_networks.") for k in tensors):  # a bare ST-GCN, no MoCo wrapper
            tensors = {f"encoder_q.{k}": v for k, v in tensors.items()}
            streams = ["encoder_q"]
        else:
            raise UserError(f"'{path}': a torchlight checkpoint keeps its encoder under 'encoder_q.'; this one has "
                            f"no such keys (first keys: {', '.join(list(tensors)[:4])})")
    pretext = any(k.startswith(("encoder_k", "queue")) for k in tensors)
    if head == "auto":
        head = "projector" if pretext else "classifier"
    if head not in ("classifier", "projector"):
        raise UserError(f"--head must be auto, classifier or projector, got '{head}'")
    placer = KeyPlacer(tensors, path)
    models = []
    for prefix in streams:
        stream = STREAM_PREFIXES[prefix]
        suffix = prefix[len("encoder_q"):]  # "", "_motion", "_bone"
        settings, layout, in_channels = _encoder_settings(tensors, prefix + ".", path)
        start = dict(placer.key_map)
        moved: dict[str, torch.Tensor] = {}

        def take(source_prefix: str, target_prefix: str, skip_fc: bool = True) -> None:
            for key in [k for k in placer.left if k.startswith(source_prefix)]:
                rest = key[len(source_prefix):]
                if skip_fc and rest.split(".")[0] == "fc":
                    continue
                placer.place(key, target_prefix + _block_rename(rest))

        take(prefix + ".", "encoder_q.")
        fc_keys = sorted(k for k in placer.left if k.startswith(prefix + ".fc."))
        head_info = None
        if head == "classifier":
            weight_key, bias_key = f"{prefix}.fc.weight", f"{prefix}.fc.bias"
            if fc_keys != sorted([bias_key, weight_key]):
                raise UserError(f"'{path}': a classifier 'fc' is one layer (fc.weight, fc.bias); this file has "
                                f"{', '.join(fc_keys) or 'no fc'} (a pretext projector? use --head projector)")
            weight = tensors[weight_key]
            if weight.dim() == 4 and weight.shape[2:] == (1, 1):
                weight = weight[:, :, 0, 0]  # a 1x1 convolution over pooled features is a linear layer
            if weight.dim() != 2 or weight.shape[1] != settings["out_channels"]:
                raise UserError(f"'{path}': '{weight_key}' is {tuple(tensors[weight_key].shape)}; a classifier on "
                                f"{settings['out_channels']}-d features is (classes, {settings['out_channels']}) or "
                                f"(classes, {settings['out_channels']}, 1, 1)")
            classes = int(weight.shape[0])
            placer.place(weight_key, "head.linear.weight", weight.contiguous())
            placer.place(bias_key, "head.linear.bias")
            moved["head.mean"] = torch.zeros(settings["out_channels"])
            moved["head.std"] = torch.ones(settings["out_channels"])
            head_info = {"num_classes": classes, "standardize": False, "class_names": _class_names(classes)}
        else:  # the projector (mlp: Linear-ReLU-Linear, skelssl's Projector) and the key encoder
            mlp = {f"{prefix}.fc.0.weight", f"{prefix}.fc.2.weight"} <= set(fc_keys)
            for key in fc_keys:
                placer.place(key, "projector_q." + key[len(prefix) + len(".fc."):] if mlp else "source." + key)
            key_prefix = "encoder_k" + suffix
            take(key_prefix + ".", "encoder_k.")
            for key in sorted(k for k in placer.left if k.startswith(key_prefix + ".fc.")):
                placer.place(key, "projector_k." + key[len(key_prefix) + len(".fc."):] if mlp else "source." + key)
        for key in ("queue" + suffix, "queue_ptr" + suffix):  # pretext memory: kept as it was, unused by evaluation
            if key in placer.left:
                placer.place(key, "source." + key)
        state = {target: placer.state[target] for source_key, target in placer.key_map.items()
                 if source_key not in start}
        state.update(moved)
        key_map = {k: v for k, v in placer.key_map.items() if k not in start}
        classes = head_info["num_classes"] if head_info else None
        models.append(ImportedModel(
            family=FAMILY, role="pretext" if head == "projector" else "linear-eval", stream=stream, encoder="stgcn",
            encoder_settings=settings, layout=layout, in_channels=in_channels, state=state, key_map=key_map,
            head=head_info, expects=NTU_AIMCLR_EXPECTS if layout == "ntu25" else None,
            trained_on=trained_on or ({60: "ntu60", 120: "ntu120"}.get(classes, "unknown") if classes else "unknown"),
            source_name=lambda key, prefix=prefix: _source_name(key, prefix),
            notes=[f"graph: {'the official code' if settings['official_graph'] else 'the paper'}'s spatial partition "
                   "(loaded as it is in the file)"]))
    placer.require_all_placed("torchlight (CrosSCLR/AimCLR/ActCLR)")
    return models
