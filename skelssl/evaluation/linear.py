"""Linear probe: a linear classifier trained on the features of a frozen encoder.

Protocol defaults are those of the SkeletonCLR/AimCLR/ActCLR code (see the fidelity notes): encoder frozen
and in eval mode, Linear(D, classes), no augmentation, SGD lr 3.0, momentum 0.9, weight decay 0, lr ×0.1 at
epoch 80 of 100, batch 128, test every 5 epochs, report the best (and here also the final) accuracy.

Choices of ours, where the official code is silent or does extra work:
- Features are computed once and cached (`linear_probe`): the official code recomputes them every epoch,
  which with a frozen eval-mode encoder and no augmentation gives the same features.
  `linear_probe_with_augmentation` is the uncached path for augmented training inputs.
- `standardize=True` (our default) z-scores the features with the training set's per-dimension mean and
  standard deviation before the classifier — the same as a non-affine BatchNorm in front of the linear
  layer, as MAE's linear probing uses, but with exact full-training-set statistics so that it is
  deterministic and independent of the batch. Reason: a frozen random-init encoder has tiny activations,
  and lr 3.0 on raw features makes that baseline degenerate. `standardize=False` reproduces the official
  protocol exactly.
- The classifier is initialised with weights N(0, 0.01) and zero bias (MoCo's linear protocol) from the
  seeded generator; every training sample is used each epoch (the last batch may be smaller).
- Epochs are counted from 1; evaluation runs every `eval_every` epochs and always after the last epoch.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skelssl.evaluation.features import encode_batch, extract_features, load_batch, module_device
from skelssl.protocol_configs import LinearProbeConfig


def _as_tensor(values: Tensor | np.ndarray | Sequence) -> Tensor:
    return values if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values))


class _LinearHead:
    """Standardiser + Linear(D, classes) + SGD with a step schedule: the trainable part of the probe."""

    def __init__(self, train_feats: Tensor, num_classes: int, cfg: LinearProbeConfig,
                 generator: torch.Generator):
        device, dim = train_feats.device, train_feats.shape[1]
        if cfg.standardize:
            self.mean = train_feats.mean(dim=0)
            std = train_feats.std(dim=0, unbiased=False)
            # Constant dimensions (e.g. dead ReLU channels) stay at 0 instead of dividing by ~0; the floor is
            # relative because a random-init encoder's features may all be tiny.
            floor = max(std.max().item() * 1e-6, torch.finfo(torch.float32).tiny)
            self.std = torch.where(std > floor, std, torch.ones_like(std))
        else:
            self.mean = torch.zeros(dim, device=device)
            self.std = torch.ones(dim, device=device)
        self.linear = nn.Linear(dim, num_classes).to(device)
        with torch.no_grad():
            self.linear.weight.normal_(0.0, 0.01, generator=generator)
            self.linear.bias.zero_()
        self.optimizer = torch.optim.SGD(self.linear.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, list(cfg.milestones), 0.1)

    def logits(self, features: Tensor) -> Tensor:
        return self.linear((features.float() - self.mean) / self.std)

    def step(self, features: Tensor, labels: Tensor) -> float:
        loss = F.cross_entropy(self.logits(features), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    @torch.no_grad()
    def accuracy(self, features: Tensor, labels: Tensor, batch_size: int = 4096) -> float:
        correct = sum((self.logits(features[s:s + batch_size]).argmax(1) == labels[s:s + batch_size]).sum().item()
                      for s in range(0, features.shape[0], batch_size))
        return correct / max(features.shape[0], 1)


def summarize_history(history: list[tuple[int, float]]) -> dict:
    best_epoch, best_top1 = max(history, key=lambda item: (item[1], -item[0]))  # earliest best
    return {"final_top1": history[-1][1], "best_top1": best_top1, "best_epoch": best_epoch, "history": history}


def _should_eval(epoch: int, cfg: LinearProbeConfig) -> bool:
    return epoch % cfg.eval_every == 0 or epoch == cfg.epochs


def fit_linear_head(
    train_feats: Tensor | np.ndarray,
    train_labels: Tensor | np.ndarray,
    test_feats: Tensor | np.ndarray | None,
    test_labels: Tensor | np.ndarray | None,
    num_classes: int,
    cfg: LinearProbeConfig | None = None,
    progress: bool = False,
) -> tuple[_LinearHead, list[tuple[int, float]]]:
    """Train the probe's classifier on cached features; returns it (its `logits(features)` and
    `accuracy(features, labels)`) and the test accuracies [(epoch, top1), ...] (empty without test data)."""
    cfg = cfg or LinearProbeConfig()
    train_x = _as_tensor(train_feats).float()
    device = train_x.device
    train_y = _as_tensor(train_labels).to(device).long()
    test_x = None if test_feats is None else _as_tensor(test_feats).to(device).float()
    test_y = None if test_labels is None else _as_tensor(test_labels).to(device).long()
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    head = _LinearHead(train_x, num_classes, cfg, generator)
    history: list[tuple[int, float]] = []
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(train_x.shape[0], generator=generator, device=device)
        for start in range(0, order.numel(), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            head.step(train_x[batch], train_y[batch])
        head.scheduler.step()
        if test_x is not None and _should_eval(epoch, cfg):
            history.append((epoch, head.accuracy(test_x, test_y)))
            if progress:
                print(f"linear epoch {epoch}: top1 {history[-1][1]:.4f}", file=sys.stderr)
    return head, history


def linear_probe(
    train_feats: Tensor | np.ndarray,
    train_labels: Tensor | np.ndarray,
    test_feats: Tensor | np.ndarray,
    test_labels: Tensor | np.ndarray,
    num_classes: int,
    cfg: LinearProbeConfig | None = None,
    progress: bool = False,
) -> dict:
    """Train a linear classifier on cached frozen features; runs on the training features' device.

    Returns {"final_top1", "best_top1", "best_epoch", "history": [(epoch, top1), ...]}, accuracies in [0, 1].
    Deterministic for a given `cfg.seed` (shuffling and init use one seeded torch.Generator).
    """
    _, history = fit_linear_head(train_feats, train_labels, test_feats, test_labels, num_classes, cfg, progress)
    return summarize_history(history)


def linear_probe_with_augmentation(
    encoder: nn.Module,
    train_data: np.ndarray | Tensor,
    train_labels: Tensor | np.ndarray,
    test_data: np.ndarray | Tensor,
    test_labels: Tensor | np.ndarray,
    num_classes: int,
    cfg: LinearProbeConfig | None = None,
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> dict:
    """Linear probe whose training features are recomputed every epoch from augmented inputs.

    The encoder stays frozen and in eval mode (its mode is restored at the end). Each training batch
    (N, C, T, V, M) is read from `train_data`, moved to `device` (default: the encoder's), augmented with
    `augment(batch, generator)`, converted with `transform`, then encoded. Test features are computed once,
    without augmentation. With `standardize`, the mean/std come from the un-augmented training features
    (one extra pass) — our choice, so that the standardiser does not change from epoch to epoch.
    Returns the same dict as `linear_probe`.
    """
    cfg = cfg or LinearProbeConfig()
    device = module_device(encoder) if device is None else torch.device(device)
    train_y = _as_tensor(train_labels).to(device).long()
    test_y = _as_tensor(test_labels).to(device).long()
    extract = dict(batch_size=max(cfg.batch_size, 256), device=device, transform=transform)
    test_x = extract_features(encoder, test_data, **extract).to(device)
    reference = (extract_features(encoder, train_data, **extract).to(device) if cfg.standardize
                 else torch.zeros(1, test_x.shape[1], device=device))
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    head = _LinearHead(reference, num_classes, cfg, generator)
    was_training = encoder.training
    encoder.eval()
    history: list[tuple[int, float]] = []
    try:
        for epoch in range(1, cfg.epochs + 1):
            order = torch.randperm(int(train_data.shape[0]), generator=generator, device=device)
            for start in range(0, order.numel(), cfg.batch_size):
                # Sorted indices: a memmap reads rows in file order; the order inside a batch is irrelevant.
                batch_idx = order[start:start + cfg.batch_size].sort().values
                batch = load_batch(train_data, batch_idx.cpu().numpy(), device)
                if augment is not None:
                    batch = augment(batch, generator)
                head.step(encode_batch(encoder, batch, transform).float(), train_y[batch_idx])
            head.scheduler.step()
            if _should_eval(epoch, cfg):
                history.append((epoch, head.accuracy(test_x, test_y)))
                if progress:
                    print(f"linear(aug) epoch {epoch}: top1 {history[-1][1]:.4f}", file=sys.stderr)
    finally:
        encoder.train(was_training)
    return summarize_history(history)
