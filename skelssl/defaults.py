"""The settings every run shares, and what reads and checks a config without knowing any method.

The built-in settings (`BASE_SETTINGS`, each with its rule; `BASE_DEFAULTS` their values), the keys that moved,
the shipped config pieces and YAML files, `key=value` overrides, typo detection (`check_keys`), the checks of the
sections evaluation reads (`validate_evaluation_config`), the model names results carry and the migration of
configs saved by earlier versions. skelssl.config adds what needs the methods: their defaults, the composition
of a run's config and its full validation. Evaluation, checkpoints and tracking read this module only, so they
never import a training method.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Iterable

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from skelssl.errors import UserError
from skelssl.models import get_encoder
from skelssl.protocol_configs import SECTIONS as PROTOCOL_SECTIONS
from skelssl.protocol_configs import config_section
from skelssl.settings import (Check, Mapping, Number, Rule, Setting, choice, integer, integers, number, optional,
                              plain, rules, text, texts)
from skelssl.transforms.pipelines import AugmentConfig
from skelssl.transforms.streams import STREAMS
from skelssl.yamlio import load_yaml

LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")  # experiment trackers (skelssl.tracking)
PIECES_DIR = Path(__file__).resolve().parent / "configs"


PIECE_GROUPS = ("encoders", "methods", "datasets")  # merge order


def _accelerator_problem(value: Any) -> str | None:
    """What this machine cannot run: a GPU accelerator without CUDA (or MPS) is refused here, at composition."""
    if not isinstance(value, str) or value not in ACCELERATORS:
        return f"must be one of {', '.join(ACCELERATORS)}"
    if value in ("gpu", "cuda") and not torch.cuda.is_available():
        return "asks for a CUDA GPU, but this machine has none (torch.cuda.is_available() is False); use auto or cpu"
    if value == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return "asks for Apple's MPS, which this machine does not have; use auto or cpu"
    return None


def _devices_problem(value: Any) -> str | None:
    """Lightning's forms: "auto", a count >= 1, -1 (all), a list of indices, or indices as text ("0,1")."""
    if value in ("auto", -1, "-1") and not isinstance(value, bool):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return None
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                 for v in value):
        return None
    if isinstance(value, str) and re.fullmatch(r"\d+(,\d+)*,?", value):
        return None
    return "must be auto, a number of devices >= 1, -1 (all of them) or a list of device indices such as [0, 1]"


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


# Lightning's precision values: its names, and the short forms it also takes
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")


PRECISION_ALIASES = (16, 32, 64, "16", "32", "64", "bf16")


MAX_SEED = 2**32 - 1  # Lightning's seed_everything takes 0..2^32-1 (outside it, it silently draws another)


def _strategies() -> tuple[str, ...]:
    from lightning.pytorch.strategies import StrategyRegistry

    return ("auto", *StrategyRegistry.available_strategies())


# The built-in settings, each with its rule (skelssl.settings): BASE_DEFAULTS are their defaults.
BASE_SETTINGS: dict[str, Any] = {
    "method": {"name": text("skeletonclr")},
    "model": {
        "encoder": text("stgcn"),
        "init": choice("pytorch", "pytorch", "official"),  # "official" = N(0, 0.02) weights, BN N(1, 0.02)
        "init_from": optional(text(None)),  # a pretraining checkpoint whose encoder + projector start a new run
    },
    "data": {
        "dataset": text("synthetic"),
        "root": text("data/synthetic"),
        "split": text("xsub"),
        "stream": choice("joint", *STREAMS),
        "num_workers": integer(0, ge=0),
    },
    "optim": {
        "name": choice("sgd", "sgd", "adam", "adamw"),
        "lr": number(0.1, gt=0),
        "momentum": number(0.9, ge=0, lt=1),
        "weight_decay": number(1e-4, ge=0),
        "nesterov": False,
        "milestones": integers([250], ge=0),
        "gamma": number(0.1, gt=0),
    },
    "trainer": {
        "epochs": integer(300, ge=1),
        "batch_size": integer(128, ge=1),
        "accelerator": Setting("auto", Check(_accelerator_problem, f"one of {', '.join(ACCELERATORS)} that this "
                                                                   "machine has")),
        "devices": Setting("auto", Check(_devices_problem, "auto, a number of devices >= 1, -1 or a list of "
                                                           "device indices")),
        "strategy": Setting("auto", Check(lambda v: None if v in _strategies() else
                                          f"must be one of {', '.join(_strategies())}", "a Lightning strategy")),
        "num_nodes": integer(1, ge=1),
        "precision": Setting("32-true", Check(
            lambda v: None if any(type(v) is type(o) and v == o for o in PRECISIONS + PRECISION_ALIASES) else
            f"must be one of {', '.join(PRECISIONS)} (or the short forms 16, 32, 64, bf16)", "a Lightning precision")),
        "seed": integer(0, ge=0, le=MAX_SEED),
        "log_every_n_steps": integer(10, ge=1),
        "checkpoint_every_n_epochs": integer(1, ge=1),
        "checkpoint_every_minutes": number(0.0, ge=0),  # 0 = only at epoch ends; > 0 also inside long epochs
        # a NaN/inf loss, gradient, weight or BatchNorm statistic: "stop" (keep the last good checkpoint) or "skip"
        "nonfinite": choice("stop", "stop", "skip"),
        "max_nonfinite_skips": integer(10, ge=0),  # with nonfinite=skip: stop after this many skipped steps
        "deterministic": False,  # torch.use_deterministic_algorithms (bit-identical reruns on GPU too)
        "sync_batchnorm": False,  # with several processes: BatchNorm statistics over the global batch
        "progress_bar": True,
        "threads": integer(0, ge=0),  # 0 = torch's default
    },
    # every protocol's settings in a section generated from its dataclass (skelssl.protocol_configs)
    "eval": {
        "batch_size": integer(256, ge=1),
        **{name: config_section(cls) for name, cls in PROTOCOL_SECTIONS.items()},
        # random-init baseline: "data" = BatchNorm statistics of the train part (no labels), "init" = as initialised
        "random_init_batchnorm": choice("data", "data", "init"),
        # AimCLR §4.2 [0.6, 0.6, 0.4]
        "fusion_weights": Setting({"joint": 0.6, "bone": 0.6, "motion": 0.4}, Mapping(Number(ge=0))),
    },
    # the online KNN monitor while a run trains (skelssl/evaluation/monitor.py)
    "monitor": {
        "knn_every_n_epochs": integer(10, ge=0),  # 0 turns it off
        "max_train_samples": integer(5000, ge=1),  # evenly spaced samples of the train / test parts it encodes
        "max_test_samples": integer(2000, ge=1),
    },
    # experiment trackers (skelssl/tracking.py): any of csv, tensorboard, mlflow, wandb
    "tracking": {
        "loggers": texts(["csv", "tensorboard"], *LOGGERS),
        "experiment": text("skelssl"),  # MLflow experiment / W&B project
        "run_name": optional(text(None)),  # default: the run directory's name
        # default: a SQLite database next to the run directory (RUN/../mlflow.db)
        "mlflow_tracking_uri": optional(text(None)),
        "wandb_entity": optional(text(None)),
        "wandb_offline": False,
    },
    "run_dir": optional(text(None)),
    "resume": False,
    "overwrite": False,  # start a new run in a run_dir that holds one (deleting it)
}


BASE_DEFAULTS: dict[str, Any] = plain(BASE_SETTINGS)


# Keys of earlier versions: where they went (None: removed, with the reason).
MOVED_KEYS: dict[str, str | None] = {
    **{f"model.{key}": f"model.stgcn.{key}" for key in
       ("hidden_channels", "out_channels", "dropout", "edge_importance", "temporal_kernel", "official_graph")},
    "data.layout": None,
    # the flat eval.* keys of earlier versions, now in the protocols' sections
    **{f"eval.{section}_{key}": f"eval.{section}.{key}" for section, keys in (
        ("knn", ("temperature",)),
        ("linear", ("epochs", "lr", "momentum", "weight_decay", "milestones", "batch_size", "eval_every",
                    "standardize")),
        ("finetune", ("epochs", "lr", "momentum", "weight_decay", "milestones", "gamma", "batch_size", "eval_every",
                      "batchnorm", "precise_bn", "augment")),
        ("semi", ("percents",)),
        ("seg", ("epochs", "lr", "batch_size", "max_train_frames", "chunk_frames", "context_frames", "frame_step")),
    ) for key in keys},
    "eval.knn_k": "eval.knn.k",
}


REMOVED_BECAUSE = {"data.layout": "the skeleton layout comes from the prepared dataset (its meta.json)"}


def evaluation_defaults(encoder_name: str | None = None) -> DictConfig:
    """The built-in settings without any method's or plug-in's: what evaluation reads (data.*, eval.*, trainer.*),
    for an encoder of your own (`Backbone`) or a run that holds only an encoder (an imported checkpoint,
    skelssl.interop), which also saves its encoder's section model.<encoder_name>."""
    model = {**BASE_SETTINGS["model"]}
    if encoder_name is not None:
        model.update({"encoder": text(encoder_name), encoder_name: dict(get_encoder(encoder_name).DEFAULTS)})
    base = OmegaConf.create(plain({**BASE_SETTINGS, "model": model}))
    base.augment = {key: list(value) if isinstance(value, tuple) else value
                    for key, value in AugmentConfig().to_dict().items()}
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
    raw = load_yaml(path, "config YAML file")
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
    except (OmegaConfBaseException, ValueError, TypeError):
        pass
    for end, item in enumerate(items):  # name the override that does not fit with those before it
        try:
            OmegaConf.from_dotlist(items[:end + 1])
        except (OmegaConfBaseException, ValueError, TypeError) as err:
            key = item.split("=", 1)[0]
            earlier = [i for i in items[:end] if i.split("=", 1)[0].startswith(key + ".") or
                       key.startswith(i.split("=", 1)[0] + ".")]
            if earlier:
                raise UserError(f"override '{item}' conflicts with '{earlier[0]}': '{key}' cannot be both a value "
                                "and a section of keys") from None
            raise UserError(f"cannot parse override '{item}' (of key '{key}'): {err}") from None
    raise UserError(f"cannot parse overrides {items}")  # pragma: no cover - the loop finds the item


def _value_at(tree: Any, key: str) -> Any:
    for part in key.split("."):
        tree = tree[part]
    return tree


def _holds(tree: Any, key: str) -> bool:
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def _check_rules(cfg: DictConfig, found: dict[str, Rule], sources: Iterable[tuple[str, dict[str, Any]]]) -> None:
    values = OmegaConf.to_container(cfg, resolve=True)
    for key, rule in found.items():
        if not _holds(values, key):
            continue
        value = OmegaConf.select(cfg, key)
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        value = list(value) if isinstance(value, tuple) else value  # shown as the user writes it
        problem = rule.problem(value)
        if problem is not None:
            origin = next((name for name, source in reversed(list(sources)) if _holds(source, key)), None)
            raise UserError(f"config key '{key}' = {value!r}{f' ({origin})' if origin else ''}: {problem}")


def _check_devices(cfg: DictConfig) -> None:
    accelerator, devices = cfg.trainer.accelerator, cfg.trainer.devices
    devices = OmegaConf.to_container(devices) if OmegaConf.is_config(devices) else devices
    if accelerator in ("gpu", "cuda") and isinstance(devices, int) and devices > torch.cuda.device_count():
        raise UserError(f"trainer.devices = {devices} asks for more GPUs than this machine has "
                        f"({torch.cuda.device_count()})")
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and devices != "auto" and not (isinstance(devices, int) and devices >= 1) and \
            not (isinstance(devices, str) and devices.isdigit() and int(devices) >= 1):
        raise UserError(f"config key 'trainer.devices' = {devices!r}: on the CPU it is a number of processes >= 1 "
                        "(or auto); -1 and lists of device indices are for GPUs")


EVALUATION_SECTIONS = ("data", "eval", "trainer", "monitor")


def validate_evaluation_config(cfg: DictConfig, sources: list[tuple[str, dict[str, Any]]] = ()) -> None:
    """What evaluation reads of a run's config (data.*, eval.*, trainer.*, monitor.*) against its rules, as
    `validate_config` checks them; the method's own settings are the run's and evaluation does not read them."""
    found = {key: rule for key, rule in rules(BASE_SETTINGS).items() if key.split(".", 1)[0] in EVALUATION_SECTIONS}
    _check_rules(cfg, found, sources)
    _check_devices(cfg)


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


def save_config(cfg: DictConfig, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(OmegaConf.to_yaml(cfg))
    tmp.replace(path)
