"""Actionlet pictures (ActCLR+ Figs. 5, 6, 14, 15): per-class heat maps of actionlet joints and frames, the average
motion as a skeleton, and an animated GIF of a sequence with its actionlet lit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skelssl.skeleton.layouts import Layout
from skelssl.figures import save_png

__all__ = ["actionlet_frequencies", "plot_actionlet_heatmaps", "plot_average_motion", "animate_actionlet"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def actionlet_frequencies(masks: np.ndarray, labels: np.ndarray, num_classes: int,
                          frame_bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per class, how often each joint (classes, V) and each frame (classes, bins) lies in the actionlet.

    masks: (N, T, V) in [0, 1]. The joint map averages over frames and samples of the class; the frame map over
    joints and samples, in `frame_bins` bins of consecutive frames (Fig. 15 downsamples time 4-fold: T/4 bins by
    default). A class without samples gets NaN rows.
    """
    masks = np.asarray(masks, dtype=np.float64)
    labels = np.asarray(labels)
    n, t, v = masks.shape
    bins = frame_bins or max(1, t // 4)
    edges = np.linspace(0, t, bins + 1).round().astype(int)
    joints = np.full((num_classes, v), np.nan)
    frames = np.full((num_classes, bins), np.nan)
    for k in range(num_classes):
        chosen = masks[labels == k]
        if len(chosen) == 0:
            continue
        joints[k] = chosen.mean(axis=(0, 1))
        per_frame = chosen.mean(axis=(0, 2))
        frames[k] = [per_frame[a:b].mean() if b > a else np.nan for a, b in zip(edges[:-1], edges[1:])]
    return joints, frames


def plot_actionlet_heatmaps(masks: np.ndarray, labels: np.ndarray, class_names: list[str], layout: Layout,
                            path: str | Path, title: str = "") -> Path:
    """PNG with two heat maps: actionlet frequency per class and joint (Fig. 14), per class and frame (Fig. 15)."""
    plt = _pyplot()
    joints, frames = actionlet_frequencies(masks, labels, len(class_names))
    names = list(layout.joint_names)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 0.32 * len(class_names) + 2.6),
                                      gridspec_kw={"width_ratios": [joints.shape[1], max(frames.shape[1], 8)]})
    for ax, values, xlabel in ((left, joints, "joint"), (right, frames, "frame (4-frame bins)")):
        image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0.0, vmax=max(np.nanmax(values), 1e-6))
        ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
        ax.set_xlabel(xlabel)
        fig.colorbar(image, ax=ax, fraction=0.04, label="share in the actionlet")
    left.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    left.set_title("actionlet joints per class (ActCLR+ Fig. 14)")
    right.set_title("actionlet frames per class (ActCLR+ Fig. 15)")
    if title:
        fig.suptitle(title)
    return save_png(fig, path)


def _draw_skeleton(ax: Any, xy: np.ndarray, layout: Layout, lit: np.ndarray | None, limits: tuple) -> None:
    """One frame (2, V) of person 0: bones grey, joints blue, lit joints (actionlet) large and orange."""
    for a, b in layout.edges:
        ax.plot(xy[0, [a, b]], xy[1, [a, b]], color="0.6", lw=1.5)
    on = np.zeros(xy.shape[1], dtype=bool) if lit is None else lit > 0.5
    ax.scatter(xy[0, ~on], xy[1, ~on], s=12, c="tab:blue", zorder=3)
    ax.scatter(xy[0, on], xy[1, on], s=40, c="orange", edgecolors="tab:red", zorder=4)
    (x0, x1), (y0, y1) = limits
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _limits(xy: np.ndarray) -> tuple:
    """Axis limits (x, y) around every frame of a (2, T, V) sequence, with a margin."""
    lo, hi = xy.reshape(2, -1).min(axis=1), xy.reshape(2, -1).max(axis=1)
    pad = 0.1 * max(float((hi - lo).max()), 1e-3)
    return (lo[0] - pad, hi[0] + pad), (lo[1] - pad, hi[1] + pad)


def plot_average_motion(average: np.ndarray, layout: Layout, path: str | Path, frames: int = 6,
                        title: str = "the average motion (static anchor, ActCLR+ Fig. 5)") -> Path:
    """PNG of the dataset's average sequence X̄ (C, T, V, M), person 0, at `frames` evenly spaced frames."""
    plt = _pyplot()
    xy = np.asarray(average)[:2, :, :, 0]
    picks = np.linspace(0, xy.shape[1] - 1, frames).round().astype(int)
    fig, axes = plt.subplots(1, frames, figsize=(2.2 * frames, 2.8), squeeze=False)
    limits = _limits(xy)
    for ax, t in zip(axes[0], picks):
        _draw_skeleton(ax, xy[:, t], layout, None, limits)
        ax.set_title(f"t={t}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save_png(fig, path)


def animate_actionlet(sequence: np.ndarray, mask: np.ndarray, layout: Layout, path: str | Path, fps: int = 10,
                      title: str = "") -> Path:
    """Animated GIF of person 0 of a sequence (C, T, V, M), front view (x, y), the actionlet (T, V) lit."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    plt = _pyplot()
    xy = np.asarray(sequence)[:2, :, :, 0]
    mask = np.asarray(mask)
    limits = _limits(xy)
    fig, ax = plt.subplots(figsize=(3.2, 3.6))

    def draw(t: int) -> list:
        ax.clear()
        _draw_skeleton(ax, xy[:, t], layout, mask[t], limits)
        ax.set_title(f"{title}\nframe {t}, actionlet joints lit" if title else f"frame {t}", fontsize=8)
        return []

    animation = FuncAnimation(fig, draw, frames=xy.shape[1], blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    animation.save(str(path), writer=PillowWriter(fps=fps), dpi=80)
    plt.close(fig)
    return path
