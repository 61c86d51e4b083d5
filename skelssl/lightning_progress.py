"""Pretraining progress for output that is not a terminal: one line per epoch instead of a redrawn bar."""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

from skelssl.console import format_duration, interactive, progress_enabled


class LineProgressBar(ProgressBar):
    """`epoch 3/300: 13 steps, loss 6.7123, 0:48 (ETA 3:58:12)` after each epoch, on stdout; the ETA is the mean
    epoch time of this process so far times the epochs left."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._epoch_started: float | None = None
        self._epoch_seconds: list[float] = []

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_started = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._enabled or not trainer.is_global_zero or self._epoch_started is None:
            return
        seconds = time.monotonic() - self._epoch_started
        self._epoch_seconds.append(seconds)
        print(epoch_line(trainer.current_epoch, int(trainer.max_epochs), trainer.global_step,
                         dict(trainer.callback_metrics), seconds, self._epoch_seconds), flush=True)


def epoch_line(epoch: int, max_epochs: int, global_step: int, metrics: dict[str, Any], seconds: float,
               epoch_seconds: list[float]) -> str:
    """The line printed after epoch `epoch` (0-based) of `max_epochs`."""
    left = max(0, max_epochs - epoch - 1)
    eta = sum(epoch_seconds) / len(epoch_seconds) * left if epoch_seconds else 0.0
    line = f"epoch {epoch + 1}/{max_epochs}: step {global_step}"
    loss = metrics.get("train/loss_epoch", metrics.get("train/loss"))
    if loss is not None:
        line += f", loss {float(loss):.4f}"
    line += f", {format_duration(seconds)}"
    if left:
        line += f" (ETA {format_duration(eta)})"
    return line


def progress_callbacks(enabled_in_config: bool) -> list[ProgressBar]:
    """The progress callback that suits stdout: a redrawn bar (with the epoch's ETA) on a terminal, a line per
    epoch elsewhere; none when the config or `--no-progress` turns progress off."""
    if not (enabled_in_config and progress_enabled()):
        return []
    return [TQDMProgressBar(refresh_rate=1) if interactive(sys.stdout) else LineProgressBar()]
