"""Unsupervised actionlet selection: where does a sequence differ from a static anchor? (ActCLR §3.1)

One selector, `ActionletSelector`, maps the gradient of an anchor objective onto the offline encoder's dense
features h (N, M, C, T', V) (gradient activation mapping, ActCLR eqs. 4-5), by one of two maps
(`method.actionlet_map`, docs/fidelity_aimclr_actclr.md):
- "eq37" (ActCLR+ eqs. 37-38, our reading of ActCLR eqs. 4-5): Δh = ∂L/∂h, α_c = mean_tv [Δh_ctv]₊,
  A_tv = [Σ_c α_c h_ctv]₊ G, divided by its per-sample maximum, actionlet = A >= threshold (0.5). With
  post-ReLU features (h >= 0) and α >= 0 the outer [·]₊ never acts.
- "official" (LanglandsLin/ActCLR, net/st_gcn.py `_generate_mask`, written here from its arithmetic):
  the gradient of the batch mean of L (their 1 − mean sim), signed channel means ḡ_c = mean_tv Δh_ctv,
  A_tv = ReLU(mean_c ḡ_c h_ctv) (the ReLU after the channel mean), averaged over the joints of each body
  part per frame, divided by 1e-8 and clipped to [0, 1]: in practice 1 on every (frame, part) whose mean is
  positive, 0 elsewhere; no G, no threshold. Its scores (for `actionlet_soft`, SAM³ and ranking) are the
  part means before the 1e-8 scale, divided by their per-sample maximum.
The objective L over the pooled feature comes from an anchor strategy:
- ActCLR (eqs. 2-3): the static anchor is the average motion X̄ (`AverageMotionAnchor`), over the training
  set (the paper) or over the current batch (the official code); L = −sim(z, z̄) with z = g_k(GAP(h)) and z̄
  the anchor's embedding.
- ActCLR+ (eqs. 33-38) supplies a triplet objective instead (prototypes.py: the nearest action prototype is
  the positive anchor, the average motion's embedding the negative, margin γ); the selector stays the same.
Choices where the paper is open (documented in docs/fidelity_aimclr_actclr.md): σ in eqs. 4-5 is ReLU; G is
the layout's adjacency with self-loops, column-normalised (each joint takes the mean of its neighbourhood).
Each person of a sample gets its own actionlet.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skelssl.models.pooling import pool
from skelssl.skeleton.layouts import Layout, get_layout

__all__ = ["ActionletSelector", "AverageMotionAnchor", "Objective", "ACTIONLET_MAPS", "anchor_similarity_objective",
           "dataset_average", "upsample_to_frames", "smoothing_matrix", "part_mean_matrix", "eq37_map",
           "official_map", "size_buffers_to_saved"]

ACTIONLET_MAPS = ("eq37", "official")
OFFICIAL_SCALE = 1e-8  # the official code divides the ReLU'd map by 1e-8 before clipping to [0, 1]

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


def part_mean_matrix(layout: Layout) -> Tensor:
    """P (V, V) with A @ P = each joint's value replaced by the mean over its body part (layout.parts)."""
    v = len(layout.joint_names)
    matrix = torch.zeros(v, v)
    for joints in layout.parts.values():
        index = torch.tensor(joints)
        matrix[index.unsqueeze(1), index.unsqueeze(0)] = 1.0 / len(joints)
    return matrix


def eq37_map(dense: Tensor, gradient: Tensor, graph: Tensor | None) -> Tensor:
    """ActCLR+ eqs. 37-38 (ActCLR eqs. 4-5): A = [Σ_c α_c h]₊ G with α_c = mean_tv [Δh]₊; (N, M, T', V)."""
    alpha = torch.relu(gradient).mean(dim=(3, 4), keepdim=True)  # eq. 37: [·]₊ on the gradient, then the mean
    cam = torch.relu((alpha * dense).sum(dim=2))  # eq. 38 (eq. 5)
    return cam if graph is None else cam @ graph.to(cam.dtype)  # eq. 38: A_tv G_vv


def official_map(dense: Tensor, gradient: Tensor, parts: Tensor) -> tuple[Tensor, Tensor]:
    """The authors' `_generate_mask` as arithmetic: (part means of ReLU(mean_c ḡ_c h), clipped mask), (N, M, T', V).

    gradient: of the batch MEAN of the objective (the scale matters for the 1e-8 clip); ḡ_c keeps its sign;
    parts: part_mean_matrix(layout)."""
    signed = gradient.mean(dim=(3, 4), keepdim=True)  # signed channel weights, no [·]₊
    cam = torch.relu((signed * dense).mean(dim=2))  # ReLU after the channel mean
    part_means = cam @ parts.to(cam.dtype)  # each (frame, body part) takes its joints' mean
    return part_means, (part_means / OFFICIAL_SCALE).clamp(0, 1)


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
    (scores in [0, 1], actionlet), both (N, M, T', V).

    layout: gives G (`smooth`) and the body parts of the official map. threshold: eq37's region is where the
    max-normalised A is >= threshold. map: "eq37" | "official" (module docstring). The caller runs the
    encoder (inside models.passes.side_effect_free) and builds the objective.
    """

    def __init__(self, layout: Layout | str, *, threshold: float = 0.5, smooth: bool = True,
                 map: str = "eq37") -> None:
        super().__init__()
        if map not in ACTIONLET_MAPS:
            raise ValueError(f"the actionlet map must be one of {ACTIONLET_MAPS}, got '{map}'")
        self.layout = get_layout(layout)
        self.threshold, self.smooth, self.map = float(threshold), bool(smooth), map
        self.register_buffer("graph", smoothing_matrix(self.layout))
        self.register_buffer("parts", part_mean_matrix(self.layout), persistent=False)

    def gradient(self, dense: Tensor, objective: Objective) -> Tensor:
        """Δh = ∂L/∂h (eq. 4) of the objective summed over samples (eq37; samples are independent) or, for the
        official map, of its batch mean (their 1 − mean sim, whose 1/N scale the 1e-8 clip sees)."""
        h = dense.detach().requires_grad_(True)
        with torch.enable_grad():
            value = objective(pool(h))
            value = value.mean() if self.map == "official" else value.sum()
            (gradient,) = torch.autograd.grad(value, h)
        return gradient

    def _map(self, dense: Tensor, objective: Objective) -> tuple[Tensor, Tensor | None]:
        """(the map before thresholding, the official clipped actionlet or None for eq37)."""
        gradient = self.gradient(dense, objective)
        if self.map == "official":
            return official_map(dense.detach(), gradient, self.parts)
        return eq37_map(dense.detach(), gradient, self.graph if self.smooth else None), None

    def activation_map(self, dense: Tensor, objective: Objective) -> Tensor:
        """The map before thresholding, (N, M, T', V), not normalised: eq37's A, or the official part means."""
        return self._map(dense, objective)[0]

    def select(self, dense: Tensor, objective: Objective) -> tuple[Tensor, Tensor]:
        """(scores in [0, 1], actionlet) of shape (N, M, T', V): eq37's actionlet is binary (scores >=
        threshold); the official one is the authors' clipped map (0 or 1 but where a part mean is below 1e-8)."""
        cam, actionlet = self._map(dense, objective)
        peak = cam.amax(dim=(1, 2, 3), keepdim=True)
        scores = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
        if actionlet is None:
            actionlet = (scores >= self.threshold).to(scores.dtype) * (peak > 0)
        return scores, actionlet
