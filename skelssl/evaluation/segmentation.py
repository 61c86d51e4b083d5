"""Unsupervised action segmentation (ActCLR §4.2 4), Table 6): a frame-wise linear classifier on frozen dense
features of untrimmed sequences; ACC, MACC, FWIoU and mIoU.

The paper states the protocol in one sentence: the encoder f is pretrained (NTU 60), frozen, and a linear
classifier is trained on PKU-MMD II by the linear-evaluation mechanism. What it leaves open, and what we chose:

- Frame features: the encoder's last dense map (N, M, C, T', V) (`DenseEncoder.features`), averaged over the
  joints and then the persons (as `models.pooling.pool` averages), so one C-vector per feature frame. Each
  input frame takes the feature frame whose centre is nearest to it: with a total temporal stride s (4 for
  ST-GCN), feature frame j is centred on input frame s·j. The encoder runs in eval mode (BatchNorm running
  statistics, no dropout), as in the linear protocol.
- A whole sequence is encoded as one long input (ST-GCN is convolutional in time). To bound memory it is cut
  into chunks of `eval.seg.chunk_frames` frames, each encoded with `eval.seg.context_frames` frames of real context on
  both sides whose features are thrown away: the result equals the whole-sequence encoding when the context
  covers the encoder's temporal receptive radius (76 frames for the paper's ST-GCN, kernel 9) — tested.
- `eval.seg.frame_step` > 1 encodes every step-th frame (to match the frame rate the encoder was pretrained at)
  and maps the features back onto every frame.
- Classes: the dataset's actions plus "no action" (frame label 0), so every frame is classified; padding
  frames (-1) are ignored. The classifier is Linear(C, classes + 1) with the linear probe's standardiser and
  SGD (lr `eval.seg.lr`, momentum `eval.linear.momentum`, x0.1 at 80 % of `eval.seg.epochs`), trained on the frames of
  the training sequences (at most `eval.seg.max_train_frames`, drawn with the run's seed) and applied, once
  trained, to every frame of the test sequences: no model selection on the test set.
- Metrics (the four of Long et al., "Fully convolutional networks for semantic segmentation", 2015, which
  Table 6's names follow), with n_ij the frames of class i predicted as j and t_i = Σ_j n_ij:
  ACC = Σ_i n_ii / Σ_i t_i;  MACC = mean_i n_ii / t_i;  mIoU = mean_i n_ii / (t_i + Σ_j n_ji − n_ii);
  FWIoU = Σ_i t_i · IoU_i / Σ_i t_i. Means run over the classes present in the test frames (a class that
  never occurs and is never predicted has no accuracy and no IoU; one predicted but absent counts IoU 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from skelssl.defaults import BASE_DEFAULTS
from skelssl.console import Progress
from skelssl.data.prepared import load_meta, open_data
from skelssl.errors import UserError
from skelssl.evaluation.backbone import Backbone
from skelssl.evaluation.linear import _LinearHead
from skelssl.evaluation.protocols import EvalContext, Protocol
from skelssl.evaluation.results import ResultRecord
from skelssl.figures import save_png
from skelssl.protocol_configs import LinearProbeConfig, SegmentationConfig
from skelssl.transforms.streams import to_stream

__all__ = ["SEGMENTATION_DEFAULTS", "BACKGROUND_NAME", "confusion_matrix", "segmentation_scores",
           "temporal_stride", "frame_features", "FrameClassifier", "SegmentationResult", "run_segmentation",
           "SegmentationProtocol", "plot_segmentation", "read_untrimmed"]

# The eval.seg.* keys and their defaults
SEGMENTATION_DEFAULTS: dict[str, Any] = dict(BASE_DEFAULTS["eval"]["seg"])
BACKGROUND_NAME = "no_action"
METRICS = ("acc", "macc", "fwiou", "miou")


# ------------------------------------------------------------------------------------------------- metrics

def confusion_matrix(truth: np.ndarray | Tensor, predicted: np.ndarray | Tensor, num_classes: int) -> np.ndarray:
    """(classes, classes) int64 counts n_ij of frames of class i predicted as j; frames with truth < 0 are
    padding and left out."""
    truth = np.asarray(truth).reshape(-1).astype(np.int64)
    predicted = np.asarray(predicted).reshape(-1).astype(np.int64)
    if truth.shape != predicted.shape:
        raise ValueError(f"truth has {truth.size} frames, predictions {predicted.size}")
    keep = truth >= 0
    truth, predicted = truth[keep], predicted[keep]
    if truth.size and (truth.max() >= num_classes or predicted.min() < 0 or predicted.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    return np.bincount(truth * num_classes + predicted, minlength=num_classes ** 2).reshape(num_classes,
                                                                                           num_classes)


def segmentation_scores(confusion: np.ndarray) -> dict[str, float]:
    """ACC, MACC, FWIoU, mIoU as fractions from a confusion matrix (module docstring)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    hits = np.diag(confusion)
    frames = confusion.sum(axis=1)  # t_i
    total = frames.sum()
    if total == 0:
        raise ValueError("no labelled frames to score")
    union = frames + confusion.sum(axis=0) - hits
    present = frames > 0
    iou = np.divide(hits, union, out=np.zeros_like(hits), where=union > 0)
    scored = union > 0  # present in the truth or predicted
    return {
        "acc": float(hits.sum() / total),
        "macc": float(np.mean(hits[present] / frames[present])),
        "fwiou": float((frames * iou).sum() / total),
        "miou": float(iou[scored].mean()),
    }


# ------------------------------------------------------------------------------------------ frame features

def temporal_stride(encoder: nn.Module, probe_frames: int = 4096) -> int:
    """The total temporal stride of a dense encoder (input frames per feature frame)."""
    if not getattr(encoder, "dense", False):
        raise UserError(f"segmentation needs an encoder with dense (T', V) feature maps; "
                        f"'{type(encoder).__name__}' gives only a pooled feature (use model.encoder=stgcn)")
    return max(1, int(round(probe_frames / encoder.feature_frames(probe_frames))))


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


@torch.no_grad()
def frame_features(encoder: nn.Module, sequence: Tensor, *, chunk_frames: int = 1024, context_frames: int = 128,
                   frame_step: int = 1) -> Tensor:
    """Per-frame features (T, C) of one sequence (1, C, T, V, M) already in the encoder's input stream.

    The encoder must be in the mode the caller wants (eval for frozen features). Chunks and context are
    rounded up to whole feature frames so that every chunk's feature frames line up with the whole sequence's.
    """
    if sequence.dim() != 5 or sequence.shape[0] != 1:
        raise ValueError(f"frame_features expects one sequence (1, C, T, V, M), got {tuple(sequence.shape)}")
    num_frames = sequence.shape[2]
    x = sequence[:, :, ::frame_step] if frame_step > 1 else sequence
    stride = temporal_stride(encoder)
    chunk = _round_up(max(chunk_frames, 1), stride)
    context = _round_up(max(context_frames, 0), stride)
    length = x.shape[2]
    pieces = []
    for start in range(0, length, chunk):
        end = min(start + chunk, length)
        lo, hi = max(0, start - context), min(length, end + context)
        dense = encoder.features(x[:, :, lo:hi])  # (1, M, C, T'_w, V)
        per_frame = dense.float().mean(dim=4).mean(dim=1)[0]  # (C, T'_w): joints, then persons (as pool)
        first = (start - lo) // stride
        count = -(-(end - start) // stride)
        pieces.append(per_frame[:, first:first + count])
    feats = torch.cat(pieces, dim=1)  # (C, T')
    centre = torch.arange(num_frames, device=feats.device) / frame_step  # frame t in encoded-frame units
    index = torch.div(centre + stride / 2, stride, rounding_mode="floor").long().clamp_(0, feats.shape[1] - 1)
    return feats[:, index].t().contiguous()


def read_untrimmed(root: str | Path, split: str) -> dict[str, Any]:
    """The untrimmed dataset at `root`: meta, data, frame labels and the rows of each part of `split`."""
    meta = load_meta(root)
    if "frame_labels" not in meta.extra_arrays:
        raise UserError(f"dataset '{root}' ({meta.dataset}) has no per-frame labels (frame_labels.npy): "
                        "segmentation needs untrimmed sequences; prepare them with `skelssl prepare synthetic "
                        "--untrimmed --out DIR` or `skelssl prepare pkummd ...` (its OUT/untrimmed) and pass "
                        "data.root=DIR")
    if split not in meta.splits:
        raise UserError(f"dataset '{root}' has no split '{split}'; it has: {', '.join(sorted(meta.splits))} "
                        "(set data.split)")
    parts = meta.splits[split]
    for part in ("train", "test"):
        if len(parts.get(part, ())) == 0:
            raise UserError(f"split '{split}' of '{root}' has no {part} sequences; segmentation trains on the "
                            "train part and scores the test part")
    return {"meta": meta, "data": open_data(root), "frame_labels": open_data(root, "frame_labels"),
            "train": np.asarray(parts["train"]), "test": np.asarray(parts["test"])}


def _encode_rows(backbone: Backbone, dataset: dict[str, Any], rows: np.ndarray, device: torch.device,
                 settings: dict[str, Any], progress: bool) -> list[Tensor]:
    """Per-frame features (T_i, C) of each sequence `rows` (valid frames only), on the CPU."""
    encoder = backbone.encoder.to(device)
    was_training = encoder.training
    encoder.eval()
    out = []
    bar = Progress(len(rows), "frame features", "sequences", enabled=progress)
    try:
        for row in rows:
            length = int(dataset["meta"].lengths[row])
            x = torch.from_numpy(np.array(dataset["data"][row, :, :length], dtype=np.float32)).to(device)
            x = to_stream(x[None], backbone.stream, backbone.layout)
            out.append(frame_features(encoder, x, chunk_frames=int(settings.chunk_frames),
                                      context_frames=int(settings.context_frames),
                                      frame_step=int(settings.frame_step)).cpu())
            bar.update()
    finally:
        encoder.train(was_training)
        bar.close()
    return out


# ------------------------------------------------------------------------------------------- the classifier

class FrameClassifier:
    """Standardiser + Linear(C, classes) trained with SGD on frame features (the linear probe's head)."""

    def __init__(self, config: LinearProbeConfig, num_classes: int) -> None:
        self.config, self.num_classes = config, num_classes
        self.head: _LinearHead | None = None

    def fit(self, features: Tensor, labels: Tensor) -> "FrameClassifier":
        cfg = self.config
        generator = torch.Generator(device=features.device).manual_seed(cfg.seed)
        self.head = _LinearHead(features, self.num_classes, cfg, generator)
        for _ in range(cfg.epochs):
            order = torch.randperm(features.shape[0], generator=generator, device=features.device)
            for start in range(0, order.numel(), cfg.batch_size):
                batch = order[start:start + cfg.batch_size]
                self.head.step(features[batch], labels[batch])
            self.head.scheduler.step()
        return self

    @torch.no_grad()
    def predict(self, features: Tensor, batch_size: int = 8192) -> Tensor:
        if self.head is None:
            raise RuntimeError("fit the frame classifier first")
        return torch.cat([self.head.logits(features[s:s + batch_size]).argmax(dim=1)
                          for s in range(0, features.shape[0], batch_size)]) if len(features) else \
            torch.empty(0, dtype=torch.long)


def _settings(cfg: Any) -> SegmentationConfig:
    return SegmentationConfig.from_section(cfg.eval.seg)


def _classifier_config(cfg: Any, settings: SegmentationConfig) -> LinearProbeConfig:
    epochs = int(settings.epochs)
    return LinearProbeConfig(epochs=epochs, lr=float(settings.lr),
                             momentum=float(cfg.eval.linear.momentum), weight_decay=0.0,
                             milestones=(max(1, int(0.8 * epochs)),), batch_size=int(settings.batch_size),
                             standardize=bool(cfg.eval.linear.standardize),
                             seed=int(cfg.trainer.seed))


@dataclass
class SegmentationResult:
    """Scores (fractions), the frame classes and, per test sequence, its true and predicted frame labels."""

    scores: dict[str, float]
    class_names: list[str]
    test_names: list[str] = field(default_factory=list)
    truth: list[np.ndarray] = field(default_factory=list)
    predicted: list[np.ndarray] = field(default_factory=list)
    classifier: FrameClassifier | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def run_segmentation(backbone: Backbone, cfg: Any, device: torch.device, progress: bool = False) -> SegmentationResult:
    """Train the frame classifier on the train sequences of cfg.data (an untrimmed dataset), score the test ones."""
    settings = _settings(cfg)
    dataset = read_untrimmed(cfg.data.root, cfg.data.split)
    meta = dataset["meta"]
    if meta.layout.num_joints != backbone.layout.num_joints:
        raise UserError(f"dataset '{cfg.data.root}' has {meta.layout.num_joints} joints ({meta.layout.name}); "
                        f"the encoder was built for {backbone.layout.num_joints} ({backbone.layout.name})")
    started = time.perf_counter()
    train_feats = _encode_rows(backbone, dataset, dataset["train"], device, settings, progress)
    test_feats = _encode_rows(backbone, dataset, dataset["test"], device, settings, progress)
    encoded = time.perf_counter()

    def labels_of(rows: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(dataset["frame_labels"][row, :int(meta.lengths[row])]).astype(np.int64) for row in rows]

    train_labels, test_labels = labels_of(dataset["train"]), labels_of(dataset["test"])
    x = torch.cat(train_feats)
    y = torch.from_numpy(np.concatenate(train_labels))
    labelled = y >= 0
    x, y = x[labelled], y[labelled]
    limit = int(settings.max_train_frames)
    if x.shape[0] > limit:  # a seeded subset of the training frames
        keep = np.sort(np.random.default_rng(int(cfg.trainer.seed)).choice(x.shape[0], limit, replace=False))
        x, y = x[keep], y[keep]
    num_classes = meta.num_classes + 1  # + "no action"
    classifier = FrameClassifier(_classifier_config(cfg, settings), num_classes).fit(x.to(device), y.to(device))
    predicted = [classifier.predict(f.to(device)).cpu().numpy() for f in test_feats]
    confusion = confusion_matrix(np.concatenate(test_labels), np.concatenate(predicted), num_classes)
    done = time.perf_counter()
    return SegmentationResult(scores=segmentation_scores(confusion),
                              class_names=[BACKGROUND_NAME] + list(meta.class_names),
                              test_names=[meta.sample_names[row] for row in dataset["test"]], truth=test_labels,
                              predicted=predicted, classifier=classifier,
                              seconds={"features": encoded - started, "classifier": done - encoded})


class SegmentationProtocol(Protocol):
    name = "segmentation"
    help = ("frame-wise linear classifier on frozen dense features of untrimmed sequences (data.root=an untrimmed "
            "dataset; eval.seg.*): ACC, MACC, FWIoU, mIoU")

    def run(self, context: EvalContext) -> list[ResultRecord]:
        result = run_segmentation(context.backbone, context.cfg, context.device, progress=context.progress)
        return [context.record("segmentation", metric, result.scores[metric]) for metric in METRICS]


# ------------------------------------------------------------------------------------------------- picture

def plot_segmentation(rows: list[tuple[str, np.ndarray | None, np.ndarray]], class_names: list[str],
                      path: str | Path, title: str = "") -> Path:
    """PNG of frame-label time lines: per sequence (name, truth or None, predicted), a 'truth' bar above a
    'predicted' bar; one colour per class, light grey for no action."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    palette = ["0.88"] + [plt.get_cmap("tab20")(k % 20) for k in range(len(class_names) - 1)]
    cmap = ListedColormap(palette)
    bars = [(f"{name}: {kind}", labels) for name, truth, pred in rows
            for kind, labels in (("truth", truth), ("predicted", pred)) if labels is not None]
    used = sorted({int(k) for _, labels in bars for k in np.unique(labels) if k >= 0})
    legend_rows = -(-len(used) // 6)
    fig, axes = plt.subplots(len(bars) + 1, 1, figsize=(10, 0.55 * len(bars) + 0.3 * legend_rows + 1.2),
                             squeeze=False, gridspec_kw={"height_ratios": [1] * len(bars) + [0.5 * legend_rows]})
    for ax, (label, frames) in zip(axes[:-1, 0], bars):
        shown = np.where(np.asarray(frames) < 0, 0, frames)[None]
        ax.imshow(shown, aspect="auto", cmap=cmap, vmin=-0.5, vmax=len(class_names) - 0.5, interpolation="nearest")
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
    axes[-2, 0].set_xlabel("frame", fontsize=8)
    axes[-1, 0].axis("off")  # the legend's row
    axes[-1, 0].legend(handles=[Patch(color=palette[k], label=class_names[k]) for k in used], loc="center",
                       ncol=min(6, len(used)), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_png(fig, path)
