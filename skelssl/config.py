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
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from skelssl.errors import UserError

PIECES_DIR = Path(__file__).resolve().parent / "configs"
PIECE_GROUPS = ("encoders", "methods", "datasets")  # merge order

BASE_DEFAULTS: dict[str, Any] = {
    "method": {"name": "skeletonclr"},
    "model": {
        "encoder": "stgcn",
        "init": "pytorch",  # "official" = N(0, 0.02) weights, BN N(1, 0.02)
        "init_from": None,  # a pretraining checkpoint whose encoder + projector start a new run
    },
    "data": {
        "dataset": "synthetic",
        "root": "data/synthetic",
        "split": "xsub",
        "stream": "joint",
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
        "checkpoint_every_minutes": 0.0,  # 0 = only at epoch ends; > 0 also inside long epochs
        "nonfinite": "stop",  # a NaN/inf loss or gradient: "stop" (keep the last good checkpoint) or "skip"
        "max_nonfinite_skips": 10,  # with nonfinite=skip: stop after this many skipped steps
        "deterministic": False,  # torch.use_deterministic_algorithms (bit-identical reruns on GPU too)
        "sync_batchnorm": False,  # with several processes: BatchNorm statistics over the global batch
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
        # finetune, semi*, supervised, transfer-finetune (skelssl/evaluation/finetune.py: our schedule choice)
        "finetune_epochs": 100,
        "finetune_lr": 0.1,
        "finetune_momentum": 0.9,
        "finetune_weight_decay": 1e-4,
        "finetune_milestones": [80],
        "finetune_gamma": 0.1,
        "finetune_batch_size": 128,
        "finetune_eval_every": 5,
        "finetune_batchnorm": "train",  # "frozen": the official code's eval-mode finetune (BatchNorm, dropout off)
        "finetune_precise_bn": True,  # BatchNorm statistics recomputed with the current weights before each test
        # random-init baseline: "data" = BatchNorm statistics of the train part (no labels), "init" = as initialised
        "random_init_batchnorm": "data",
        "finetune_augment": False,  # true: the method's normal augmentations (shear, crop) on training batches
        "semi_percents": [1, 10],  # class-balanced label subsets, percent of each class (5 and 20 also common)
        "fusion_weights": {"joint": 0.6, "bone": 0.6, "motion": 0.4},  # AimCLR §4.2 [0.6, 0.6, 0.4]
        # segmentation (skelssl/evaluation/segmentation.py): frame-wise linear classifier on dense features
        "seg_epochs": 30,
        "seg_lr": 0.1,
        "seg_batch_size": 256,
        "seg_max_train_frames": 200000,
        "seg_chunk_frames": 1024,
        "seg_context_frames": 128,
        "seg_frame_step": 1,
    },
    # the online KNN monitor while a run trains (skelssl/evaluation/monitor.py)
    "monitor": {
        "knn_every_n_epochs": 10,  # 0 turns it off
        "max_train_samples": 5000,  # evenly spaced samples of the train / test parts it encodes
        "max_test_samples": 2000,
    },
    # experiment trackers (skelssl/tracking.py): any of csv, tensorboard, mlflow, wandb
    "tracking": {
        "loggers": ["csv", "tensorboard"],
        "experiment": "skelssl",  # MLflow experiment / W&B project
        "run_name": None,  # default: the run directory's name
        "mlflow_tracking_uri": None,  # default: a SQLite database next to the run directory (RUN/../mlflow.db)
        "wandb_entity": None,
        "wandb_offline": False,
    },
    "run_dir": None,
    "resume": False,
    "overwrite": False,  # start a new run in a run_dir that holds one (deleting it)
}

# Keys of earlier versions: where they went (None: removed, with the reason).
MOVED_KEYS: dict[str, str | None] = {
    **{f"model.{key}": f"model.stgcn.{key}" for key in
       ("hidden_channels", "out_channels", "dropout", "edge_importance", "temporal_kernel", "official_graph")},
    "data.layout": None,
}
REMOVED_BECAUSE = {"data.layout": "the skeleton layout comes from the prepared dataset (its meta.json)"}


def _augment_defaults() -> dict[str, Any]:
    from skelssl.transforms.pipelines import AugmentConfig

    return dataclasses.asdict(AugmentConfig())


def defaults_for(method_name: str, encoder_name: str = "stgcn") -> DictConfig:
    """The built-in defaults for a method on an encoder, with every registered plug-in's section."""
    from skelssl.methods import PLUGINS, get_method
    from skelssl.models import get_encoder

    base = OmegaConf.create(BASE_DEFAULTS)
    base.augment = _augment_defaults()
    base.method = OmegaConf.merge(base.method, get_method(method_name).DEFAULTS)
    base.method.name = method_name
    base.model.encoder = encoder_name
    base.model[encoder_name] = dict(get_encoder(encoder_name).DEFAULTS)
    base.plugins = {name: {"enabled": False, **cls.DEFAULTS} for name, cls in sorted(PLUGINS.items())}
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
        if key in MOVED_KEYS:
            new = MOVED_KEYS[key]
            reason = f"it is now '{new}'" if new else f"it was removed: {REMOVED_BECAUSE[key]}"
            raise UserError(f"config key '{key}' in {source}: {reason}")
        near = difflib.get_close_matches(key, sorted(valid_keys), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else \
            "; see `skelssl pretrain --show-config` for every key"
        raise UserError(f"unknown config key '{key}' in {source}{hint}")


def piece_names(group: str) -> list[str]:
    """The shipped pieces of a group ('datasets', 'methods', 'encoders')."""
    return sorted(p.stem for p in (PIECES_DIR / group).glob("*.yaml"))


def piece_path(group: str, name: str) -> Path:
    path = PIECES_DIR / group / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"no {group[:-1]} config '{name}'; shipped: {', '.join(piece_names(group))}")
    return path


def _resolve_include(entry: str, including: Path) -> Path:
    """A `defaults:` entry: a file relative to the including one, or a shipped piece 'group/name'."""
    group, _, name = str(entry).partition("/")
    if group in PIECE_GROUPS and name and not str(entry).endswith((".yaml", ".yml")):
        return piece_path(group, name)
    return (including.parent / entry).resolve()


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
        parent_cfg = _load_yaml(_resolve_include(parent, path), seen + (path.resolve(),))
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
    for source, cfg in sources:
        check_keys(cfg, defaults, source)
    try:
        cfg = OmegaConf.merge(defaults, *[c for _, c in sources])
    except OmegaConfBaseException as err:
        raise UserError(f"invalid config value: {err}") from None
    _validate(cfg)
    return cfg


def model_label(cfg: Any) -> str:
    """The name results carry for a run's model: its method, led by each enabled plug-in as the method pieces
    are named (prosl-skeletonclr, prosl-hico), and `@encoder` where the encoder is not the method's own
    (a2mc@bigru): two runs that differ in either never share a name, so one results.json keeps both."""
    method = str(cfg.method.name)
    plugins = cfg.get("plugins") or {}
    enabled = sorted(str(name) for name, node in plugins.items() if node is not None and node.get("enabled", False))
    label = "-".join(enabled + [method])
    encoder = str(cfg.model.get("encoder", BASE_DEFAULTS["model"]["encoder"]))
    own = BASE_DEFAULTS["model"]["encoder"]
    if method in piece_names("methods"):
        own = str(_load_yaml(piece_path("methods", method)).get("model", {}).get("encoder", own))
    return label if encoder == own else f"{label}@{encoder}"


def migrate_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A config saved by an earlier version (in a checkpoint), with moved keys in their new places."""
    cfg = OmegaConf.create(saved)
    for old, new in MOVED_KEYS.items():
        section, _, leaf = old.partition(".")
        node = cfg.get(section)
        if node is None or leaf not in node:
            continue
        value = node.pop(leaf)
        if new is not None and OmegaConf.select(cfg, new) is None:
            OmegaConf.update(cfg, new, value, force_add=True)
    if "eval" in cfg:  # evaluation keys added since the checkpoint was written take their defaults
        cfg.eval = OmegaConf.merge(BASE_DEFAULTS["eval"], cfg.eval)
    return OmegaConf.to_container(cfg)


def _validate(cfg: DictConfig) -> None:
    from skelssl.transforms.streams import STREAMS

    if cfg.data.stream not in STREAMS:
        raise UserError(f"data.stream must be one of {', '.join(STREAMS)}, got '{cfg.data.stream}'")
    if cfg.model.init not in ("pytorch", "official"):
        raise UserError(f"model.init must be 'pytorch' or 'official', got '{cfg.model.init}'")
    if int(cfg.trainer.epochs) < 1 or int(cfg.trainer.batch_size) < 1:
        raise UserError("trainer.epochs and trainer.batch_size must be positive")
    if cfg.trainer.nonfinite not in ("stop", "skip"):
        raise UserError(f"trainer.nonfinite must be 'stop' or 'skip', got '{cfg.trainer.nonfinite}'")


def save_config(cfg: DictConfig, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(OmegaConf.to_yaml(cfg))
    tmp.replace(path)
