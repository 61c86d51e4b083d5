"""Frozen-encoder feature extraction, shared by the KNN and linear-probe protocols."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from skelssl.console import Progress
from skelssl.data.dataset import SkeletonDataset
from skelssl.evaluation.backbone import Backbone
from skelssl.evaluation.inputs import model_input


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); CPU for a module with neither."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return torch.device("cpu")


def load_batch(data: np.ndarray | Tensor, index: slice | np.ndarray, device: torch.device) -> Tensor:
    """Rows `index` of `data` as a float32 tensor on `device`.

    For a numpy memmap only those rows are read from disk, never the whole array.
    """
    if isinstance(data, Tensor):
        rows = data[torch.as_tensor(index) if isinstance(index, np.ndarray) else index]
        return rows.to(device=device, dtype=torch.float32)
    rows = np.array(data[index], dtype=np.float32, copy=True)  # reads only these rows from a memmap
    return torch.from_numpy(rows).to(device)


@torch.no_grad()
def encode_batch(encoder: nn.Module, batch: Tensor, transform: Callable[[Tensor], Tensor] | None) -> Tensor:
    """Apply `transform` (e.g. joint→bone stream) then the encoder; returns (B, D)."""
    if transform is not None:
        batch = transform(batch)
    features = encoder(batch)
    if not isinstance(features, Tensor) or features.ndim != 2:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"the encoder must return pooled features of shape (batch, dim); it returned {shape}")
    return features


def extract_features(
    encoder: nn.Module,
    data: np.ndarray | Tensor,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
    progress: bool = False,
) -> Tensor:
    """Features (N, D) of every sample of `data` (N, C, T, V, M) under a frozen encoder.

    The encoder runs in eval mode (BatchNorm uses its running statistics, dropout is off — the official
    linear/KNN protocols do the same) under `torch.no_grad`; its previous train/eval mode is restored
    afterwards. Batches are read slice by slice (a memory-mapped array is never loaded whole), moved to
    `device` (default: the encoder's device), passed through `transform` there, then the encoder.
    Returns CPU float32.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = module_device(encoder) if device is None else torch.device(device)
    num_samples = int(data.shape[0])
    was_training = encoder.training
    encoder.eval()
    chunks: list[Tensor] = []
    bar = Progress(num_samples, "features", "sequences", enabled=progress)
    try:
        for start in range(0, num_samples, batch_size):
            batch = load_batch(data, slice(start, min(start + batch_size, num_samples)), device)
            chunks.append(encode_batch(encoder, batch, transform).float().cpu())
            bar.update(int(batch.shape[0]))
    finally:
        encoder.train(was_training)
        bar.close()
    if not chunks:
        return torch.empty(0, 0)
    return torch.cat(chunks)


def encode_splits(backbone: Backbone, cfg: Any, device: torch.device, progress: bool = False) -> dict[str, Any]:
    """Backbone features of the train and test parts of cfg.data (computed once, reused by every protocol);
    data of another layout than the encoder's is mapped to it (evaluation.inputs.model_input)."""
    train = SkeletonDataset(cfg.data.root, cfg.data.split, "train")
    test = SkeletonDataset(cfg.data.root, cfg.data.split, "test")
    encoder = backbone.encoder.to(device)
    transform = model_input(backbone, train.layout)  # another layout's data goes through the joint map

    bs = int(cfg.eval.batch_size)
    return {
        "train_feats": extract_features(encoder, train.array(), batch_size=bs, device=device,
                                        transform=transform, progress=progress),
        "test_feats": extract_features(encoder, test.array(), batch_size=bs, device=device,
                                       transform=transform, progress=progress),
        "train_labels": torch.as_tensor(train.labels),
        "test_names": [test.meta.sample_names[i] for i in test.indices],
        "test_labels": torch.as_tensor(test.labels),
        "num_classes": train.num_classes,
        "class_names": list(train.meta.class_names),
    }
