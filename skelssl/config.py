"""Configuration: defaults, composed pieces, YAML files and `key=value` overrides, with typo detection.

A run's configuration is the merge, in order, of:
1. the built-in defaults: the global ones below, the method's own (`method.*`, its class's DEFAULTS), the
   encoder's (`model.<encoder>.*`) and every plug-in's (`plugins.<name>.*`, off by default);
2. the pieces a run names (`skelssl pretrain --dataset ntu60-xsub --method actclr --encoder stgcn`), in the
   order encoder, method, dataset: YAML files shipped in skelssl/configs/{encoders,methods,datasets}/;
3. settings given by code (the demo's short budget);
4. a YAML file (`--config FILE`), whose `defaults:` list names other files (relative to it) or pieces
   (`datasets/ntu60-xsub`, `methods/aimclr`, `encoders/stgcn`), merged first;
5. the command-line overrides (`data.stream=bone`; the stream is always an override).
A key that none of the defaults knows is an error naming the key and the nearest valid ones; a key that moved
names its new place.

The settings that need no method (the built-in ones, checks, pieces, migration) live in skelssl.defaults;
this module adds the methods' and plug-ins' defaults and composes a run's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from skelssl.defaults import (ACCELERATORS, BASE_DEFAULTS, BASE_SETTINGS, EVALUATION_SECTIONS, MAX_SEED,
                              MOVED_KEYS, PIECE_GROUPS, PIECES_DIR, PRECISION_ALIASES, PRECISIONS, REMOVED_BECAUSE,
                              _check_devices, _check_rules, _holds, _load_yaml, _value_at, check_keys,
                              evaluation_defaults, migrate_config, model_label, parse_overrides, piece_names,
                              piece_path, save_config, validate_evaluation_config)
from skelssl.errors import UserError
from skelssl.methods import PLUGINS, get_method
from skelssl.models import get_encoder
from skelssl.settings import Rule, Section, dataclass_rules, plain, rules, text
from skelssl.transforms.pipelines import AugmentConfig

__all__ = ["ACCELERATORS", "BASE_DEFAULTS", "BASE_SETTINGS", "EVALUATION_SECTIONS", "MAX_SEED", "MOVED_KEYS",
           "PIECE_GROUPS", "PIECES_DIR", "PRECISION_ALIASES", "PRECISIONS", "REMOVED_BECAUSE", "check_keys",
           "evaluation_defaults", "migrate_config", "model_label", "parse_overrides", "piece_names", "piece_path",
           "save_config", "validate_evaluation_config", "defaults_for", "rules_for", "load_config", "validate_config"]


def _declarations(method_name: str, encoder_name: str) -> dict[str, Any]:
    """The settings tree of a method on an encoder: the global ones, the augmentations, the method's, the
    encoder's and every registered plug-in's section (off by default), each key with its rule."""
    tree = {**BASE_SETTINGS, "method": {**BASE_SETTINGS["method"], **get_method(method_name).DEFAULTS},
            "model": {**BASE_SETTINGS["model"], encoder_name: dict(get_encoder(encoder_name).DEFAULTS)},
            "plugins": {name: {"enabled": False, **cls.DEFAULTS} for name, cls in sorted(PLUGINS.items())}}
    tree["method"]["name"] = text(method_name)
    tree["model"]["encoder"] = text(encoder_name)
    return tree


def _augment_rules() -> dict[str, Rule]:
    return {"augment": Section(), **dataclass_rules(AugmentConfig, prefix="augment.")}


def defaults_for(method_name: str, encoder_name: str = "stgcn") -> DictConfig:
    """The built-in defaults for a method on an encoder, with every registered plug-in's section."""
    base = OmegaConf.create(plain(_declarations(method_name, encoder_name)))
    # lists, not tuples: OmegaConf's typed tuple nodes refuse a merged value before its rule can name the key
    base.augment = {key: list(value) if isinstance(value, tuple) else value
                    for key, value in AugmentConfig().to_dict().items()}
    return base


def rules_for(method_name: str, encoder_name: str = "stgcn") -> dict[str, Rule]:
    """The rule of every key of the config of a method on an encoder (declared with its default)."""
    return {**rules(_declarations(method_name, encoder_name)), **_augment_rules()}


def _first(key: str, sources: list[dict[str, Any]], default: str) -> str:
    for source in sources:
        value = OmegaConf.select(OmegaConf.create(source), key)
        if value is not None:
            return str(value)
    return default


def load_config(path: str | Path | None = None, overrides: Iterable[str] = (),
                base: dict[str, Any] | None = None, *, dataset: str | None = None, method: str | None = None,
                encoder: str | None = None, start_from: dict[str, Any] | None = None) -> DictConfig:
    """Defaults + pieces (encoder, method, dataset) + `base` + YAML file + overrides, checked for unknown keys.

    start_from: a run's saved config, merged right after the defaults (resuming: what the command line adds
    is compared with the run's own settings, not with the defaults)."""
    pieces = [(group, name) for group, name in zip(PIECE_GROUPS, (encoder, method, dataset)) if name]
    piece_cfgs = [(f"the {group[:-1]} config '{name}'", _load_yaml(piece_path(group, name)))
                  for group, name in pieces]
    file_cfg = _load_yaml(Path(path)) if path else {}
    override_cfg = parse_overrides(overrides)
    base = base or {}
    start = dict(start_from or {})
    later_first = [override_cfg, file_cfg, base] + [cfg for _, cfg in reversed(piece_cfgs)] + [start]
    method_name = _first("method.name", later_first, BASE_DEFAULTS["method"]["name"])
    encoder_name = _first("model.encoder", later_first, BASE_DEFAULTS["model"]["encoder"])
    try:
        defaults = defaults_for(method_name, encoder_name)
    except UserError as err:
        raise UserError(f"{err} (in the config)") from None
    sources = [("the run's saved config", start), *piece_cfgs, ("the built-in settings", base),
               (f"'{path}'", file_cfg), ("the command line", override_cfg)]
    found_rules = rules_for(method_name, encoder_name)
    for source, cfg in sources:
        check_keys(cfg, defaults, source)
        for key, rule in found_rules.items():  # a value of another kind than a mapping's cannot even be merged
            if not _holds(cfg, key):
                continue
            value, default = _value_at(cfg, key), OmegaConf.select(defaults, key)
            if (isinstance(default, DictConfig) and not isinstance(value, dict)) or \
                    (OmegaConf.is_list(default) and isinstance(value, dict)):
                raise UserError(f"config key '{key}' = {value!r} ({source}): "
                                f"{rule.problem(value) or 'must be ' + rule.describe()}")
    try:
        cfg = OmegaConf.merge(defaults, *[c for _, c in sources])
    except (OmegaConfBaseException, ValueError, TypeError) as err:
        raise UserError(f"invalid config value: {err}") from None
    validate_config(cfg, sources)
    return cfg


def validate_config(cfg: DictConfig, sources: list[tuple[str, dict[str, Any]]] = ()) -> None:
    """Every value of a composed config against the rule declared with its default (skelssl.settings), then
    what involves two keys; UserError naming the key, the value, what is allowed and where the value came from
    (the latest of `sources`, (name, dict) pairs in merge order, that sets it)."""
    _check_rules(cfg, {key: rule for key, rule in rules(BASE_SETTINGS).items() if key.count(".") <= 1}, sources)
    _check_rules(cfg, rules_for(str(cfg.method.name), str(cfg.model.encoder)), sources)
    _check_devices(cfg)
