"""Labelling sequences with a model's classifier: `skelssl predict --checkpoint RUN --out DIR data.root=...`.

The model is a run with a classifier (an imported linear-evaluation checkpoint; a probe or finetune saved by
`evaluate --save-classifier`): its encoder (eval mode) and classifier label the test part of data.split, or every
sequence of a dataset without splits (one split without a test part, as `prepare custom` writes it). Written to DIR: predictions.csv (each sequence's name, its true class where
the dataset has labels, the top-5 classes with their softmax scores); where labels exist, results.json (top1 and
top5 records, as `evaluate` writes them) and confusion.png with the class names. Data prepared otherwise than the
weights expect warns first.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skelssl.data.prepared import PreparedMeta, load_meta, open_data
from skelssl.errors import UserError
from skelssl.evaluation.backbone import Backbone
from skelssl.evaluation.features import extract_features
from skelssl.evaluation.inputs import model_input
from skelssl.evaluation.results import ResultRecord, write_results
from skelssl.evaluation.segmentation import confusion_matrix
from skelssl.figures import plot_confusion

__all__ = ["Predictions", "predict_dataset", "write_predictions", "TOP_K", "PREDICTIONS_FILE"]

TOP_K = 5
PREDICTIONS_FILE = "predictions.csv"


@dataclass
class Predictions:
    names: list[str]
    logits: torch.Tensor  # (N, K)
    class_names: list[str]
    labels: np.ndarray | None  # (N,) in the classifier's classes, None when the data has none comparable
    dataset: str
    split: str
    note: str = ""

    @property
    def top(self) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.softmax(self.logits.double(), dim=1)
        return scores.topk(min(TOP_K, scores.shape[1]), dim=1)

    def accuracy(self, k: int) -> float:
        assert self.labels is not None
        _, index = self.logits.topk(min(k, self.logits.shape[1]), dim=1)
        truth = torch.as_tensor(self.labels).long()[:, None]
        return float((index == truth).any(dim=1).double().mean()) if len(truth) else 0.0


def _rows(meta: PreparedMeta, split: str | None, root: Any) -> tuple[np.ndarray, str]:
    """The test part of `split`; every sequence of a dataset without splits (its one split has no test part, as
    `prepare custom` and `convert` write it). A split the data lacks is the data's only one, if it has one."""
    if split not in meta.splits and len(meta.splits) == 1:
        split = next(iter(meta.splits))
    if split not in meta.splits:
        raise UserError(f"dataset '{root}' has no split '{split}'; it has: {', '.join(sorted(meta.splits))} "
                        "(set data.split)")
    parts = meta.splits[split]
    rows = np.asarray(parts.get("test", []), dtype=np.int64)
    if len(rows) == 0:
        if len(meta.splits) > 1:
            raise UserError(f"split '{split}' of '{root}' has no test sequences to label; choose another data.split")
        rows = np.sort(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts.values()]))
    return rows, str(split)


def _comparable_labels(meta: PreparedMeta, rows: np.ndarray, class_names: list[str]) -> tuple[np.ndarray | None, str]:
    """The data's labels as classifier classes: by class name (the data may name a subset, in another order)."""
    if meta.labels is None or len(meta.class_names) == 0:
        return None, "the data has no labels: predictions only"
    position = {name: i for i, name in enumerate(class_names)}
    missing = [name for name in meta.class_names if name not in position]
    if missing:
        return None, (f"the data's classes are not the classifier's (e.g. '{missing[0]}'): predictions only, no "
                      "accuracy")
    mapping = np.array([position[name] for name in meta.class_names])
    return mapping[np.asarray(meta.labels)[rows]], ""


def predict_dataset(backbone: Backbone, cfg: Any, device: torch.device | str = "cpu", *,
                    progress: bool = False) -> Predictions:
    """The classifier's logits for the sequences `predict` labels (module docstring)."""
    if backbone.head is None:
        raise UserError(f"the model '{backbone.name}' has no classifier; `predict` needs one (an imported "
                        "linear-evaluation checkpoint, or `skelssl evaluate linear --save-classifier`)")
    root = cfg.data.root
    meta = load_meta(root)
    rows, split = _rows(meta, str(cfg.data.split) if cfg.data.get("split") is not None else None, root)
    data = open_data(root)
    device = torch.device(device)
    ordered = np.sort(rows)  # a memory-mapped file is read in order; the features come back in `rows` order
    features = extract_features(backbone.encoder.to(device), data[ordered], batch_size=int(cfg.eval.batch_size),
                                device=device, transform=model_input(backbone, meta.layout), progress=progress)
    features = features[torch.as_tensor(np.searchsorted(ordered, rows))]
    head = backbone.head.to(device).eval()
    with torch.no_grad():
        logits = head(features.to(device)).float().cpu()
    class_names = list(backbone.class_names or [str(i) for i in range(logits.shape[1])])
    labels, note = _comparable_labels(meta, rows, class_names)
    return Predictions(names=[meta.sample_names[i] for i in rows], logits=logits, class_names=class_names,
                       labels=labels, dataset=meta.dataset, split=split, note=note)


def write_predictions(result: Predictions, out_dir: str | Path, model_name: str, stream: str) -> tuple[list[ResultRecord], list[Path]]:
    """predictions.csv, and with labels results.json (merged) and confusion.png, in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores, index = result.top
    k = index.shape[1]
    path = out_dir / PREDICTIONS_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample", "true_class"] + [f"{what}_{i}" for i in range(1, k + 1) for what in ("class", "score")])
        for row, name in enumerate(result.names):
            truth = result.class_names[int(result.labels[row])] if result.labels is not None else ""
            cells = []
            for i in range(k):
                cells += [result.class_names[int(index[row, i])], f"{float(scores[row, i]):.6f}"]
            writer.writerow([name, truth] + cells)
    os.replace(tmp, path)
    written = [path]
    records: list[ResultRecord] = []
    if result.labels is not None:
        for metric, top in (("top1", 1), ("top5", 5)):
            records.append(ResultRecord.from_fraction(result.dataset, result.split, model_name, stream, "predict",
                                                      metric, result.accuracy(top)))
        written.append(write_results(out_dir, records))
        confusion = confusion_matrix(result.labels, result.logits.argmax(dim=1).numpy(), len(result.class_names))
        present = sorted(set(int(c) for c in result.labels) | set(int(c) for c in result.logits.argmax(dim=1)))
        shown = confusion[np.ix_(present, present)]
        written.append(plot_confusion(shown, [result.class_names[i] for i in present], out_dir / "confusion.png",
                                      title=f"{model_name} on {result.dataset} ({result.split}): top-1 "
                                            f"{100 * result.accuracy(1):.1f} %"))
    return records, written
