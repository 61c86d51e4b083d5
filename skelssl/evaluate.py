"""`skelssl evaluate knn|linear`: frozen-encoder protocols on a pretrained checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch
from omegaconf import DictConfig

from skelssl.data.dataset import SkeletonDataset
from skelssl.evaluation import (
    LinearProbeConfig,
    ResultRecord,
    extract_features,
    knn_evaluate,
    linear_probe,
)
from skelssl.methods.base import MoCoMethod
from skelssl.transforms.streams import to_stream

PROTOCOLS = ("knn", "linear")


def pick_device(accelerator: str = "auto") -> torch.device:
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def encode_splits(method: MoCoMethod, cfg: DictConfig, device: torch.device,
                  progress: bool = False) -> dict[str, Any]:
    """Backbone features of the train and test parts of cfg.data (computed once, reused by every protocol)."""
    train = SkeletonDataset(cfg.data.root, cfg.data.split, "train")
    test = SkeletonDataset(cfg.data.root, cfg.data.split, "test")
    encoder = method.backbone.to(device)
    layout, stream = method.layout, cfg.data.stream

    def transform(x: torch.Tensor) -> torch.Tensor:
        return to_stream(x, stream, layout)

    bs = int(cfg.eval.batch_size)
    return {
        "train_feats": extract_features(encoder, train.array(), batch_size=bs, device=device,
                                        transform=transform, progress=progress),
        "test_feats": extract_features(encoder, test.array(), batch_size=bs, device=device,
                                       transform=transform, progress=progress),
        "train_labels": torch.as_tensor(train.labels),
        "test_labels": torch.as_tensor(test.labels),
        "num_classes": train.num_classes,
    }


def run_protocols(features: dict[str, Any], cfg: DictConfig, model_name: str,
                  protocols: Iterable[str], device: torch.device, progress: bool = False) -> list[ResultRecord]:
    """KNN and/or linear probe on cached features; records in percent."""
    e = cfg.eval
    common = dict(dataset=cfg.data.dataset, split=cfg.data.split, model=model_name, stream=cfg.data.stream)
    records: list[ResultRecord] = []
    for protocol in protocols:
        if protocol == "knn":
            accs = knn_evaluate(features["train_feats"], features["train_labels"], features["test_feats"],
                                features["test_labels"], features["num_classes"], ks=tuple(e.knn_k),
                                temperature=float(e.knn_temperature))
            for metric, value in accs.items():
                records.append(ResultRecord.from_fraction(protocol="knn", metric=metric, fraction=value, **common))
        elif protocol == "linear":
            probe_cfg = LinearProbeConfig(epochs=int(e.linear_epochs), lr=float(e.linear_lr),
                                          momentum=float(e.linear_momentum),
                                          weight_decay=float(e.linear_weight_decay),
                                          milestones=tuple(e.linear_milestones),
                                          batch_size=int(e.linear_batch_size), eval_every=int(e.linear_eval_every),
                                          standardize=bool(e.linear_standardize), seed=int(cfg.trainer.seed))
            out = linear_probe(features["train_feats"].to(device), features["train_labels"].to(device),
                               features["test_feats"].to(device), features["test_labels"].to(device),
                               features["num_classes"], probe_cfg, progress=progress)
            records.append(ResultRecord.from_fraction(protocol="linear", metric="top1",
                                                      fraction=out["final_top1"], **common))
            records.append(ResultRecord.from_fraction(protocol="linear", metric="best_top1",
                                                      fraction=out["best_top1"], **common))
        else:
            raise ValueError(f"unknown protocol '{protocol}'; known: {', '.join(PROTOCOLS)}")
    return records


def results_dir_for(checkpoint: str | Path) -> Path:
    """RUN/checkpoints/last.ckpt -> RUN."""
    path = Path(checkpoint).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent
