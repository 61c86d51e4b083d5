"""`skelssl analyze actionlets|tsne`: what a pretrained encoder learned, as figures and pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from skelssl.data.dataset import SkeletonDataset
from skelssl.data.prepared import open_data
from skelssl.errors import UserError
from skelssl.evaluation import ResultRecord
from skelssl.methods.core.base import MoCoMethod


def analyze_actionlets(method: MoCoMethod, out_dir: Path, device: torch.device, pictures: int = 4,
                       limit: int | None = None) -> tuple[list[ResultRecord], list[Path]]:
    """Actionlets of the test sequences; precision/recall/IoU when the dataset has ground truth."""
    from skelssl.analysis.actionlets import actionlet_scores, plot_actionlet, predict_actionlets

    if not hasattr(method, "actionlet"):
        raise UserError(f"method '{method.name}' has no actionlets; use an ActCLR checkpoint")
    cfg = method.cfg
    test = SkeletonDataset(cfg.data.root, cfg.data.split, "test")
    data = test.array()
    rows = np.arange(len(test)) if limit is None else np.arange(min(limit, len(test)))
    predicted = predict_actionlets(method, data[rows], device=device)
    records: list[ResultRecord] = []
    truth = None
    if "actionlets" in test.meta.extra_arrays:
        truth = np.asarray(open_data(cfg.data.root, "actionlets")[test.indices[rows]]).astype(bool)
        scores = actionlet_scores(predicted, truth)
        common = dict(dataset=cfg.data.dataset, split=cfg.data.split, model=method.name, stream=cfg.data.stream,
                      protocol="actionlet")
        for metric in ("precision", "recall", "iou", "chance_precision"):
            records.append(ResultRecord.from_fraction(metric=metric, fraction=scores[metric], **common))
    paths = []
    names = test.meta.class_names
    for i in np.linspace(0, len(rows) - 1, min(pictures, len(rows))).round().astype(int):
        label = names[int(test.labels[rows[i]])]
        paths.append(plot_actionlet(np.asarray(data[rows[i]]), predicted[i].numpy(), test.layout,
                                    out_dir / f"actionlet_{i:04d}_{label}.png", title=f"{method.name}: {label}",
                                    truth=None if truth is None else truth[i]))
    return records, paths


def analyze_tsne(method: MoCoMethod, out_dir: Path, device: torch.device, model_name: str) -> Path:
    from skelssl.analysis.actionlets import plot_tsne
    from skelssl.evaluation import encode_splits

    features = encode_splits(method, method.cfg, device)
    test = SkeletonDataset(method.cfg.data.root, method.cfg.data.split, "test")
    return plot_tsne(features["test_feats"], features["test_labels"].numpy(), test.meta.class_names,
                     out_dir / f"tsne_{model_name}.png",
                     title=f"t-SNE, {model_name}, {method.cfg.data.dataset} {method.cfg.data.split} test")
