"""A run's checkpoint as a `Backbone`: the query encoder of a pretraining run, or the encoder (and classifier) of
an imported one, built from the saved config by the encoder registry, without the training method.

A pretraining run keeps its encoder under `encoder_q.` (the method's query encoder, the one evaluation uses);
an imported run (skelssl.interop) uses the same prefix and may add a classifier under `head.`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from skelssl.checkpoints import read_checkpoint, run_dir_of
from skelssl.defaults import check_keys, model_label, validate_evaluation_config
from skelssl.errors import UserError
from skelssl.evaluation.backbone import Backbone, ClassifierHead
from skelssl.models import build_encoder
from skelssl.skeleton.layouts import get_layout
from skelssl.transforms.pipelines import AugmentConfig

__all__ = ["ENCODER_PREFIX", "HEAD_PREFIX", "checkpoint_config", "backbone_from_checkpoint", "load_backbone"]

ENCODER_PREFIX = "encoder_q."
HEAD_PREFIX = "head."


def checkpoint_config(ckpt: dict[str, Any], path: str | Path,
                      overrides: dict[str, Any] | None = None) -> DictConfig:
    """The run's saved config with `overrides` (data.*, eval.*, trainer.* ...) applied, checked for unknown keys
    and for values outside their rules."""
    saved_dict = ckpt["hyper_parameters"]["cfg"]
    saved = OmegaConf.create(saved_dict)
    if overrides:
        check_keys(overrides, saved, "the command line")
    cfg = OmegaConf.merge(saved, overrides or {})
    validate_evaluation_config(cfg, [(f"the config saved in {path}", saved_dict), ("the command line", overrides or {})])
    return cfg


def _encoder_maker(cfg: DictConfig, layout: Any, channels: int) -> Callable[[], nn.Module]:
    """The encoder pretraining started from, drawn again from the run's seed: a method builds its query encoder
    first thing after the seed is set (methods.core.base), so the same draw gives the same weights; the caller's
    global RNG stream is left as it was."""
    seed = int(cfg.trainer.seed)

    def make() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_encoder(cfg.model, layout, in_channels=channels)

    return make


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def _load_exactly(module: nn.Module, state: dict[str, torch.Tensor], what: str, path: Any) -> None:
    """load_state_dict that names the first missing, unexpected or misshapen tensor."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshapen = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or misshapen:
        detail = (f"'{missing[0]}' is missing" if missing else f"'{unexpected[0]}' is not part of it" if unexpected
                  else f"'{misshapen[0]}' is {tuple(state[misshapen[0]].shape)} there and "
                       f"{tuple(own[misshapen[0]].shape)} here")
        raise UserError(f"'{path}': its {what} does not fit the architecture its config describes: {detail} "
                        f"({len(missing)} missing, {len(unexpected)} unexpected, {len(misshapen)} of another shape)")
    module.load_state_dict(state)


def backbone_from_checkpoint(ckpt: dict[str, Any], cfg: DictConfig, path: str | Path,
                             load_weights: bool = True) -> Backbone:
    """The Backbone of a checkpoint read by skelssl.checkpoints.read_checkpoint, under the config `cfg`.

    load_weights=False gives the random-init baseline: the run's own starting encoder, drawn again from its seed
    (shared by every run with the same model settings and seed)."""
    hp, info = ckpt["hyper_parameters"], ckpt["skelssl"]
    layout = get_layout(hp["layout"])
    data_info = dict(hp.get("train_data_info") or {})
    channels = int(data_info.get("channels", 3))
    make = _encoder_maker(cfg, layout, channels)
    encoder = make()
    imported = info.get("imported") or {}
    head, class_names = None, None
    if load_weights:
        state = ckpt["state_dict"]
        _load_exactly(encoder, _part(state, ENCODER_PREFIX), "encoder", path)
        head_info = info.get("head")
        if head_info:
            head = ClassifierHead(encoder.feature_dim, int(head_info["num_classes"]),
                                  standardize=bool(head_info.get("standardize", False)))
            _load_exactly(head, _part(state, HEAD_PREFIX), "classifier", path)
            head.eval()
            class_names = list(head_info.get("class_names") or [str(i) for i in range(head.num_classes)])
    name = str(imported.get("label") or model_label(cfg)) if load_weights else "random_init"
    augment = AugmentConfig.from_dict(OmegaConf.to_container(cfg.augment, resolve=True)) if "augment" in cfg else None
    persons = data_info.get("persons")
    return Backbone(encoder=encoder, layout=layout, stream=str(cfg.data.stream), name=name,
                    persons=int(persons) if persons is not None else None,
                    expects=info.get("expects") if load_weights else None,  # random weights expect nothing
                    fresh=make, augment=augment, head=head, class_names=class_names, pretrained_on=data_info,
                    provenance={"checkpoint": str(Path(path).resolve()), "run_dir": str(run_dir_of(path)),
                                **({"imported": imported} if imported else {})})


def load_backbone(path: str | Path, overrides: dict[str, Any] | None = None, *,
                  load_weights: bool = True) -> tuple[Backbone, DictConfig]:
    """(Backbone, config) of a run's checkpoint (RUN or RUN/checkpoints/last.ckpt), `overrides` applied to its
    saved config."""
    ckpt = read_checkpoint(path)
    cfg = checkpoint_config(ckpt, path, overrides)
    return backbone_from_checkpoint(ckpt, cfg, path, load_weights=load_weights), cfg


def require_head(backbone: Backbone, path: Any) -> nn.Module:
    if backbone.head is None:
        raise UserError(f"'{path}' has no classifier: `predict` needs a run with one (an imported linear-evaluation "
                        "checkpoint, or the classifier a linear probe or finetune saved with --save-classifier); a "
                        "pretraining run gives features only: `skelssl evaluate linear --checkpoint RUN "
                        "--save-classifier` trains one")
    return backbone.head
