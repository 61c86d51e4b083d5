"""Plug-ins: a mechanism that works on top of any MoCo-style method (ProSL's semantic codebook is one).

A plug-in is an nn.Module (its state, e.g. a codebook, is saved and resumed with the method) with its own
config keys under `plugins.<name>.*` (validated once, whatever the method), switched on by
`plugins.<name>.enabled=true`. It gets the method's hooks: before fitting, after each optimiser step, at
each epoch end; it may filter the negatives every method asks for (`MoCoMethod.negatives`) and add loss
terms computed from the step's exposed features (`MoCoMethod.expose`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from skelssl.registry import Registry

if TYPE_CHECKING:
    from skelssl.methods.core.base import MoCoMethod

__all__ = ["Plugin", "PLUGINS", "register_plugin"]


class Plugin(nn.Module):
    """Base class: override the hooks you need. `cfg` is the plug-in's own section `plugins.<name>`."""

    name: ClassVar[str] = ""
    DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg

    def setup(self, method: "MoCoMethod") -> None:
        """Called once the method is built (the encoders exist)."""

    def on_fit_start(self, method: "MoCoMethod") -> None:
        """Before the first training step (e.g. a statistic over the training set)."""

    def filter_negatives(self, method: "MoCoMethod", bank_name: str, bank: Tensor, query: Tensor,
                         key: Tensor | None, keep: Tensor | None) -> Tensor | None:
        """Which bank entries (K, D) each query (N, D) may use as negatives: (N, K) bool, or `keep` unchanged
        (None = all). `keep` is what earlier plug-ins decided; combine with it."""
        return keep

    def extra_loss(self, method: "MoCoMethod", batch: dict[str, Tensor]) -> tuple[Tensor | None, dict[str, Any]]:
        """A loss term added to the method's, and values to log; reads `method.exposed` for the step's features."""
        return None, {}

    def query_companion(self, method: "MoCoMethod", batch: dict[str, Tensor], query_input: Tensor) -> Tensor | None:
        """A stream view the method may encode in its query's encoder call (one call instead of two), or None
        (the default: the plug-in runs its own passes, if any)."""
        return None

    def on_train_batch_end(self, method: "MoCoMethod") -> None:
        """After the optimiser step (and after the banks were updated)."""

    def on_train_epoch_end(self, method: "MoCoMethod") -> None:
        """At the end of each training epoch."""

    def learnable_params(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups of the plug-in's own trainable parameters."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"name": f"plugin:{self.name}", "params": params}] if params else []


PLUGINS = Registry("plug-in", "plugins.<name>.enabled")
register_plugin = PLUGINS.register  # its DEFAULTS become plugins.<name>.*
