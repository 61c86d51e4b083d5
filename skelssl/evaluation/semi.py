"""Semi-supervised evaluation: finetune the encoder and classifier on a small labelled subset of the training
set (AimCLR §4.2 "1% or 10% randomly selected labeled data"; ActCLR+ Table VII; ProSL §4.3.2).

The subsets (our choices, where the papers say only "randomly selected"):
- class-balanced: each class contributes the same share of its own training samples,
  round(p/100 * n_c) of its n_c (half up), and at least one, so that 1 % of a small dataset still sees every
  class; a class with no training sample contributes none;
- drawn by numpy's default_rng(seed) (seed = trainer.seed), class by class in class order;
- saved as JSON in ARTIFACTS/subsets/ (ARTIFACTS: the run directory, or `--out`), with the training samples'
  names: a rerun with the same dataset, split, percentage and seed reads that file instead of drawing
  again, so every method evaluated into the same directory, and every rerun, trains on the same samples.
  A saved subset whose names are no longer in the dataset is an error, not a silent redraw.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from skelssl.data.dataset import SkeletonDataset
from skelssl.errors import UserError
from skelssl.evaluation.finetune import finetune_in_context
from skelssl.evaluation.protocols import EvalContext, Protocol
from skelssl.evaluation.results import ResultRecord
from skelssl.protocol_configs import SemiConfig

__all__ = ["class_balanced_subset", "semi_subset", "subset_file", "protocol_name", "SemiProtocol"]

SUBSETS_DIR = "subsets"


def class_balanced_subset(labels: Sequence[int] | np.ndarray, percent: float, seed: int) -> np.ndarray:
    """Sorted positions of a class-balanced `percent` % subset of `labels` (module docstring)."""
    if not 0 < percent <= 100:
        raise UserError(f"a semi-supervised percentage must be in (0, 100], got {percent}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = min(len(members), max(1, int(np.floor(percent / 100 * len(members) + 0.5))))
        chosen.append(rng.permutation(members)[:count])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def protocol_name(percent: float) -> str:
    """'semi1', 'semi10', 'semi0.5'."""
    return f"semi{percent:g}"


def subset_file(folder: str | Path, dataset: str, split: str, percent: float, seed: int) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.+-]", "-", f"{protocol_name(percent)}_{dataset}_{split}_seed{seed}")
    return Path(folder) / SUBSETS_DIR / f"{name}.json"


def semi_subset(labels: np.ndarray, names: Sequence[str], percent: float, seed: int, *, dataset: str, split: str,
                folder: str | Path | None) -> tuple[np.ndarray, Path | None]:
    """Positions (in the training part) of the subset: read from `folder` when saved there, else drawn and
    saved there (nothing is saved when `folder` is None). Returns (positions, the file or None)."""
    path = subset_file(folder, dataset, split, percent, seed) if folder is not None else None
    if path is not None and path.is_file():
        try:
            saved = json.loads(path.read_text())
            saved_names = list(saved["sample_names"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise UserError(f"{path}: not a readable subset file ({err}); delete it to draw the subset again") \
                from None
        where = {name: i for i, name in enumerate(names)}
        missing = [name for name in saved_names if name not in where]
        if missing:
            raise UserError(f"{path}: {len(missing)} of its samples (e.g. '{missing[0]}') are not in the training "
                            f"part of {dataset}/{split} any more; the dataset changed since the subset was "
                            "drawn. Delete the file to draw a new subset (results will not be comparable)")
        return np.sort(np.array([where[name] for name in saved_names], dtype=np.int64)), path
    positions = class_balanced_subset(labels, percent, seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        per_class = {str(int(c)): int(n) for c, n in zip(*np.unique(labels[positions], return_counts=True))}
        payload = {"dataset": dataset, "split": split, "percent": percent, "seed": seed,
                   "rule": "per class: max(1, round half up(percent/100 * class count)), numpy default_rng(seed)",
                   "samples": int(len(positions)), "per_class": per_class,
                   "train_positions": [int(p) for p in positions], "sample_names": [names[p] for p in positions]}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        os.replace(tmp, path)
    return positions, path


class SemiProtocol(Protocol):
    name = "semi"
    help = "encoder + classifier finetuned on class-balanced label subsets (eval.semi.percents: 1, 10)"

    def run(self, context: EvalContext) -> list[ResultRecord]:
        cfg = context.cfg
        train = SkeletonDataset(cfg.data.root, cfg.data.split, "train")
        names = [train.meta.sample_names[i] for i in train.indices]
        records: list[ResultRecord] = []
        for percent in SemiConfig.from_section(cfg.eval.semi).percents:
            positions, path = semi_subset(train.labels, names, float(percent), int(cfg.trainer.seed),
                                          dataset=context.dataset_name or str(cfg.data.dataset),
                                          split=str(cfg.data.split), folder=context.artifacts_dir)
            if context.progress:
                print(f"[{protocol_name(float(percent))}] {len(positions)} of {len(names)} training samples"
                      + (f" ({path})" if path else ""), flush=True)
            records += finetune_in_context(context, protocol_name(float(percent)),
                                           context.backbone.copy_encoder(), train_positions=positions)
        return records
