"""The skeleton-contrast family (ISC, CMD, HiCo and their forks): `{'state_dict': ...}` files with the MoCo
wrapper's `encoder_q` / `encoder_k` / queues, usually with DataParallel's `module.` prefix.

HiCo (HuiGuanLab/HiCo, `hico/hi_encoder.py`): the hierarchical encoder sits under `encoder_q.hi_encoder.`
(`t_embedding`, `s_embedding`, `t_downsample.conv.dw_conv`, `t_downsample.norm`, `t_encoder`, the same for `s_`),
which is skelssl's HiCoEncoder layer for layer (its depthwise convolution is one level shallower:
`t_downsample.conv`). A linear-evaluation file (DownstreamEncoder) adds `encoder_q.fc`, the classifier on the
instance feature; a pretext file (PretrainingEncoder) adds five projectors (`clip_proj`, `part_proj`, `td_proj`,
`sd_proj`, `instance_proj`), the key encoder and the queues, kept under `source.` as they are.

ISC/CMD's BiGRU (`moco/GRU.py`): refused for now, with the reason. Its code feeds the GRU one frame at a time and
carries the hidden state of both directions forward, so its "backward" direction also reads the sequence forward,
and its feature is the output at the last frame; skelssl's BiGRU reads the second direction backward. The same
weights would compute another function: importing them would give wrong features silently.
"""

from __future__ import annotations

import torch

from skelssl.errors import UserError
from skelssl.interop.imported import ImportedModel, KeyPlacer
from skelssl.interop.sources import SourceFile

__all__ = ["FAMILY", "looks_like_hico", "looks_like_bigru", "read_hico", "refuse_bigru"]

FAMILY = "skeleton-contrast"
HICO = "encoder_q.hi_encoder."
HICO_PROJECTORS = ("clip_proj", "part_proj", "td_proj", "sd_proj", "instance_proj")


def looks_like_hico(tensors: dict[str, torch.Tensor]) -> bool:
    return any(key.startswith(HICO) for key in tensors)


def looks_like_bigru(tensors: dict[str, torch.Tensor]) -> bool:
    return any(key.startswith("encoder_q.encoder.gru.") for key in tensors)


def refuse_bigru(source: SourceFile) -> None:
    raise UserError(f"'{source.path}' is an ISC/CMD BiGRU checkpoint (encoder_q.encoder.gru.*). skelssl cannot "
                    "import it yet: that code runs both GRU directions forward in time, one frame at a time, and "
                    "takes the output at the last frame, while skelssl's BiGRU reads its second direction backward; "
                    "the same weights would compute other features (skelssl/interop/contrast.py)")


def _hico_rename(rest: str) -> str:
    for branch in ("t_", "s_"):
        old = f"{branch}downsample.conv.dw_conv."
        if rest.startswith(old):
            return f"{branch}downsample.conv." + rest[len(old):]
    return rest


def read_hico(source: SourceFile, head: str = "auto", trained_on: str | None = None) -> list[ImportedModel]:
    tensors, path = source.tensors, source.path

    def shape(key: str) -> tuple[int, ...]:
        if key not in tensors:
            raise UserError(f"'{path}': the tensor '{key}' is missing (every HiCo encoder has it)")
        return tuple(tensors[key].shape)

    hidden, t_input = shape(HICO + "t_embedding.0.weight")
    s_input = shape(HICO + "s_embedding.0.weight")[1]
    gates = shape(HICO + "t_encoder.weight_hh_l0")[0] // (hidden // 2)
    cell = {4: "lstm", 3: "gru"}.get(gates)
    if cell is None:
        raise UserError(f"'{path}': its sequence encoder is neither an LSTM nor a GRU (the Transformer variant is "
                        "not read yet)")
    layers = len([k for k in tensors if k.startswith(HICO + "t_encoder.weight_ih_l") and not k.endswith("_reverse")])
    pretext = any(k.startswith(("encoder_k.", "queue", "t_queue", "s_queue")) for k in tensors) or \
        any(k.startswith(f"encoder_q.{p}.") for k in tensors for p in HICO_PROJECTORS)
    if head == "auto":
        head = "projector" if pretext else "classifier"
    if "encoder_q.fc.weight" in tensors:
        instance_dim = shape("encoder_q.fc.weight")[1]
    elif "encoder_q.instance_proj.0.weight" in tensors:
        instance_dim = shape("encoder_q.instance_proj.0.weight")[1]
    else:
        raise UserError(f"'{path}': neither a classifier (encoder_q.fc) nor the instance projector says how many "
                        "granularities the encoder has")
    granularities = instance_dim // (2 * hidden)
    channels = 3
    joints_persons = t_input // channels
    persons = 2 if joints_persons == 50 else 1 if joints_persons == 25 else None
    if persons is None or s_input % channels:
        raise UserError(f"'{path}': its input sizes ({t_input} per frame, {s_input} per joint) are not those of "
                        "NTU's 25 joints x 3 coordinates")
    settings = {"hidden_size": int(hidden), "num_layers": int(layers), "granularities": int(granularities),
                "sequence_encoder": cell, "persons": persons, "input_frames": int(s_input // channels)}
    placer = KeyPlacer(tensors, path)
    placer.place_prefix(HICO, "encoder_q.", _hico_rename)
    head_info = None
    state_extra: dict[str, torch.Tensor] = {}
    if head == "classifier":
        placer.place("encoder_q.fc.weight", "head.linear.weight")
        placer.place("encoder_q.fc.bias", "head.linear.bias")
        classes = int(tensors["encoder_q.fc.weight"].shape[0])
        state_extra = {"head.mean": torch.zeros(instance_dim), "head.std": torch.ones(instance_dim)}
        head_info = {"num_classes": classes, "standardize": False,
                     "class_names": [str(i) for i in range(classes)]}
    for key in list(placer.left):  # projectors, key encoder, queues: pretext state, kept as it was
        if key.startswith(tuple(f"encoder_q.{p}." for p in HICO_PROJECTORS)) or key.startswith("encoder_k.") or \
                "queue" in key.split(".")[0]:
            placer.place(key, "source." + key)
    placer.require_all_placed("HiCo")
    state = dict(placer.state)
    state.update(state_extra)
    return [ImportedModel(family=FAMILY, role="pretext" if head == "projector" else "linear-eval", stream="joint",
                          encoder="hico", encoder_settings=settings, layout="ntu25", in_channels=channels,
                          state=state, key_map=dict(placer.key_map), head=head_info, expects=None,
                          persons=persons, trained_on=trained_on or "unknown",
                          notes=["HiCo's own preparation (the 2s-AGCN recipe) is not recorded: evaluate on data "
                                 "prepared as it was trained (docs/data.md)"])]
