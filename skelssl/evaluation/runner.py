"""Evaluate one or several checkpoints with any protocols: load -> encode -> protocols (-> random-init baseline).

The one path the CLI (`skelssl evaluate`), the demo and `benchmarks/compare_methods.py` take.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from omegaconf import OmegaConf

from skelssl.checkpoints import read_checkpoint, run_dir_of
from skelssl.data.prepared import load_meta
from skelssl.errors import UserError
from skelssl.evaluation.backbone import Backbone, TrainedClassifier, normalisation_differences
from skelssl.evaluation.batchnorm import RANDOM_INIT_BATCHNORM, calibrate_on_training_split
from skelssl.evaluation.catalog import get_protocol
from skelssl.evaluation.fusion import StreamScores
from skelssl.evaluation.loading import backbone_from_checkpoint, checkpoint_config
from skelssl.evaluation.protocols import EvalContext
from skelssl.evaluation.results import ResultRecord

__all__ = ["pick_device", "evaluate_checkpoints", "evaluate_backbone", "prepare_random_init", "require_train_and_test",
           "warn_on_normalisation"]


def pick_device(accelerator: str = "auto") -> torch.device:
    """CUDA when asked for (or "auto") and present, else the CPU."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _dataset_name(cfg: Any) -> str:
    """The dataset's own name (meta.json), not the config's label for it."""
    try:
        return load_meta(cfg.data.root).dataset
    except Exception:  # noqa: BLE001 - the protocols report a missing dataset themselves
        return str(cfg.data.dataset)


def warn_on_normalisation(backbone: Backbone, root: Any) -> list[str]:
    """Warn (once per call) when the data at `root` was prepared otherwise than the backbone's weights expect;
    returns the differences."""
    try:
        meta = load_meta(root)
    except Exception:  # noqa: BLE001 - a missing dataset is reported by whoever reads it
        return []
    differences = normalisation_differences(backbone.expects, meta)
    if differences:
        preset = (backbone.expects or {}).get("preset")
        warnings.warn(f"'{root}' was prepared otherwise than the weights of '{backbone.name}' expect "
                      f"({'; '.join(differences)}): their accuracy on it means little; prepare the data with "
                      f"the '{preset}' preset (docs/data.md)", UserWarning, stacklevel=2)
    return differences


def evaluate_backbone(backbone: Backbone, cfg: Any, protocols: Sequence[str], device: torch.device | str = "cpu",
                      *, model_name: str | None = None, progress: bool = False, artifacts_dir: Path | None = None,
                      scores: list[StreamScores] | None = None,
                      classifiers: list[TrainedClassifier] | None = None) -> list[ResultRecord]:
    """Records of `protocols` for one backbone (pretrained, imported, random-init or any encoder of yours) on
    cfg.data, with the settings of cfg.eval and the seed cfg.trainer.seed.

    artifacts_dir: where protocols keep what reruns reuse (semi-supervised subsets); scores: if given, gets
    the test logits of every classifier protocol (for fusion); classifiers: if given, gets the encoder and
    classifier each classifier protocol trained. With `progress`, each protocol's time is printed.
    """
    device = torch.device(device)
    name = model_name or backbone.name
    warn_on_normalisation(backbone, cfg.data.root)
    context = EvalContext(backbone=backbone, cfg=cfg, model_name=name, device=device, progress=progress,
                          dataset_name=_dataset_name(cfg), artifacts_dir=artifacts_dir,
                          keep_classifiers=classifiers is not None)
    records: list[ResultRecord] = []
    for protocol in protocols:
        started = time.perf_counter()
        records += get_protocol(protocol).run(context)
        if progress:
            print(f"[evaluate] {protocol} on {name}: {time.perf_counter() - started:.1f} s", flush=True)
    if scores is not None:
        scores.extend(context.scores)
    if classifiers is not None:
        classifiers.extend(context.classifiers)
    return records


def require_train_and_test(cfg: Any) -> None:
    """Every protocol needs samples in both parts of the split it evaluates on: say so before any work."""
    root, split = cfg.data.root, str(cfg.data.split)
    meta = load_meta(root)
    if split not in meta.splits:
        raise UserError(f"dataset '{root}' has no split '{split}'; it has: {', '.join(sorted(meta.splits))} "
                        "(set data.split)")
    for part in ("train", "test"):
        if len(meta.splits[split].get(part, [])) == 0:
            raise UserError(f"split '{split}' of '{root}' has no {part} sequences: evaluation needs both a train and "
                            f"a test part (`skelssl info {root}` shows the counts; choose another data.split)")


def prepare_random_init(backbone: Backbone, cfg: Any, device: torch.device) -> None:
    """The random-init baseline as `eval.random_init_batchnorm` asks: "data" (default) gives its BatchNorm
    layers the statistics of the train part (skelssl.evaluation.batchnorm), "init" leaves them as drawn."""
    mode = str(cfg.eval.random_init_batchnorm)
    if mode not in RANDOM_INIT_BATCHNORM:
        raise UserError(f"eval.random_init_batchnorm must be one of {', '.join(RANDOM_INIT_BATCHNORM)}, got '{mode}'")
    if mode == "data":
        calibrate_on_training_split(backbone, cfg, device)


def evaluate_checkpoints(checkpoints: Iterable[str | Path], protocols: Sequence[str],
                         overrides: dict[str, Any] | None = None, *, with_random_init: bool = False,
                         device: torch.device | None = None, progress: bool = False,
                         announce: bool = False,
                         per_checkpoint: dict[Path, list[ResultRecord]] | None = None,
                         out_dir: str | Path | None = None,
                         per_checkpoint_scores: dict[Path, list[StreamScores]] | None = None,
                         per_checkpoint_classifiers: dict[Path, list[tuple[Backbone, Any, TrainedClassifier]]] | None
                         = None) -> list[ResultRecord]:
    """Records of every protocol for every checkpoint (model name: skelssl.config.model_label, the method with
    its plug-ins and a foreign encoder; an imported run's own label), and once per distinct
    architecture, seed and data, the random-init baseline (model "random_init") when asked for.

    overrides: data.* / eval.* / trainer.* values applied to each checkpoint's saved config (checked for typos).
    per_checkpoint: if given, filled with each checkpoint's own records (its baseline included).
    out_dir: where protocols keep what reruns reuse (semi-supervised subsets); default each checkpoint's run.
    per_checkpoint_scores: if given, filled with each checkpoint's test logits (for stream fusion).
    per_checkpoint_classifiers: if given, filled with (backbone, config, TrainedClassifier) of each classifier
    protocol run on a checkpoint's own weights (not the random-init baseline's).
    """
    for name in protocols:
        get_protocol(name)  # an unknown protocol fails before any work
    records: list[ResultRecord] = []
    baselines_done: set[str] = set()
    for path in checkpoints:
        ckpt = read_checkpoint(path)
        cfg = checkpoint_config(ckpt, path, overrides)
        require_train_and_test(cfg)
        run_device = device or pick_device(str(cfg.trainer.accelerator))
        models = [True]
        baseline_key = json.dumps([OmegaConf.to_container(cfg.model), OmegaConf.to_container(cfg.data),
                                   int(cfg.trainer.seed), ckpt["hyper_parameters"]["layout"]], sort_keys=True,
                                  default=str)
        if with_random_init and baseline_key not in baselines_done:
            baselines_done.add(baseline_key)
            models.append(False)
        for load_weights in models:
            backbone = backbone_from_checkpoint(ckpt, cfg, path, load_weights=load_weights)
            if announce:
                print(f"[evaluate] {backbone.name} ({', '.join(protocols)}) from {path} ...", flush=True)
            if not load_weights:
                prepare_random_init(backbone, cfg, run_device)
            scores: list[StreamScores] = []
            trained: list[TrainedClassifier] = []
            found = evaluate_backbone(backbone, cfg, protocols, run_device, progress=progress,
                                      artifacts_dir=Path(out_dir) if out_dir else run_dir_of(path), scores=scores,
                                      classifiers=trained if per_checkpoint_classifiers is not None else None)
            if per_checkpoint_classifiers is not None and load_weights:
                per_checkpoint_classifiers.setdefault(Path(path), []).extend((backbone, cfg, t) for t in trained)
            records += found
            if per_checkpoint is not None:
                per_checkpoint.setdefault(Path(path), []).extend(found)
            if per_checkpoint_scores is not None:
                per_checkpoint_scores.setdefault(Path(path), []).extend(scores)
    return records
