"""Figures every command shares: writing a PNG, and a confusion matrix with class names.

A leaf module (matplotlib only, imported when a figure is drawn), so that evaluation, analysis and training
draw the same way without importing each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["save_png", "plot_confusion"]


def save_png(fig: Any, path: str | Path) -> Path:
    """Write the figure to `path` (parents created) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """A confusion matrix (rows: true class, columns: predicted) normalised per row, with the class names on
    both axes, as a PNG at `path`. Rows without samples stay blank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, totals, out=np.full_like(confusion, np.nan), where=totals > 0)
    k = len(class_names)
    size = min(4 + 0.22 * k, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    font = max(4, 10 - k // 12)
    ax.set_xticklabels(class_names, rotation=90, fontsize=font)
    ax.set_yticklabels(class_names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    return save_png(fig, path)
