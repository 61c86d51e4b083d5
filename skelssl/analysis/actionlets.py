"""Actionlet quality against ground truth, and pictures of actionlets and embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from skelssl.methods.actclr.actionlet import upsample_to_frames
from skelssl.figures import save_png
from skelssl.skeleton.layouts import Layout


TRAINING_WAY = ("computed as in training: the offline encoder in train mode inside a side-effect-free pass "
                "(BatchNorm normalises with the statistics of each batch of trainer.batch_size sequences, no "
                "running statistic moves, no dropout), the method's own actionlet map and anchor")


def training_size_batches(n: int, batch_size: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows, kept) batches covering 0..n-1 the way training batches them: a permutation of the rows seeded by
    `seed` (training's loader shuffles; on a class-sorted set, dataset order would put one class in a batch),
    cut into batches of exactly `batch_size` rows; the last one is completed with the permutation's first
    rows, whose outputs are not kept (`kept`: the positions in the batch whose outputs are). One batch of n if
    n is smaller."""
    size = min(int(batch_size), n)
    order = np.random.default_rng(seed).permutation(n)
    batches = []
    for start in range(0, n, size):
        new = order[start:start + size]
        fill = order[:size - len(new)]  # rows seen already, so that the batch has the training size
        batches.append((np.concatenate([new, fill]), np.arange(len(new))))
    return batches


def predict_actionlets(method: Any, data: np.ndarray | Tensor, *, batch_size: int | None = None,
                       device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """(actionlet, scores in [0, 1]) of person 0 of every sequence, upsampled to the input frames, (N, T, V) each.

    The map is computed the way training computes it (TRAINING_WAY): `method.actionlet_maps` with the method
    in train mode (it runs the offline encoder inside models.passes.side_effect_free), in shuffled batches of
    `batch_size` (default: the method's trainer.batch_size; the shuffle seeded by trainer.seed), every batch of
    that size. Eval-mode running statistics are learnt on augmented key views and give another map than the
    one training uses.
    """
    was_training = method.training
    method.train(True).to(device)
    size = int(batch_size or method.cfg.trainer.batch_size)
    n = int(data.shape[0])
    masks: Tensor | None = None
    scores: Tensor | None = None
    try:
        for rows, kept in training_size_batches(n, size, int(method.cfg.trainer.seed)):
            x = torch.as_tensor(np.asarray(data[rows]), dtype=torch.float32, device=device)
            score, mask = method.actionlet_maps(method.to_stream(x))  # (N, M, T', V) each
            mask = upsample_to_frames(mask, x.shape[2])[kept, 0].float().cpu()
            score = upsample_to_frames(score, x.shape[2])[kept, 0].float().cpu()
            if masks is None:
                masks, scores = mask.new_zeros((n, *mask.shape[1:])), score.new_zeros((n, *score.shape[1:]))
            masks[torch.as_tensor(rows[kept])] = mask
            scores[torch.as_tensor(rows[kept])] = score
    finally:
        method.train(was_training)
    return masks, scores


def actionlet_scores(predicted: Tensor | np.ndarray, truth: Tensor | np.ndarray) -> dict[str, float]:
    """Precision, recall and IoU of predicted (N, T, V) actionlet masks against ground-truth masks.

    Precision: the share of predicted (frame, joint) cells inside the true actionlet; recall: the share of true
    cells predicted; both pooled over all sequences. `chance_precision` is the true cells' share of all cells:
    the precision of a mask drawn at random. `joint_precision` / `frame_precision`: the same precision over
    (sequence, joint) / (sequence, frame) pairs, a pair counted in a mask when any of its cells is: where the
    map goes wrong, in space (which joints) or in time (which frames).
    """
    pred = torch.as_tensor(np.asarray(predicted)) > 0.5
    true = torch.as_tensor(np.asarray(truth)) > 0.5
    if pred.shape != true.shape:
        raise ValueError(f"predicted masks {tuple(pred.shape)} and ground truth {tuple(true.shape)} differ")
    hit = (pred & true).sum().item()
    n_pred, n_true = pred.sum().item(), true.sum().item()
    union = (pred | true).sum().item()

    def pooled_precision(dim: int) -> float:  # over the pairs left after collapsing `dim` with any()
        pred_any, true_any = pred.any(dim=dim), true.any(dim=dim)
        return (pred_any & true_any).sum().item() / max(pred_any.sum().item(), 1)

    return {
        "joint_precision": pooled_precision(1),
        "joint_chance": true.any(dim=1).float().mean().item(),  # the true pairs' share: a random mask's precision
        "frame_precision": pooled_precision(2),
        "frame_chance": true.any(dim=2).float().mean().item(),
        "precision": hit / n_pred if n_pred else 0.0,
        "recall": hit / n_true if n_true else 0.0,
        "iou": hit / union if union else 0.0,
        "predicted_fraction": n_pred / pred.numel(),
        "chance_precision": n_true / true.numel(),
    }


def ranking_auc(scores: Tensor | np.ndarray, truth: Tensor | np.ndarray) -> float:
    """Area under the ROC curve of soft actionlet scores (N, T, V) against ground-truth masks: the chance that
    a true actionlet cell scores above a cell outside it (ties count half), whatever the threshold. 0.5 = a map
    that does not rank the action's cells first; precision at any threshold can only pass chance above it."""
    from sklearn.metrics import roc_auc_score

    s = np.asarray(scores, dtype=np.float64).ravel()
    t = np.asarray(truth).astype(bool).ravel()
    if s.shape != t.shape:
        raise ValueError(f"scores {np.asarray(scores).shape} and ground truth {np.asarray(truth).shape} differ")
    if t.all() or not t.any():
        raise ValueError("the ranking AUC needs cells both inside and outside the true actionlets")
    return float(roc_auc_score(t, s))


def plot_actionlet(sequence: np.ndarray, mask: np.ndarray, layout: Layout, path: str | Path,
                   frames: int = 5, title: str = "", truth: np.ndarray | None = None) -> Path:
    """PNG of person 0 at `frames` evenly spaced frames (front view, x-y), actionlet joints in red.

    sequence: (C, T, V, M); mask and truth: (T, V). With `truth`, a second row shows the ground truth.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_total = sequence.shape[1]
    picks = np.linspace(0, t_total - 1, frames).round().astype(int)
    rows = [("actionlet", mask)] + ([("ground truth", truth)] if truth is not None else [])
    fig, axes = plt.subplots(len(rows), frames, figsize=(2.2 * frames, 2.6 * len(rows)), squeeze=False)
    xy = sequence[:2, :, :, 0]
    lo, hi = xy.reshape(2, -1).min(axis=1), xy.reshape(2, -1).max(axis=1)
    pad = 0.1 * (hi - lo).max()
    for r, (label, m) in enumerate(rows):
        for c, t in enumerate(picks):
            ax = axes[r][c]
            for a, b in layout.edges:
                ax.plot(xy[0, t, [a, b]], xy[1, t, [a, b]], color="0.6", lw=1.2)
            on = m[t] > 0.5
            ax.scatter(xy[0, t, ~on], xy[1, t, ~on], s=10, c="tab:blue")
            ax.scatter(xy[0, t, on], xy[1, t, on], s=22, c="tab:red")
            ax.set_xlim(lo[0] - pad, hi[0] + pad)
            ax.set_ylim(lo[1] - pad, hi[1] + pad)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label}, t={t}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_png(fig, path)


def plot_tsne(features: Tensor | np.ndarray, labels: np.ndarray, class_names: list[str], path: str | Path,
              title: str = "", seed: int = 0, max_points: int = 2000) -> Path:
    """PNG of a 2-D t-SNE (scikit-learn) of L2-normalised features, coloured by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    feats = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    if len(feats) > max_points:
        keep = np.random.default_rng(seed).choice(len(feats), max_points, replace=False)
        feats, labels = feats[keep], labels[keep]
    feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    points = TSNE(n_components=2, init="pca", random_state=seed,
                  perplexity=min(30.0, max(5.0, len(feats) / 10))).fit_transform(feats)
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab20")
    for k in np.unique(labels):
        sel = labels == k
        name = class_names[k] if k < len(class_names) else str(k)
        ax.scatter(points[sel, 0], points[sel, 1], s=6, color=cmap(int(k) % 20), label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(np.unique(labels)) <= 20:
        ax.legend(fontsize=7, markerscale=2, loc="best", frameon=False)
    ax.set_title(title or "t-SNE of encoder features")
    return save_png(fig, path)


