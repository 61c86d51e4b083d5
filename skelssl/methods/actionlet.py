"""Unsupervised actionlet selection (ActCLR §3.1, eqs. 2-5): where does a sequence differ from a static anchor?

One module, `ActionletSelector`, with an `anchor_mode`:
- "average_motion" (ActCLR): the anchor is the average sequence X̄ (eq. 2), over the training set
  (`anchor_source="dataset"`, the paper) or over the current batch (`anchor_source="batch"`, the official
  code). ActCLR+ will add "prototypes" by implementing `_anchor_embedding` for that mode.

Difference activation mapping (eqs. 3-5): with h = f_k(X) the offline encoder's dense features and
z = g_k(GAP(h)), z̄ the anchor's embedding, Δh = ∂(−sim(z, z̄))/∂h, α_c = mean_tv ReLU(Δh_ctv),
A_tv = ReLU(Σ_c α_c h_ctv) G. Choices where the paper is open (documented in docs/fidelity_aimclr_actclr.md):
σ in eqs. 4-5 is ReLU; G is the layout's adjacency with self-loops, column-normalised (each joint takes the
mean of its neighbourhood); A is divided by its per-sample maximum and the actionlet region is
A >= threshold (0.5 by default). Each person of a sample gets its own actionlet.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skelssl.skeleton.layouts import Layout, get_layout

__all__ = ["ActionletSelector", "dataset_average", "upsample_to_frames", "smoothing_matrix"]

DenseFn = Callable[[Tensor], Tensor]  # (N, C, T, V, M) -> (N, M, C', T', V)
HeadFn = Callable[[Tensor], Tensor]   # (N, C') -> (N, D)


def smoothing_matrix(layout: Layout) -> Tensor:
    """G (V, V) of eq. 5: adjacency with self-loops, each column summing to 1."""
    adj = torch.from_numpy(np.asarray(layout.adjacency(self_loops=True), dtype=np.float32))
    return adj / adj.sum(dim=0, keepdim=True)


def dataset_average(data: np.ndarray | Tensor, chunk: int = 1024, rows: np.ndarray | None = None) -> Tensor:
    """X̄ = (1/N) Σ_i X^i (eq. 2) over a (N, C, T, V, M) array or memmap, read in chunks, in float64.

    rows: optional indices of the training samples within `data` (a memmap of the whole dataset).
    """
    rows = np.arange(int(data.shape[0])) if rows is None else np.sort(np.asarray(rows))
    if len(rows) == 0:
        raise ValueError("the average motion needs at least one training sequence")
    total = None
    for start in range(0, len(rows), chunk):
        part = torch.as_tensor(np.asarray(data[rows[start:start + chunk]]), dtype=torch.float64).sum(dim=0)
        total = part if total is None else total + part
    return (total / len(rows)).float()


def upsample_to_frames(actionlet: Tensor, num_frames: int) -> Tensor:
    """(N, M, T', V) -> (N, M, T, V): each input frame takes the value of the feature frame covering it."""
    index = torch.div(torch.arange(num_frames, device=actionlet.device) * actionlet.shape[2], num_frames,
                      rounding_mode="floor")
    return actionlet.index_select(2, index)


class ActionletSelector(nn.Module):
    """Eqs. 2-5 of ActCLR. Call `select(dense_fn, head_fn, x)` -> (scores, mask), both (N, M, T', V).

    layout: gives the smoothing matrix G. threshold: region where the max-normalised A is >= threshold.
    anchor_mode: "average_motion" (ActCLR); others are for extensions. anchor_source: "dataset" (eq. 2 over
    the training set, set with `set_anchor`) or "batch" (mean of the current batch, official code).
    """

    def __init__(self, layout: Layout | str, *, anchor_mode: str = "average_motion",
                 anchor_source: Literal["dataset", "batch"] = "dataset", threshold: float = 0.5,
                 smooth: bool = True) -> None:
        super().__init__()
        if anchor_mode != "average_motion":
            raise ValueError(f"unknown anchor_mode '{anchor_mode}'; available: average_motion")
        if anchor_source not in ("dataset", "batch"):
            raise ValueError(f"anchor_source must be 'dataset' or 'batch', got '{anchor_source}'")
        self.layout = get_layout(layout)
        self.anchor_mode, self.anchor_source = anchor_mode, anchor_source
        self.threshold, self.smooth = float(threshold), bool(smooth)
        self.register_buffer("graph", smoothing_matrix(self.layout))
        self.register_buffer("anchor", torch.zeros(0))  # (C, T, V, M) once set; saved in checkpoints

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        # The anchor's shape is known only once it is set: size the empty buffer to the saved one.
        saved = state_dict.get(prefix + "anchor")
        if saved is not None and saved.shape != self.anchor.shape:
            self.anchor = torch.empty(saved.shape, dtype=saved.dtype, device=self.graph.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def has_anchor(self) -> bool:
        return self.anchor.numel() > 0

    def set_anchor(self, average: Tensor) -> None:
        """Store the static anchor X̄ (C, T, V, M) (eq. 2), e.g. `dataset_average(train_data)`."""
        if average.dim() != 4:
            raise ValueError(f"the anchor must be one sequence (C, T, V, M), got shape {tuple(average.shape)}")
        self.anchor = average.detach().to(self.graph.device, torch.float32).clone()

    def anchor_sequence(self, x: Tensor) -> Tensor:
        """The static anchor (1, C, T, V, M) for the batch x (already in the encoder's input stream)."""
        if self.anchor_source == "batch":
            return x.mean(dim=0, keepdim=True)
        if not self.has_anchor:
            raise RuntimeError("ActionletSelector: no dataset anchor; call set_anchor(dataset_average(...)) "
                               "first or use anchor_source='batch'")
        return self.anchor.unsqueeze(0).to(x.dtype)

    def anchor_embedding(self, head_fn: HeadFn, anchor_dense: Tensor) -> Tensor:
        """z̄ = g_k(GAP(f_k(X̄))) (1, D), detached (eq. 3). ActCLR+'s "prototypes" mode will return one
        anchor embedding per sample here instead."""
        with torch.no_grad():
            return head_fn(global_pool(anchor_dense))

    def activation_map(self, dense: Tensor, head_fn: HeadFn, anchor_embedding: Tensor) -> Tensor:
        """Eqs. 3-5 before thresholding: dense (N, M, C, T', V) -> A (N, M, T', V), not normalised."""
        h = dense.detach().requires_grad_(True)
        with torch.enable_grad():
            z = head_fn(global_pool(h))
            similarity = F.cosine_similarity(z, anchor_embedding.expand_as(z), dim=1)  # eq. 3
            (gradient,) = torch.autograd.grad(-similarity.sum(), h)  # eq. 4, samples are independent
        alpha = F.relu(gradient).mean(dim=(3, 4), keepdim=True)  # eq. 4: α_c per sample and person
        cam = F.relu((alpha * h.detach()).sum(dim=2))  # eq. 5
        if self.smooth:
            cam = cam @ self.graph.to(cam.dtype)  # eq. 5: A_tv G_vv
        return cam

    def select(self, dense_fn: DenseFn, head_fn: HeadFn, x: Tensor) -> tuple[Tensor, Tensor]:
        """(scores in [0, 1], binary mask) of shape (N, M, T', V) for the batch x (N, C, T, V, M).

        The anchor goes through the encoder in the same forward pass as x, so BatchNorm in train mode
        normalises both with the same statistics.
        """
        anchor = self.anchor_sequence(x)
        with torch.no_grad():
            dense_all = dense_fn(torch.cat([x, anchor], dim=0))
            dense, anchor_embedding = dense_all[:-1], self.anchor_embedding(head_fn, dense_all[-1:])
        cam = self.activation_map(dense, head_fn, anchor_embedding)
        peak = cam.amax(dim=(1, 2, 3), keepdim=True)
        scores = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
        return scores, (scores >= self.threshold).to(scores.dtype) * (peak > 0)


def global_pool(dense: Tensor) -> Tensor:
    """GAP over (T', V) and the persons: (N, M, C, T', V) -> (N, C)."""
    return dense.mean(dim=(3, 4)).mean(dim=1)
