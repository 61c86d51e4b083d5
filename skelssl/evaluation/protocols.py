"""What an evaluation protocol is: a `Protocol` turns one model (an `EvalContext`) into result records.

A protocol gets an `EvalContext` (the backbone, the config, the device) and returns records in percent.
Frozen-feature protocols (KNN, linear probe, defined here) read `context.features`, computed once per model and
shared. The list of every protocol by name is skelssl.evaluation.catalog.PROTOCOLS: a new protocol is one
class, added there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from omegaconf import DictConfig

from skelssl.evaluation.backbone import Backbone, TrainedClassifier
from skelssl.evaluation.features import encode_splits
from skelssl.evaluation.knn import knn_evaluate
from skelssl.evaluation.fusion import StreamScores
from skelssl.evaluation.linear import fit_linear_head, summarize_history
from skelssl.evaluation.logistic import logistic_probe
from skelssl.evaluation.results import ResultRecord
from skelssl.protocol_configs import KnnConfig, LinearProbeConfig, LogisticProbeConfig

__all__ = ["EvalContext", "Protocol", "KnnProtocol", "LinearProtocol", "LogisticProtocol"]


@dataclass
class EvalContext:
    """One model under evaluation: its `backbone` (pretrained, imported or random-init), the config whose data.*,
    eval.* and trainer.seed the protocols read, where to run.

    artifacts_dir: where protocols keep what a rerun must reuse (the semi-supervised label subsets); None
    keeps nothing. scores: the test logits of every classifier protocol run, for stream fusion; classifiers: the
    encoder and classifier each classifier protocol trained (kept for `evaluate --save-classifier`).
    """

    backbone: Backbone
    cfg: DictConfig
    model_name: str
    device: torch.device
    progress: bool = False
    dataset_name: str = ""
    artifacts_dir: Path | None = None
    scores: list[StreamScores] = field(default_factory=list)
    classifiers: list[TrainedClassifier] = field(default_factory=list)
    keep_classifiers: bool = False  # copies of the encoders: only when asked for
    _features: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def features(self) -> dict[str, Any]:
        """Frozen backbone features of the train and test parts (computed on first use, then cached)."""
        if self._features is None:
            self._features = encode_splits(self.backbone, self.cfg, self.device, progress=self.progress)
        return self._features

    def record(self, protocol: str, metric: str, fraction: float) -> ResultRecord:
        return ResultRecord.from_fraction(dataset=self.dataset_name or self.cfg.data.dataset,
                                          split=self.cfg.data.split, model=self.model_name,
                                          stream=self.cfg.data.stream, protocol=protocol, metric=metric,
                                          fraction=fraction)

    def keep_scores(self, protocol: str, logits: Any, labels: Any, sample_names: list[str],
                    dataset: str | None = None) -> None:
        """Keep a classifier's test logits (N, K) for fusion."""
        self.scores.append(StreamScores(dataset or self.dataset_name or str(self.cfg.data.dataset),
                                        str(self.cfg.data.split), self.model_name, str(self.cfg.data.stream),
                                        protocol, _numpy(logits), _numpy(labels), list(sample_names)))


def _numpy(values: Any) -> Any:
    return values.detach().float().cpu().numpy() if isinstance(values, torch.Tensor) else values


class Protocol:
    name: ClassVar[str] = ""
    help: ClassVar[str] = ""

    def run(self, context: EvalContext) -> list[ResultRecord]:  # pragma: no cover - every protocol overrides it
        raise NotImplementedError


class KnnProtocol(Protocol):
    name = "knn"
    help = "1-NN (cosine) and weighted k-NN (k in eval.knn.k) on frozen features"

    def run(self, context: EvalContext) -> list[ResultRecord]:
        f, knn = context.features, KnnConfig.from_section(context.cfg.eval.knn)
        accs = knn_evaluate(f["train_feats"], f["train_labels"], f["test_feats"], f["test_labels"],
                            f["num_classes"], ks=tuple(knn.k), temperature=float(knn.temperature))
        return [context.record("knn", metric, value) for metric, value in accs.items()]


class LinearProtocol(Protocol):
    name = "linear"
    help = "a linear classifier on frozen features (eval.linear.*)"

    def run(self, context: EvalContext) -> list[ResultRecord]:
        f, device = context.features, context.device
        probe_cfg = LinearProbeConfig.from_section(context.cfg.eval.linear, seed=int(context.cfg.trainer.seed))
        test_feats = f["test_feats"].to(device)
        head, history = fit_linear_head(f["train_feats"].to(device), f["train_labels"].to(device), test_feats,
                                        f["test_labels"].to(device), f["num_classes"], probe_cfg,
                                        progress=context.progress)
        with torch.no_grad():
            context.keep_scores("linear", head.logits(test_feats), f["test_labels"], f["test_names"])
        if context.keep_classifiers:
            context.classifiers.append(TrainedClassifier.from_linear(
                "linear", context.backbone.encoder, head.linear, f["class_names"], head.mean, head.std))
        out = summarize_history(history)
        return [context.record("linear", "top1", out["final_top1"]),
                context.record("linear", "best_top1", out["best_top1"])]


class LogisticProtocol(Protocol):
    name = "logistic"
    help = ("the deterministic linear probe: full-batch logistic regression (Newton-Cholesky or L-BFGS) on "
            "z-scored frozen features, its L2 by cross-validation on the train part (eval.logistic.*)")

    def run(self, context: EvalContext) -> list[ResultRecord]:
        f = context.features
        cfg = LogisticProbeConfig.from_section(context.cfg.eval.logistic, seed=int(context.cfg.trainer.seed))
        out = logistic_probe(f["train_feats"], f["train_labels"], f["test_feats"], f["test_labels"], cfg)
        context.keep_scores("logistic", out["probe"].logits(f["test_feats"]), f["test_labels"], f["test_names"])
        if context.progress:
            folds = ", ".join(f"{l2:g}: {100 * acc:.1f}" for l2, acc in out["cv"].items())
            print(f"logistic probe: l2 {out['l2']:g} chosen by cross-validation on the train part ({folds})")
        return [context.record("logistic", "top1", out["top1"])]
