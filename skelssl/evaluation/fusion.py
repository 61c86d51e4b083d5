"""Multi-stream fusion: the test logits of joint, motion and bone models combined by a weighted sum.

AimCLR §4.2 (and the 3s- rows of ActCLR/ActCLR+): "for all the reported results of three streams, we use the
weights of [0.6, 0.6, 0.4] for weighted fusion", the streams listed as joint, bone, motion; the official
ensemble script weighs joint 0.6, bone 0.6, motion 0.4 (REFERENCE_NOTES). Those are the defaults
(`eval.fusion_weights`); the sum is over raw logits (the classifier outputs, no softmax), as that script does.

Every classifier protocol (linear, semi*, finetune, supervised, transfer-*) keeps its test logits as
`StreamScores`; `skelssl evaluate ... --fuse` fuses those of several checkpoints at once and the CLI saves
them to RUN/scores/ so that `skelssl fuse RUN...` can fuse runs evaluated separately. The logits fused are
those of the final epoch (the `top1` row, not the test-selected `best_top1`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from skelssl.defaults import BASE_DEFAULTS
from skelssl.errors import UserError
from skelssl.evaluation.results import ResultRecord

__all__ = ["StreamScores", "DEFAULT_FUSION_WEIGHTS", "fuse_logits", "fuse_scores", "save_scores", "load_scores",
           "SCORES_DIR"]

DEFAULT_FUSION_WEIGHTS: dict[str, float] = dict(BASE_DEFAULTS["eval"]["fusion_weights"])  # joint .6, bone .6, motion .4
SCORES_DIR = "scores"
FUSED_STREAM = "fused"
STREAM_ORDER = {"joint": 0, "motion": 1, "bone": 2}


@dataclass
class StreamScores:
    """One model's test logits under one protocol: (N, K) logits, (N,) labels, the N test samples' names."""

    dataset: str
    split: str
    model: str
    stream: str
    protocol: str
    logits: np.ndarray
    labels: np.ndarray
    sample_names: list[str]

    def __post_init__(self) -> None:
        self.logits = np.asarray(self.logits, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.logits.ndim != 2 or not self.logits.shape[0] == len(self.labels) == len(self.sample_names):
            raise ValueError(f"scores of {self.model}/{self.stream}/{self.protocol}: logits "
                             f"{self.logits.shape}, {len(self.labels)} labels, {len(self.sample_names)} names")

    @property
    def group(self) -> tuple[str, str, str, str]:
        """What must agree for streams to be fused: (dataset, split, model, protocol)."""
        return (self.dataset, self.split, self.model, self.protocol)

    def top1(self) -> float:
        return float((self.logits.argmax(axis=1) == self.labels).mean()) if len(self.labels) else 0.0

    def record(self) -> ResultRecord:
        return ResultRecord.from_fraction(self.dataset, self.split, self.model, self.stream, self.protocol, "top1",
                                          self.top1())


def fuse_logits(logits: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """sum over streams of weights[stream] * logits[stream]; a stream without a weight is an error."""
    missing = [stream for stream in logits if stream not in weights]
    if missing:
        raise UserError(f"no fusion weight for stream(s) {', '.join(missing)}; set eval.fusion_weights."
                        f"{missing[0]}=... (weights given: {dict(weights)})")
    return sum(float(weights[stream]) * np.asarray(values, dtype=np.float64) for stream, values in logits.items())


def fuse_scores(scores: Iterable[StreamScores], weights: Mapping[str, float] | None = None,
                ) -> tuple[list[ResultRecord], list[StreamScores]]:
    """Per-stream and fused top-1 records of every group with two or more streams, and the fused scores.

    Scores are grouped by (dataset, split, model, protocol); within a group the streams must be distinct
    and have been evaluated on the same test samples (names and labels in the same order).
    """
    weights = dict(DEFAULT_FUSION_WEIGHTS if weights is None else weights)
    groups: dict[tuple[str, ...], dict[str, StreamScores]] = {}
    for item in scores:
        if item.stream == FUSED_STREAM:
            continue
        streams = groups.setdefault(item.group, {})
        if item.stream in streams:
            raise UserError(f"two {item.stream}-stream results for {'/'.join(item.group)}: fuse one run per stream "
                            "(evaluate the others separately)")
        streams[item.stream] = item
    records: list[ResultRecord] = []
    fused: list[StreamScores] = []
    for group, streams in groups.items():
        if len(streams) < 2:
            continue
        first = next(iter(streams.values()))
        for item in streams.values():
            if item.sample_names != first.sample_names or not np.array_equal(item.labels, first.labels):
                raise UserError(f"{'/'.join(group)}: the {item.stream} and {first.stream} results were computed on "
                                "different test samples; evaluate every stream on the same dataset and split")
        logits = fuse_logits({stream: item.logits for stream, item in streams.items()}, weights)
        combined = StreamScores(*group[:3], FUSED_STREAM, group[3], logits, first.labels, first.sample_names)
        ordered = sorted(streams.values(), key=lambda item: STREAM_ORDER.get(item.stream, len(STREAM_ORDER)))
        records += [item.record() for item in ordered] + [combined.record()]
        fused.append(combined)
    return records, fused


def _file_name(scores: StreamScores) -> str:
    raw = "_".join([scores.dataset, scores.split, scores.model, scores.stream, scores.protocol])
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", raw) + ".npz"


def save_scores(run_dir: str | Path, scores: Iterable[StreamScores]) -> list[Path]:
    """Write each StreamScores to RUN/scores/<dataset>_<split>_<model>_<stream>_<protocol>.npz (no pickle)."""
    folder = Path(run_dir) / SCORES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in scores:
        path = folder / _file_name(item)
        tmp = path.with_name(path.name + ".tmp.npz")
        info = {k: getattr(item, k) for k in ("dataset", "split", "model", "stream", "protocol")}
        np.savez(tmp, logits=item.logits, labels=item.labels, sample_names=np.asarray(item.sample_names, dtype=str),
                 info=np.asarray(json.dumps(info)))
        tmp.replace(path)
        paths.append(path)
    return paths


def load_scores(run_dir: str | Path) -> list[StreamScores]:
    """Every StreamScores saved in RUN/scores/ (a UserError names a run without any)."""
    folder = Path(run_dir) / SCORES_DIR
    files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    if not files:
        raise UserError(f"{run_dir}: no saved test logits in {folder}; run a classifier protocol first "
                        "(`skelssl evaluate linear --checkpoint RUN/checkpoints/last.ckpt`)")
    found = []
    for path in files:
        try:
            with np.load(path, allow_pickle=False) as payload:
                info = json.loads(str(payload["info"]))
                found.append(StreamScores(**info, logits=payload["logits"], labels=payload["labels"],
                                          sample_names=[str(n) for n in payload["sample_names"]]))
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise UserError(f"{path}: not a readable scores file ({err}); delete it and evaluate again") from None
    return found
