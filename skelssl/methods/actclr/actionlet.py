"""Unsupervised actionlet selection: where does a sequence differ from a static anchor? (ActCLR §3.1)

One selector, `ActionletSelector`, maps the gradient of an anchor objective onto the offline encoder's dense
features (gradient activation mapping, ActCLR eqs. 4-5):
    Δh = ∂L/∂h,  α_c = mean_tv ReLU(Δh_ctv),  A_tv = ReLU(Σ_c α_c h_ctv) G,
for an objective L over the pooled feature that an anchor strategy supplies:
- ActCLR (eqs. 2-3): the static anchor is the average motion X̄ (`AverageMotionAnchor`), over the training
  set (the paper) or over the current batch (the official code); L = −sim(z, z̄) with z = g_k(GAP(h)) and z̄
  the anchor's embedding.
- ActCLR+ (eqs. 33-38) supplies a triplet objective instead (prototypes.py: the nearest action prototype is
  the positive anchor, the average motion's embedding the negative, margin γ); the selector stays the same.
Choices where the paper is open (documented in docs/fidelity_aimclr_actclr.md): σ in eqs. 4-5 is ReLU; G is
the layout's adjacency with self-loops, column-normalised (each joint takes the mean of its neighbourhood);
A is divided by its per-sample maximum and the actionlet region is A >= threshold (0.5 by default). Each
person of a sample gets its own actionlet.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skelssl.models.pooling import pool
from skelssl.skeleton.layouts import Layout, get_layout

__all__ = ["ActionletSelector", "AverageMotionAnchor", "Objective", "anchor_similarity_objective",
           "dataset_average", "upsample_to_frames", "smoothing_matrix", "size_buffers_to_saved"]

Objective = Callable[[Tensor], Tensor]  # pooled features (N, C) -> the per-sample objective (N,)


def size_buffers_to_saved(module: nn.Module, state_dict: dict, prefix: str, names: tuple[str, ...]) -> None:
    """Before loading: give each buffer in `names` the saved one's shape (buffers whose size is known only
    once set, such as an anchor or prototypes, start empty)."""
    for name in names:
        saved, own = state_dict.get(prefix + name), getattr(module, name)
        if saved is not None and saved.shape != own.shape:
            setattr(module, name, torch.empty(saved.shape, dtype=saved.dtype, device=own.device))


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


def anchor_similarity_objective(head: Callable[[Tensor], Tensor], anchor_embedding: Tensor) -> Objective:
    """ActCLR eq. 3: L(h) = −sim(g_k(GAP(h)), z̄), the cosine similarity to the anchor's embedding z̄ (1, D)."""
    def objective(pooled: Tensor) -> Tensor:
        z = head(pooled)
        return -F.cosine_similarity(z, anchor_embedding.expand(z.shape[0], -1), dim=1)
    return objective


class AverageMotionAnchor(nn.Module):
    """The static anchor of ActCLR: the average sequence X̄ (eq. 2), in the encoder's input stream.

    source="dataset": X̄ over the training set, stored with `set` (and saved in checkpoints); "batch": the mean
    of the current batch (the official code).
    """

    def __init__(self, source: Literal["dataset", "batch"] = "dataset") -> None:
        super().__init__()
        if source not in ("dataset", "batch"):
            raise ValueError(f"the anchor source must be 'dataset' or 'batch', got '{source}'")
        self.source = source
        self.register_buffer("sequence", torch.zeros(0))  # (C, T, V, M) once set

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        size_buffers_to_saved(self, state_dict, prefix, ("sequence",))  # the anchor's shape is known once set
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def is_set(self) -> bool:
        return self.sequence.numel() > 0

    def set(self, average: Tensor) -> None:
        """Store X̄ (C, T, V, M), e.g. `dataset_average(train_data)` in the input stream."""
        if average.dim() != 4:
            raise ValueError(f"the anchor must be one sequence (C, T, V, M), got shape {tuple(average.shape)}")
        self.sequence = average.detach().to(self.sequence.device, torch.float32).clone()

    def sequence_for(self, x: Tensor) -> Tensor:
        """The anchor (1, C, T, V, M) for the batch x (already in the encoder's input stream)."""
        if self.source == "batch":
            return x.mean(dim=0, keepdim=True)
        if not self.is_set:
            raise RuntimeError("no dataset anchor: call set(dataset_average(...)) first, or use the batch anchor")
        return self.sequence.unsqueeze(0).to(x.dtype)


class ActionletSelector(nn.Module):
    """Gradient activation mapping (eqs. 4-5) for any anchor objective: `select(dense, objective)` ->
    (scores in [0, 1], binary mask), both (N, M, T', V).

    layout: gives the smoothing matrix G (`smooth`). threshold: the region where the max-normalised A is
    >= threshold. The caller runs the encoder (inside models.passes.side_effect_free) and builds the objective.
    """

    def __init__(self, layout: Layout | str, *, threshold: float = 0.5, smooth: bool = True) -> None:
        super().__init__()
        self.layout = get_layout(layout)
        self.threshold, self.smooth = float(threshold), bool(smooth)
        self.register_buffer("graph", smoothing_matrix(self.layout))

    def activation_map(self, dense: Tensor, objective: Objective) -> Tensor:
        """Eqs. 4-5 before thresholding: dense (N, M, C, T', V) -> A (N, M, T', V), not normalised."""
        h = dense.detach().requires_grad_(True)
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(objective(pool(h)).sum(), h)  # eq. 4, samples are independent
        alpha = torch.relu(gradient).mean(dim=(3, 4), keepdim=True)  # eq. 4: α_c per sample and person
        cam = torch.relu((alpha * h.detach()).sum(dim=2))  # eq. 5
        if self.smooth:
            cam = cam @ self.graph.to(cam.dtype)  # eq. 5: A_tv G_vv
        return cam

    def select(self, dense: Tensor, objective: Objective) -> tuple[Tensor, Tensor]:
        """(scores in [0, 1], binary mask) of shape (N, M, T', V)."""
        cam = self.activation_map(dense, objective)
        peak = cam.amax(dim=(1, 2, 3), keepdim=True)
        scores = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
        return scores, (scores >= self.threshold).to(scores.dtype) * (peak > 0)
