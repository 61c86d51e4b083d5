"""A²MC's targeted semantic attack (Att-Aug, §III-B, eqs. 5-6) and the classifier head it attacks through.

The query encoder and a fully connected head give the class feature f_a = softmax(head(encoder(x))) of C
classes; the attack loss is the mean squared distance of f_a to the uniform distribution (eq. 5), which the
attack lowers by one step on the input: rho = eps * Phi(dL/dx), Phi the update of the Adam optimiser, x̂ = x + rho
with ||rho||_2 < eta (eq. 6).

The step, re-derived from eq. 6 and §IV-B (one step, ε 0.1, η 0.5; Fig. 5 shows that both ε and η change the
result):
- Phi is the first update of a fresh Adam: with bias correction m̂ = g, v̂ = g², so g / (|g| + δ), δ = 1e-8 --
  a step of (almost) ε on every coordinate, against the sign of its gradient. Adam's update does not depend on
  the gradient's scale, except through δ; eq. 5's gradients are tiny (at init ~91 % of them are below δ, so those
  coordinates would barely move, by an artefact of the loss's scale). The gradient is therefore divided by its
  largest magnitude per sequence first: the update is then Adam's for any gradient whose coordinates are not far
  below the largest, and δ keeps its role of a guard against 0 / 0.
- The l2 bound applies to each joint's displacement in each frame (per person): ||rho_{t,v,m}||_2 <= eta. With a
  sign-like step a joint moves by ε√3 ≈ 0.17 < η = 0.5, so ε sets the size of the perturbation (η binds only
  for ε > η/√3 ≈ 0.29, or for η < 0.17 at ε 0.1). The literal per-sequence ball (`attack_bound_unit=sequence`,
  the earlier behaviour) always binds: ε√(#coordinates) ≈ 10-20 ≫ 0.5 on 64-300 frames x 150 coordinates, so
  ε cancels.
- The gradient is taken on the sequence as the attack sees it -- its valid frames resampled to the encoder's 64
  frames (`whole_sequence`) -- and the perturbation found there is carried to every raw frame by linear
  interpolation (each raw frame takes the perturbation at its position on the 64-frame grid, the inverse
  resampling). Back-propagating through the resampling instead would leave every raw frame that no output frame
  reads at zero: for sequences over 128 valid frames, many of them.
- rho is zero where a person is absent from a frame (zero padding stays padding) and past the valid length.

The head (open in the paper) is trained (its own learning rate, a second parameter group) to make confident and
balanced class predictions from the detached query feature -- information maximisation (Krause et al. 2010,
IMSAT): minimise the mean per-sample entropy, maximise the entropy of the batch's mean prediction. The attack
then pushes a sequence towards the boundary between the classes the head has found. `head_training=frozen` keeps
the head at its random init (the official code's head never trains). docs/fidelity_a2mc_prosl_hico.md.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skelssl.transforms.isc import whole_sequence

__all__ = ["uniform_attack_loss", "adam_first_step", "scale_free", "project_l2", "project_l2_per_joint",
           "present_mask", "to_raw_frames", "attack_perturbation", "information_maximization",
           "rnn_backward_allowed", "BOUND_UNITS"]

ADAM_EPS = 1e-8  # torch.optim.Adam's default
BOUND_UNITS = ("joint", "sequence")


def uniform_attack_loss(logits: Tensor) -> Tensor:
    """eq. 5: MSE(f_a − 1/C) with f_a = softmax(logits) (N, C): the mean over classes, summed over samples (so a
    sample's gradient does not depend on the batch size)."""
    probs = F.softmax(logits.float(), dim=1)
    return (probs - 1.0 / probs.shape[1]).pow(2).mean(dim=1).sum()


def adam_first_step(grad: Tensor, lr: float, eps: float = ADAM_EPS) -> Tensor:
    """The update a freshly created torch.optim.Adam(lr) applies to a parameter with gradient `grad` (to be
    subtracted): with bias correction m̂ = g, v̂ = g², so lr · g / (|g| + eps)."""
    return lr * grad / (grad.abs() + eps)


def scale_free(grad: Tensor) -> Tensor:
    """grad (N, ...) divided by its largest magnitude per sample (a zero gradient stays zero): Adam's update of
    the result no longer depends on the loss's scale through Adam's eps (module docstring)."""
    peak = grad.flatten(1).abs().amax(dim=1).clamp_min(torch.finfo(grad.dtype).tiny)
    return grad / peak.view(-1, *([1] * (grad.dim() - 1)))


def project_l2(rho: Tensor, radius: float) -> Tensor:
    """rho (N, ...) scaled per sample into the l2 ball of `radius` (unchanged when already inside)."""
    norms = rho.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = (radius / norms).clamp(max=1.0)
    return rho * scale.view(-1, *([1] * (rho.dim() - 1)))


def project_l2_per_joint(rho: Tensor, radius: float) -> Tensor:
    """rho (N, C, T, V, M): each joint's displacement rho[n, :, t, v, m] scaled into the l2 ball of `radius`."""
    norms = rho.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return rho * (radius / norms).clamp(max=1.0)


def present_mask(x: Tensor) -> Tensor:
    """(N, 1, T, 1, M): 1 where a person holds a skeleton in a frame (any coordinate non-zero), else 0."""
    return (x.abs().amax(dim=(1, 3), keepdim=True) > 0).to(x.dtype)


def to_raw_frames(grid: Tensor, lengths: Tensor | None, frames: int) -> Tensor:
    """grid (N, C, G, V, M), a signal on the G frames a sequence was resampled to, at each sample's first
    `lengths` raw frames (None = all `frames`) by linear interpolation (F.interpolate's linear rule with
    align_corners=False, from G to the valid length); zero past the valid length. (N, C, frames, V, M)."""
    n, g = grid.shape[0], grid.shape[2]
    if lengths is None:
        valid = torch.full((n,), frames, device=grid.device, dtype=torch.long)
    else:
        valid = torch.as_tensor(lengths, device=grid.device).long().clamp(1, frames)
    t = torch.arange(frames, device=grid.device, dtype=torch.float64)[None]
    position = ((t + 0.5) * (g / valid.double()[:, None]) - 0.5).clamp(min=0.0)  # (N, frames) on the grid
    left = position.floor().long().clamp(max=g - 1)
    right = (left + 1).clamp(max=g - 1)
    fraction = (position - left.double()).clamp(0.0, 1.0).to(grid.dtype).view(n, 1, frames, 1, 1)

    def take(index: Tensor) -> Tensor:
        shape = (n, grid.shape[1], frames, grid.shape[3], grid.shape[4])
        return grid.gather(2, index.view(n, 1, frames, 1, 1).expand(shape))

    inside = (t < valid[:, None]).to(grid.dtype).view(n, 1, frames, 1, 1)
    return torch.lerp(take(left), take(right), fraction) * inside


def attack_perturbation(loss_of_view: Callable[[Tensor], Tensor], x: Tensor, lengths: Tensor | None, *,
                        grid_frames: int, eps: float, eta: float,
                        bound_unit: Literal["joint", "sequence"] = "joint") -> tuple[Tensor, Tensor]:
    """(rho (N, C, T, V, M) on x's raw frames, the attack loss) of eq. 6 (module docstring): the gradient of
    `loss_of_view` (the attack loss of the whole valid sequence resampled to `grid_frames`) on that view, one
    fresh Adam step of learning rate eps on it (scale-free), carried to the raw frames, zero where a person is
    absent, then bounded by eta per joint (or per sequence)."""
    if bound_unit not in BOUND_UNITS:
        raise ValueError(f"attack bound unit must be one of {', '.join(BOUND_UNITS)}, got '{bound_unit}'")
    with torch.enable_grad():
        view = whole_sequence(x.detach(), lengths, grid_frames).requires_grad_(True)
        loss = loss_of_view(view)  # eq. 5
        (grad,) = torch.autograd.grad(loss, view)
    step = -adam_first_step(scale_free(grad), eps)  # eq. 6: rho = ε Φ(∂L/∂x), descending L_at
    rho = to_raw_frames(step, lengths, x.shape[2]) * present_mask(x)
    rho = project_l2_per_joint(rho, eta) if bound_unit == "joint" else project_l2(rho, eta)  # ||rho||_2 < η
    return rho.detach(), loss.detach()


def information_maximization(logits: Tensor) -> Tensor:
    """mean_n H(p_n) − H(mean_n p_n) of p = softmax(logits): low when each prediction is confident and the
    classes are used evenly (the head's training loss; module docstring)."""
    log_p = F.log_softmax(logits.float(), dim=1)
    p = log_p.exp()
    per_sample = -(p * log_p).sum(dim=1).mean()
    marginal = p.mean(dim=0)
    return per_sample + (marginal * marginal.clamp_min(1e-12).log()).sum()


def rnn_backward_allowed(device: torch.device, *modules: nn.Module) -> contextlib.AbstractContextManager:
    """cuDNN differentiates a recurrent layer only in train mode. `side_effect_free` leaves a recurrent layer in
    train mode unless it has inter-layer dropout (dropout > 0 with 2+ layers), so the attack pass runs without
    cuDNN only when one of `modules` holds a recurrent layer in eval mode (on CUDA; a no-op elsewhere)."""
    if device.type == "cuda" and any(isinstance(sub, nn.RNNBase) and not sub.training
                                     for root in modules for sub in root.modules()):
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()
