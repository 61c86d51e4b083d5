"""A²MC's targeted semantic attack (Att-Aug, §III-B, eqs. 5-6) and the classifier head it attacks through.

The query encoder and a fully connected head give the class feature f_a = softmax(head(encoder(x))) of C
classes; the attack loss is the mean squared distance of f_a to the uniform distribution (eq. 5), which the
attack lowers: one step on the input, rho = eps * Phi(dL/dx), Phi the update of the Adam optimiser (eq. 6). A
fresh Adam's first update is lr * m̂ / (sqrt(v̂) + e) with m̂ = g and v̂ = g², i.e. eps * g / (|g| + 1e-8):
every coordinate moves by (almost) eps against the sign of its gradient. Then rho is scaled into the l2 ball
of radius eta, per sequence.

Choices the paper leaves open (docs/fidelity_a2mc_prosl_hico.md):
- the attack sees the whole valid sequence resampled to the encoder's 64 frames (differentiable, so the
  perturbation lives on the input at its own length); views are cut from the attacked sequence afterwards;
- the perturbation is zero where a person is absent from a frame (zero padding stays padding);
- the head is trained (its own learning rate, a second parameter group) to make confident and balanced class
  predictions from the detached query feature -- information maximisation (Krause et al. 2010, IMSAT): minimise
  the mean per-sample entropy, maximise the entropy of the batch's mean prediction. The attack then pushes a
  sequence towards the boundary between the classes the head has found. `head_training=frozen` keeps the head
  at its random init (the official code's head never trains).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["uniform_attack_loss", "adam_first_step", "project_l2", "present_mask", "information_maximization",
           "rnn_backward_allowed"]

ADAM_EPS = 1e-8  # torch.optim.Adam's default


def uniform_attack_loss(logits: Tensor) -> Tensor:
    """eq. 5: MSE(f_a − 1/C) with f_a = softmax(logits) (N, C): the mean over classes, summed over samples (so a
    sample's gradient does not depend on the batch size)."""
    probs = F.softmax(logits.float(), dim=1)
    return (probs - 1.0 / probs.shape[1]).pow(2).mean(dim=1).sum()


def adam_first_step(grad: Tensor, lr: float, eps: float = ADAM_EPS) -> Tensor:
    """The update a freshly created torch.optim.Adam(lr) applies to a parameter with gradient `grad` (to be
    subtracted): with bias correction m̂ = g, v̂ = g², so lr · g / (|g| + eps)."""
    return lr * grad / (grad.abs() + eps)


def project_l2(rho: Tensor, radius: float) -> Tensor:
    """rho (N, ...) scaled per sample into the l2 ball of `radius` (unchanged when already inside)."""
    norms = rho.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = (radius / norms).clamp(max=1.0)
    return rho * scale.view(-1, *([1] * (rho.dim() - 1)))


def present_mask(x: Tensor) -> Tensor:
    """(N, 1, T, 1, M): 1 where a person holds a skeleton in a frame (any coordinate non-zero), else 0."""
    return (x.abs().amax(dim=(1, 3), keepdim=True) > 0).to(x.dtype)


def information_maximization(logits: Tensor) -> Tensor:
    """mean_n H(p_n) − H(mean_n p_n) of p = softmax(logits): low when each prediction is confident and the
    classes are used evenly (the head's training loss; module docstring)."""
    log_p = F.log_softmax(logits.float(), dim=1)
    p = log_p.exp()
    per_sample = -(p * log_p).sum(dim=1).mean()
    marginal = p.mean(dim=0)
    return per_sample + (marginal * marginal.clamp_min(1e-12).log()).sum()


def rnn_backward_allowed(device: torch.device) -> contextlib.AbstractContextManager:
    """cuDNN refuses the backward of a recurrent layer in eval mode, which the side-effect-free attack pass
    uses: run that pass without cuDNN (a no-op on the CPU)."""
    if device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()
