"""Configuration: defaults, YAML files and `key=value` overrides, with typo detection.

A run's configuration is the merge, in order, of the global defaults, the method's own defaults (under
`method:`), the YAML file (its `defaults:` list of other YAML files first, relative to it) and the command-line
overrides. A key that none of the defaults knows is an error naming the key and the nearest valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from skelssl.errors import UserError

BASE_DEFAULTS: dict[str, Any] = {
    "method": {"name": "skeletonclr"},
    "model": {
        "encoder": "stgcn",
        "hidden_channels": 16,
        "out_channels": 256,
        "dropout": 0.5,
        "edge_importance": True,
        "init": "pytorch",  # "official" = N(0, 0.02) weights, BN N(1, 0.02)
        "init_from": None,  # a pretraining checkpoint whose encoder + projector start a new run
    },
    "data": {
        "dataset": "synthetic",
        "root": "data/synthetic",
        "split": "xsub",
        "stream": "joint",
        "layout": "ntu25",
        "num_workers": 0,
    },
    "optim": {
        "name": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "nesterov": False,
        "milestones": [250],
        "gamma": 0.1,
    },
    "trainer": {
        "epochs": 300,
        "batch_size": 128,
        "accelerator": "auto",
        "devices": "auto",
        "strategy": "auto",
        "num_nodes": 1,
        "precision": "32-true",
        "seed": 0,
        "log_every_n_steps": 10,
        "checkpoint_every_n_epochs": 1,
        "progress_bar": True,
        "threads": 0,  # 0 = torch's default
    },
    "eval": {
        "batch_size": 256,
        "knn_k": [10, 20, 40],
        "knn_temperature": 0.1,
        "linear_epochs": 100,
        "linear_lr": 0.1,  # for z-scored features; the official 3.0 goes with linear_standardize=false
        "linear_momentum": 0.9,
        "linear_weight_decay": 0.0,
        "linear_milestones": [80],
        "linear_batch_size": 128,
        "linear_eval_every": 5,
        "linear_standardize": True,
    },
    "run_dir": None,
    "resume": False,
}


def _augment_defaults() -> dict[str, Any]:
    from skelssl.transforms.pipelines import AugmentConfig

    return dataclasses.asdict(AugmentConfig())


def defaults_for(method_name: str) -> DictConfig:
    from skelssl.methods import get_method

    base = OmegaConf.create(BASE_DEFAULTS)
    base.augment = _augment_defaults()
    base.method = OmegaConf.merge(base.method, get_method(method_name).DEFAULTS)
    base.method.name = method_name
    return base


def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        keys = []
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            keys.append(path)
            keys.extend(_flat_keys(v, path))
        return keys
    return []


def check_keys(candidate: dict[str, Any], valid: DictConfig, source: str) -> None:
    """Raise UserError for the first key in `candidate` that the defaults do not define."""
    valid_keys = set(_flat_keys(OmegaConf.to_container(valid)))
    # Leaves whose value is None or a mapping may hold anything below them.
    open_prefixes = {k for k in valid_keys if OmegaConf.select(valid, k) is None}
    for key in _flat_keys(candidate):
        if key in valid_keys or any(key.startswith(p + ".") for p in open_prefixes):
            continue
        near = difflib.get_close_matches(key, sorted(valid_keys), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else \
            "; see `skelssl pretrain --show-config` for every key"
        raise UserError(f"unknown config key '{key}' in {source}{hint}")


def _load_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"config file '{path}' does not exist")
    if path.resolve() in seen:
        raise UserError(f"config file '{path}' includes itself through 'defaults'")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(str(path)), resolve=False)
    except (OmegaConfBaseException, ValueError, OSError) as err:
        raise UserError(f"config file '{path}' is not valid YAML: {err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"config file '{path}' must hold a mapping of keys, not {type(raw).__name__}")
    merged: dict[str, Any] = {}
    for parent in raw.pop("defaults", []) or []:
        parent_cfg = _load_yaml((path.parent / parent).resolve(), seen + (path.resolve(),))
        merged = OmegaConf.to_container(OmegaConf.merge(merged, parent_cfg))
    return OmegaConf.to_container(OmegaConf.merge(merged, raw))


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    items = list(overrides)
    for item in items:
        if "=" not in item:
            raise UserError(f"override '{item}' must look like key=value (e.g. trainer.epochs=10)")
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(items))
    except OmegaConfBaseException as err:
        raise UserError(f"cannot parse overrides {items}: {err}") from None


def load_config(path: str | Path | None = None, overrides: Iterable[str] = (),
                base: dict[str, Any] | None = None) -> DictConfig:
    """Defaults + method defaults + YAML file + overrides, checked for unknown keys."""
    file_cfg = _load_yaml(Path(path)) if path else {}
    override_cfg = parse_overrides(overrides)
    base = base or {}
    method_name = (OmegaConf.select(OmegaConf.create(override_cfg), "method.name")
                   or OmegaConf.select(OmegaConf.create(file_cfg), "method.name")
                   or OmegaConf.select(OmegaConf.create(base), "method.name")
                   or BASE_DEFAULTS["method"]["name"])
    defaults = defaults_for(str(method_name))
    check_keys(base, defaults, "the built-in settings")
    check_keys(file_cfg, defaults, f"'{path}'")
    check_keys(override_cfg, defaults, "the command line")
    try:
        cfg = OmegaConf.merge(defaults, base, file_cfg, override_cfg)
    except OmegaConfBaseException as err:
        raise UserError(f"invalid config value: {err}") from None
    _validate(cfg)
    return cfg


def _validate(cfg: DictConfig) -> None:
    from skelssl.transforms.streams import STREAMS

    if cfg.data.stream not in STREAMS:
        raise UserError(f"data.stream must be one of {', '.join(STREAMS)}, got '{cfg.data.stream}'")
    if cfg.model.init not in ("pytorch", "official"):
        raise UserError(f"model.init must be 'pytorch' or 'official', got '{cfg.model.init}'")
    if int(cfg.trainer.epochs) < 1 or int(cfg.trainer.batch_size) < 1:
        raise UserError("trainer.epochs and trainer.batch_size must be positive")


def save_config(cfg: DictConfig, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(OmegaConf.to_yaml(cfg))
    tmp.replace(path)
