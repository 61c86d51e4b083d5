"""Finetuning: the encoder and a linear classifier trained together on labels (all, or a subset), and the
supervised-from-scratch reference (the same encoder and schedule from random init).

The papers (AimCLR §4.2, ActCLR §4.3, ActCLR+ §IV): "append a linear classifier to the trained encoder and
then train the whole model". They leave the schedule open; ours (eval.finetune.*): SGD lr 0.1, momentum
0.9, weight decay 1e-4, lr x0.1 at epoch 80 of 100, batch 128, no augmentation, test every 5 epochs; the
classifier starts at N(0, 0.01) weights and zero bias, as the linear probe's. A²MC's transfer finetune (80
epochs, lr 0.01, x0.1 at 50 and 70) is `eval.finetune.epochs=80 eval.finetune.lr=0.01
eval.finetune.milestones=[50,70]` with a milestone factor of 0.1 each.

BatchNorm: `eval.finetune.batchnorm=train` (default) trains the encoder in train mode (BatchNorm statistics
update, dropout on), as supervised ST-GCN training does. Before each test, `eval.finetune.precise_bn=true`
(default) recomputes the BatchNorm statistics over the training rows with the current weights and dropout off
(skelssl.evaluation.batchnorm): the running averages lag behind weights that move fast at lr 0.1 and carry
dropout's variance, and on short schedules they made eval mode predict one class for every test sequence
(synthetic, 4 epochs: 8.3 %, chance, against 35 % with recomputed statistics). It changes no weight and draws
no random number (training is bit-identical with it on or off); false keeps the running averages, as the
papers' code does. `frozen` reproduces the official code, whose
finetune processor calls model.eval() inside training: BatchNorm keeps its pretrained statistics and dropout
is off. That is why the official supervised-from-scratch run stays at chance: its BatchNorm statistics are
those of random init (REFERENCE_NOTES). Both still train every weight, BatchNorm's affine ones included.

Determinism: shuffling, the classifier's init and augmentation draw from one torch.Generator seeded with
trainer.seed; dropout draws from the global generator, which is seeded the same way inside a forked RNG
state (the caller's global RNG is left as it was).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skelssl.data.dataset import SkeletonDataset
from skelssl.errors import UserError
from skelssl.evaluation.backbone import TrainedClassifier
from skelssl.evaluation.batchnorm import recompute_over_data
from skelssl.evaluation.features import load_batch
from skelssl.evaluation.inputs import model_input
from skelssl.evaluation.linear import summarize_history
from skelssl.evaluation.protocols import EvalContext, Protocol
from skelssl.evaluation.results import ResultRecord
from skelssl.protocol_configs import BATCHNORM_MODES, FinetuneConfig
from skelssl.transforms.pipelines import normal_from_config

__all__ = ["FinetuneConfig", "finetune", "finetune_in_context", "BATCHNORM_MODES",
           "FinetuneProtocol", "SupervisedProtocol"]

@torch.no_grad()
def _test_logits(encoder: nn.Module, head: nn.Module, data: Any, transform: Callable[[Tensor], Tensor],
                 device: torch.device, batch_size: int) -> Tensor:
    was_training = encoder.training
    encoder.eval()
    try:
        chunks = [head(encoder(transform(load_batch(data, slice(s, min(s + batch_size, len(data))), device))))
                  for s in range(0, len(data), batch_size)]
    finally:
        encoder.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, head.out_features, device=device)


def finetune(
    encoder: nn.Module,
    train_data: np.ndarray | Tensor,
    train_labels: np.ndarray | Tensor,
    test_data: np.ndarray | Tensor,
    test_labels: np.ndarray | Tensor,
    num_classes: int,
    cfg: FinetuneConfig,
    *,
    transform: Callable[[Tensor], Tensor],
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    device: torch.device | str = "cpu",
    eval_batch_size: int = 256,
    progress: bool = False,
    label: str = "finetune",
) -> dict[str, Any]:
    """Train `encoder` (in place) and a Linear(feature_dim, num_classes) head on (train_data, train_labels).

    Data is (N, C, T, V, M) raw joints; each batch is read, moved to `device`, augmented with
    `augment(batch, generator)` when `cfg.augment` is set, passed through `transform` (the model input:
    joint map, stream view) and the encoder. The test set is classified every `cfg.eval_every` epochs and
    after the last one. Returns {"final_top1", "best_top1", "best_epoch", "history", "test_logits" (the last
    epoch's, on the CPU), "head" (the trained Linear), "seconds"}; accuracies in [0, 1].
    """
    device = torch.device(device)
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # the caller's global RNG is left as it was
        torch.manual_seed(cfg.seed)  # dropout's (and the head's default init's) global stream
        return _finetune(encoder, train_data, train_labels, test_data, test_labels, num_classes, cfg,
                         transform=transform, augment=augment, device=device, eval_batch_size=eval_batch_size,
                         progress=progress, label=label)


def _finetune(encoder: nn.Module, train_data: Any, train_labels: Any, test_data: Any, test_labels: Any,
              num_classes: int, cfg: FinetuneConfig, *, transform: Callable[[Tensor], Tensor],
              augment: Callable[[Tensor, torch.Generator], Tensor] | None, device: torch.device,
              eval_batch_size: int, progress: bool, label: str) -> dict[str, Any]:
    started = time.perf_counter()
    train_y = torch.as_tensor(np.asarray(train_labels)).long().to(device)
    test_y = torch.as_tensor(np.asarray(test_labels)).long().to(device)
    if len(train_y) == 0:
        raise UserError(f"{label}: no training samples")
    encoder = encoder.to(device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    head = nn.Linear(int(encoder.feature_dim), num_classes).to(device)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.01, generator=generator)
        head.bias.zero_()
    params = list(encoder.parameters()) + list(head.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), cfg.gamma)
    history: list[tuple[int, float]] = []
    logits = torch.empty(0)
    for epoch in range(1, cfg.epochs + 1):
        encoder.train(cfg.batchnorm == "train")
        head.train()
        order = torch.randperm(len(train_y), generator=generator, device=device)
        total, seen = 0.0, 0
        for start in range(0, order.numel(), cfg.batch_size):
            # Sorted: a memmap reads rows in file order; the order inside a batch does not matter.
            index = order[start:start + cfg.batch_size].sort().values
            batch = load_batch(train_data, index.cpu().numpy(), device)
            if cfg.augment and augment is not None:
                batch = augment(batch, generator)
            loss = F.cross_entropy(head(encoder(transform(batch))), train_y[index])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{label}: the loss became {loss.item()} at epoch {epoch}; lower "
                                         "eval.finetune.lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(index), seen + len(index)
        scheduler.step()
        line = f"{label} epoch {epoch}/{cfg.epochs}: loss {total / seen:.4f}"
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            if cfg.precise_bn and cfg.batchnorm == "train":  # frozen: the pretrained statistics stay
                recompute_over_data(encoder, train_data, transform, device, eval_batch_size)
            logits = _test_logits(encoder, head, test_data, transform, device, eval_batch_size)
            history.append((epoch, (logits.argmax(1) == test_y).float().mean().item() if len(test_y) else 0.0))
            line += f", test top1 {100 * history[-1][1]:.2f} %"
        if progress:
            print(f"{line} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    encoder.eval()
    return {**summarize_history(history), "test_logits": logits.float().cpu(), "head": head,
            "seconds": time.perf_counter() - started}


def finetune_in_context(context: EvalContext, protocol: str, encoder: nn.Module,
                        train_positions: np.ndarray | None = None, dataset: str | None = None) -> list[ResultRecord]:
    """Finetune `encoder` (trained in place: pass a copy) on the train part of context.cfg.data (or the rows
    `train_positions` of it), test on the test part; records `top1` and `best_top1`, scores kept for fusion."""
    cfg, backbone = context.cfg, context.backbone
    train = SkeletonDataset(cfg.data.root, cfg.data.split, "train")
    test = SkeletonDataset(cfg.data.root, cfg.data.split, "test")
    train_data, train_labels = train.array(), train.labels
    if train_positions is not None:
        train_data, train_labels = train_data[np.sort(train_positions)], train_labels[np.sort(train_positions)]
    out = finetune(encoder, train_data, train_labels, test.array(), test.labels, train.num_classes,
                   FinetuneConfig.from_section(cfg.eval.finetune, seed=int(cfg.trainer.seed)),
                   transform=model_input(backbone, train.layout),
                   augment=None if backbone.augment is None else
                   (lambda x, generator: normal_from_config(x, generator, backbone.augment)),
                   device=context.device, eval_batch_size=int(cfg.eval.batch_size), progress=context.progress,
                   label=f"{protocol} ({context.model_name})")
    if context.keep_classifiers:
        context.classifiers.append(TrainedClassifier.from_linear(protocol, encoder, out["head"],
                                                                 list(train.meta.class_names)))
    context.keep_scores(protocol, out["test_logits"], test.labels,
                        [test.meta.sample_names[i] for i in test.indices], dataset=dataset)
    records = [context.record(protocol, "top1", out["final_top1"]),
               context.record(protocol, "best_top1", out["best_top1"])]
    if dataset:
        for record in records:
            record.dataset = dataset
    return records


class FinetuneProtocol(Protocol):
    name = "finetune"
    help = "encoder + linear classifier trained on all labels (eval.finetune.*; BatchNorm in train mode)"

    def run(self, context: EvalContext) -> list[ResultRecord]:
        return finetune_in_context(context, self.name, context.backbone.copy_encoder())


class SupervisedProtocol(Protocol):
    name = "supervised"
    help = "the same encoder and finetune schedule from random init: the supervised reference"

    def run(self, context: EvalContext) -> list[ResultRecord]:
        return finetune_in_context(context, self.name, context.backbone.fresh_encoder("the supervised reference"))
