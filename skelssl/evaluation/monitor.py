"""The online KNN monitor: while a run trains, 1-NN and weighted KNN accuracy of its frozen features every N epochs.

As solo-learn and the official ActCLR code do, so that a user sees within minutes whether a run learns. Every
`monitor.knn_every_n_epochs` epochs (0 = off) the callback encodes the train and test parts of the run's own
dataset (`data.root`, `data.split`, `data.stream`) with the query backbone and runs the KNN protocol's
classifiers on them (skelssl.evaluation.knn: 1-NN cosine and InstDisc weighted kNN with eval.knn.k and
eval.knn.temperature). It logs `monitor/knn_*` beside `train/loss` and the collapse figures (to every logger:
CSV, TensorBoard, MLflow, W&B), prints one line, and writes RUN/monitor.json and RUN/monitor.png (the curves).

It never changes the training:
- the backbone runs in eval mode under no_grad (extract_features): no BatchNorm statistic moves, no dropout
  mask is drawn, and the previous mode is restored;
- it draws no random number: the samples it encodes are evenly spaced (`monitor.max_train_samples`,
  `monitor.max_test_samples`), not drawn;
- it reads the dataset itself, outside the training DataLoader.
A test trains with the monitor on and off and compares the weights bit for bit.

Choices: backbone features without augmentation (what `skelssl evaluate knn` measures, so the last point of
the curve is that protocol on the same samples); the official ActCLR monitor uses the 128-d projector output of
augmented sequences. The share of time is the monitor's seconds over the epoch's training seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from skelssl.data.dataset import SkeletonDataset
from skelssl.defaults import BASE_DEFAULTS
from skelssl.evaluation.features import extract_features
from skelssl.evaluation.knn import knn_evaluate
from skelssl.figures import save_png
from skelssl.transforms.streams import to_stream

__all__ = ["KnnMonitor", "MONITOR_DEFAULTS", "knn_monitor_from_config", "plot_monitor"]

MONITOR_DEFAULTS: dict[str, Any] = BASE_DEFAULTS["monitor"]


def evenly_spaced(count: int, limit: int | None) -> np.ndarray:
    """`limit` indices spread evenly over range(count) (all of them when limit is None or larger)."""
    if limit is None or limit <= 0 or limit >= count:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))


class KnnMonitor(L.Callback):
    """The online KNN monitor (module docstring). `history` holds one entry per epoch: the loss and collapse
    figures every epoch, the KNN accuracies (fractions) and the monitor's time where it ran."""

    def __init__(self, every_n_epochs: int, data_root: str | Path, split: str, stream: str, *,
                 ks: tuple[int, ...] = (10, 20, 40), temperature: float = 0.1, batch_size: int = 256,
                 max_train_samples: int | None = 5000, max_test_samples: int | None = 2000,
                 out_dir: str | Path | None = None) -> None:
        if every_n_epochs < 1:
            raise ValueError("every_n_epochs must be >= 1 (a disabled monitor is not built)")
        self.every_n_epochs = int(every_n_epochs)
        self.data_root, self.split, self.stream = Path(data_root), split, stream
        self.ks, self.temperature, self.batch_size = tuple(int(k) for k in ks), float(temperature), int(batch_size)
        self.max_train_samples, self.max_test_samples = max_train_samples, max_test_samples
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.history: list[dict[str, float]] = []
        self._parts: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self._epoch_started = 0.0

    # ----- the evaluation data ------------------------------------------------------------------------------
    def _load(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:

        if self._parts is None:
            parts = {}
            for part, limit in (("train", self.max_train_samples), ("test", self.max_test_samples)):
                dataset = SkeletonDataset(self.data_root, self.split, part)
                rows = evenly_spaced(len(dataset), limit)
                parts[part] = (np.asarray(dataset.array()[rows], dtype=np.float32), dataset.labels[rows])
            self._parts = parts
        return self._parts

    @torch.no_grad()
    def measure(self, pl_module: Any) -> dict[str, float]:
        """KNN accuracies (fractions) of the module's backbone now."""

        parts = self._load()
        layout = pl_module.layout

        def transform(x: torch.Tensor) -> torch.Tensor:
            return to_stream(x, self.stream, layout)

        feats = {part: extract_features(pl_module.backbone, data, batch_size=self.batch_size,
                                        device=pl_module.device, transform=transform)
                 for part, (data, _) in parts.items()}
        num_classes = int(max(parts["train"][1].max(), parts["test"][1].max())) + 1
        return knn_evaluate(feats["train"], parts["train"][1], feats["test"], parts["test"][1], num_classes,
                            ks=self.ks, temperature=self.temperature)

    # ----- Lightning hooks ----------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        training_seconds = time.perf_counter() - self._epoch_started
        epoch = trainer.current_epoch
        entry: dict[str, float] = {"epoch": float(epoch + 1), "train_seconds": training_seconds}
        for key, value in trainer.callback_metrics.items():  # the loss and the collapse figures, when logged
            if key in ("train/loss_epoch", "train/loss") or key.startswith("collapse/"):
                entry[key.replace("/", "_")] = float(value)
        if (epoch + 1) % self.every_n_epochs == 0:
            if trainer.is_global_zero:
                started = time.perf_counter()
                accuracies = self.measure(pl_module)
                seconds = time.perf_counter() - started
                entry.update({f"knn_{name}": value for name, value in accuracies.items()})
                entry.update(monitor_seconds=seconds, monitor_share=seconds / max(training_seconds, 1e-9))
                for name, value in accuracies.items():
                    pl_module.log(f"monitor/knn_{name}", value, rank_zero_only=True)
                pl_module.log("monitor/seconds", seconds, rank_zero_only=True)
                pl_module.log("monitor/share_of_epoch", entry["monitor_share"], rank_zero_only=True)
                shown = ", ".join(f"{name} {100 * value:.1f} %" for name, value in accuracies.items())
                print(f"[monitor] epoch {epoch + 1}: KNN {shown}; {seconds:.1f} s "  # rank 0 only (above)
                      f"({100 * entry['monitor_share']:.0f} % of the epoch's {training_seconds:.1f} s)", flush=True)
        self.history.append(entry)
        if self.out_dir is not None and trainer.is_global_zero and any("knn_1nn_cosine" in e for e in self.history):
            self.write(self.out_dir)

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        """RUN/monitor.json (the history) and RUN/monitor.png (the curves)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path = out_dir / "monitor.json"
        tmp = json_path.with_name(json_path.name + ".tmp")
        tmp.write_text(json.dumps(self.history, indent=1))
        tmp.replace(json_path)
        return json_path, plot_monitor(self.history, out_dir / "monitor.png")

    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(entry) for entry in self.history]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [dict(entry) for entry in state_dict.get("history", [])]


def knn_monitor_from_config(cfg: Any, run_dir: str | Path) -> KnnMonitor | None:
    """The run's monitor from `monitor.*` (None when monitor.knn_every_n_epochs is 0)."""
    settings = {**MONITOR_DEFAULTS, **dict(cfg.get("monitor") or {})}
    every = int(settings["knn_every_n_epochs"])
    if every <= 0:
        return None
    return KnnMonitor(every, cfg.data.root, cfg.data.split, cfg.data.stream, ks=tuple(cfg.eval.knn.k),
                      temperature=float(cfg.eval.knn.temperature), batch_size=int(cfg.eval.batch_size),
                      max_train_samples=int(settings["max_train_samples"]),
                      max_test_samples=int(settings["max_test_samples"]), out_dir=run_dir)


def plot_monitor(history: list[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """PNG: KNN accuracies over epochs (left); training loss and the collapse figures (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    knn_keys = sorted({k for e in history for k in e if k.startswith("knn_")}, key=lambda k: (k != "knn_1nn_cosine", k))
    for key in knn_keys:
        points = [(e["epoch"], 100 * e[key]) for e in history if key in e]
        left.plot(*zip(*points), marker="o", label=key[4:].replace("_", " "))
    left.set_xlabel("epoch")
    left.set_ylabel("test accuracy (%)")
    left.set_title("online KNN monitor")
    left.grid(alpha=0.3)
    if knn_keys:
        left.legend(fontsize=8)
    loss_key = "train_loss_epoch" if any("train_loss_epoch" in e for e in history) else "train_loss"
    points = [(e["epoch"], e[loss_key]) for e in history if loss_key in e]
    if points:
        right.plot(*zip(*points), color="black", label="training loss")
    right.set_xlabel("epoch")
    right.set_ylabel("loss")
    right.grid(alpha=0.3)
    twin = right.twinx()
    for key, colour in (("collapse_backbone_mean_cosine", "tab:red"), ("collapse_projector_mean_cosine", "tab:orange")):
        points = [(e["epoch"], e[key]) for e in history if key in e]
        if points:
            twin.plot(*zip(*points), color=colour, ls="--", label=key[9:].replace("_", " "))
    twin.set_ylabel("mean pairwise cosine (collapse at 0.99)")
    twin.set_ylim(-0.05, 1.05)
    lines = right.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    labels = right.get_legend_handles_labels()[1] + twin.get_legend_handles_labels()[1]
    if lines:
        right.legend(lines, labels, fontsize=8, loc="upper right")
    right.set_title("loss and collapse figures")
    if title:
        fig.suptitle(title)
    return save_png(fig, path)
