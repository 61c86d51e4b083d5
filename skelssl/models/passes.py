"""Auxiliary forward passes that leave training untouched.

Methods run their encoders for more than the loss: ActCLR's actionlet pass, ActCLR+'s anchor and attack
passes, A²MC's adversarial attack, an online monitor. Such a pass must not change the run: no dropout (its
mask would differ from pass to pass and draw from torch's global generator), and no BatchNorm running
statistics moved (they are the encoder's own, learnt from the training views).

`side_effect_free(*modules)` is the one way to run such a pass. Inside it:
- every stochastic module is in eval mode: torch's Dropout family, skelssl's FastDropout (whose `training`
  flag also decides the dropout of the fused CPU kernels) and recurrent layers (inter-layer dropout);
- every BatchNorm keeps normalising with the batch's own statistics, as the training forward does, but its
  running mean, variance and batch counter do not change (fused kernels included);
- gradients still flow (an actionlet or an attack needs them); wrap in torch.no_grad() where none are needed.
Everything is restored on exit, also after an exception. A recurrent layer goes to eval mode only where it has
inter-layer dropout: in train mode cuDNN can differentiate it (its eval-mode backward is unsupported).

`frozen_statistics(*modules)` is for extra training inputs (mixed views, masked views) that should train the
encoder but not enter the running statistics the probes later use: BatchNorm normalises with the batch's own
statistics and updates nothing; dropout and everything else stay as they are.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn

from skelssl.models.stgcn import FastDropout

__all__ = ["side_effect_free", "frozen_statistics", "STOCHASTIC_MODULES"]

# Modules whose training mode only means "draw random numbers".
STOCHASTIC_MODULES: tuple[type[nn.Module], ...] = (nn.modules.dropout._DropoutNd, FastDropout, nn.RNNBase)


@contextlib.contextmanager
def side_effect_free(*modules: nn.Module) -> Iterator[None]:
    """Run `modules` without dropout and without moving BatchNorm running statistics (module docstring)."""
    stochastic: list[nn.Module] = []
    batch_norms: list[nn.modules.batchnorm._BatchNorm] = []
    seen: set[int] = set()
    for root in modules:
        for sub in root.modules():
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            if isinstance(sub, STOCHASTIC_MODULES) and sub.training and _draws_random_numbers(sub):
                stochastic.append(sub)
            elif isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.track_running_stats:
                batch_norms.append(sub)
    for sub in stochastic:
        sub.train(False)
    for bn in batch_norms:
        # In train mode with track_running_stats off, BatchNorm (and the fused kernel) normalise with the
        # batch statistics and update nothing.
        bn.track_running_stats = False
    try:
        yield
    finally:
        for sub in stochastic:
            sub.train(True)
        for bn in batch_norms:
            bn.track_running_stats = True


def _draws_random_numbers(module: nn.Module) -> bool:
    """Whether train mode makes `module` random: a recurrent layer only with inter-layer dropout."""
    if isinstance(module, nn.RNNBase):
        return float(module.dropout) > 0 and module.num_layers > 1
    return True


@contextlib.contextmanager
def frozen_statistics(*modules: nn.Module) -> Iterator[None]:
    """Run `modules` as in training, but without moving any BatchNorm running statistic (module docstring)."""
    batch_norms = list({id(sub): sub for root in modules for sub in root.modules()
                        if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.track_running_stats}.values())
    for bn in batch_norms:
        bn.track_running_stats = False
    try:
        yield
    finally:
        for bn in batch_norms:
            bn.track_running_stats = True
