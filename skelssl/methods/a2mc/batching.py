"""A²MC's three query views (f1, f2, f3) through one call of the query network, with the outputs of three calls.

Joining views into one batch changes nothing for a layer that treats samples independently; a BatchNorm, though,
normalises with the batch's statistics and would mix the views'. `per_view_batch_norm` makes every BatchNorm of
the given modules normalise each view (an equal slice of the batch, in order) with its own statistics and move
its running statistics as the separate calls would, one view after the other.

That covers a network whose BatchNorms all run through their module's forward: the recurrent encoders (an
input BatchNorm, then the GRU/LSTM) and the MLP projector. ST-GCN normalises inside every block, in fused
kernels that read the BatchNorm's parameters directly, so it keeps three calls (`joins_views`). Dropout draws
one mask for the joined batch instead of three: the same distribution, not the same numbers.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn

from skelssl.models.recurrent import RecurrentEncoder

__all__ = ["per_view_batch_norm", "joins_views"]


def joins_views(encoder: nn.Module) -> bool:
    """Whether one call of `encoder` on joined views, under `per_view_batch_norm`, gives the separate calls'
    outputs (module docstring)."""
    return isinstance(encoder, RecurrentEncoder)


@contextlib.contextmanager
def per_view_batch_norm(*modules: nn.Module, views: int) -> Iterator[None]:
    """Inside, every BatchNorm of `modules` normalises each of `views` equal slices of its input's batch on its
    own, in order (module docstring). Restored on exit, also after an exception."""
    batch_norms = list({id(sub): sub for root in modules for sub in root.modules()
                        if isinstance(sub, nn.modules.batchnorm._BatchNorm)}.values())

    def sliced(bn: nn.modules.batchnorm._BatchNorm):
        own = type(bn).forward

        def forward(x: Tensor) -> Tensor:
            if x.shape[0] % views:
                raise ValueError(f"per_view_batch_norm: a batch of {x.shape[0]} is not {views} equal views")
            return torch.cat([own(bn, part) for part in x.chunk(views)])
        return forward

    for bn in batch_norms:
        bn.forward = sliced(bn)  # an instance attribute: nn.Module.__call__ finds it before the class's
    try:
        yield
    finally:
        for bn in batch_norms:
            del bn.forward
