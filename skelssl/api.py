"""A small Python API for your own code: load a pretrained checkpoint, embed sequences, classify them.

    from skelssl.api import load
    model = load("runs/demo")                                # a pretraining run or an imported one
    features = model.embed("data/nw-ucla", part="test")      # a prepared dataset -> (N, D)
    features = model.embed(array, layout="kinect20")         # or a raw array, with its layout
    probe = model.fit_probe("data/nw-ucla")                  # linear probe on the train part
    classes = model.predict(array, probe, layout="kinect20")

Sequences go through the same path as evaluation (skelssl.evaluation.inputs.model_input): joints mapped to
the encoder's layout when theirs differs (skelssl.skeleton.joint_maps), the stream view the model was
trained on, the frozen encoder in eval mode. A raw array should be prepared like the pretraining data (the
prepared datasets are centred and resampled, see docs/data.md); `frames=` resamples it linearly.
docs/evaluation.md has a runnable example.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from skelssl.data.dataset import SkeletonDataset
from skelssl.data.geometry import resample_linear
from skelssl.data.prepared import load_meta
from skelssl.errors import UserError
from skelssl.evaluation.backbone import Backbone
from skelssl.evaluation.features import extract_features
from skelssl.evaluation.inputs import model_input
from skelssl.evaluation.linear import fit_linear_head
from skelssl.protocol_configs import LinearProbeConfig
from skelssl.evaluation.loading import load_backbone
from skelssl.evaluation.runner import pick_device
from skelssl.skeleton.layouts import Layout, get_layout

__all__ = ["load", "PretrainedModel", "LinearProbe"]


@dataclass
class LinearProbe:
    """A linear classifier fitted on a model's frozen features (the `linear` protocol's probe)."""

    head: Any  # skelssl.evaluation.linear's standardiser + Linear
    class_names: list[str]
    test_top1: float | None = None  # accuracy on the dataset's test part, when it has one
    history: list[tuple[int, float]] = field(default_factory=list)

    @torch.no_grad()
    def logits(self, features: Tensor) -> Tensor:
        return self.head.logits(features.to(self.head.mean.device)).cpu()

    def predict(self, features: Tensor) -> Tensor:
        """Class indices (N,) of features (N, D)."""
        return self.logits(features).argmax(dim=1)

    def predict_names(self, features: Tensor) -> list[str]:
        return [self.class_names[i] for i in self.predict(features).tolist()]


def _as_batch(data: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """(N, C, T, V, M) as it is; (T, V, C), one sequence of one person, as (1, C, T, V, 1)."""
    if data.ndim == 5:
        return data
    if data.ndim == 3:
        return data.transpose(2, 0, 1)[None, ..., None] if isinstance(data, np.ndarray) \
            else data.permute(2, 0, 1)[None, ..., None]
    raise UserError(f"expected a batch (N, C, T, V, M) or one sequence (T, V, C), got shape {tuple(data.shape)}")


def _resample(data: np.ndarray | Tensor, frames: int) -> np.ndarray:
    array = data.detach().cpu().numpy() if isinstance(data, Tensor) else np.asarray(data)
    moved = np.moveaxis(array, 2, 0)  # frames first
    return np.moveaxis(resample_linear(moved.astype(np.float32), frames), 0, 2)


class PretrainedModel:
    """A run's encoder (pretrained or imported), ready to embed sequences (see the module docstring)."""

    def __init__(self, backbone: Backbone, cfg: Any, device: torch.device | str | None = None) -> None:
        self.backbone, self.cfg = backbone, cfg
        self.device = torch.device(device) if device is not None else pick_device(str(cfg.trainer.accelerator))
        self.encoder = backbone.encoder.to(self.device).eval()

    @property
    def layout(self) -> Layout:
        return self.backbone.layout

    @property
    def stream(self) -> str:
        return str(self.backbone.stream)

    @property
    def feature_dim(self) -> int:
        return int(self.encoder.feature_dim)

    def __repr__(self) -> str:
        return (f"PretrainedModel(model={self.backbone.name}, encoder={self.cfg.model.encoder}, "
                f"layout={self.layout.name}, stream={self.stream}, feature_dim={self.feature_dim})")

    def _prepared(self, root: str | Path, split: str | None, part: str) -> tuple[np.ndarray, Any]:
        dataset = SkeletonDataset(root, split or self._default_split(root), part)
        return dataset.array(), dataset

    def _default_split(self, root: str | Path) -> str:
        splits = sorted(load_meta(root).splits)
        own = str(self.cfg.data.split)
        if own in splits or not splits:
            return own
        if len(splits) == 1:
            return splits[0]
        raise UserError(f"{root} has the splits {', '.join(splits)}; say which one: split=...")

    def embed(self, data: str | Path | np.ndarray | Tensor, *, layout: str | Layout | dict | None = None,
              split: str | None = None, part: str = "test", frames: int | None = None,
              batch_size: int = 256) -> Tensor:
        """Frozen features (N, D) on the CPU of:
        - a prepared dataset directory: the `part` ("train" or "test") of `split` (default: the model's own
          split name when the dataset has it, else its only split);
        - a raw array (N, C, T, V, M), or one sequence of one person (T, V, C), whose joints follow `layout`
          (default: the model's); `frames` resamples every sequence to that many frames first.
        """
        if isinstance(data, (str, Path)):
            if layout is not None:
                raise UserError("a prepared dataset carries its own layout; give `layout` only with a raw array")
            array, dataset = self._prepared(data, split, part)
            layout = dataset.layout
        else:
            array = _as_batch(data)
        if frames is not None:
            array = _resample(array, int(frames))
        layout = self.layout if layout is None else get_layout(layout)
        if array.shape[3] != layout.num_joints:
            raise UserError(f"the data has {array.shape[3]} joints but layout '{layout.name}' has "
                            f"{layout.num_joints}; pass the data's own layout (layout=...)")
        return extract_features(self.encoder, array, batch_size=batch_size, device=self.device,
                                transform=model_input(self.backbone, layout))

    def fit_probe(self, dataset: str | Path | None = None, *, features: Tensor | None = None,
                  labels: Sequence[int] | np.ndarray | Tensor | None = None, class_names: Sequence[str] | None = None,
                  split: str | None = None, epochs: int | None = None, seed: int = 0) -> LinearProbe:
        """A linear probe (the `linear` protocol's settings, eval.linear.*) fitted on the train part of a
        prepared `dataset` (and scored on its test part: `probe.test_top1`), or on your own `features` and
        `labels`."""
        e = self.cfg.eval
        cfg = LinearProbeConfig.from_section(e.linear, seed=seed)
        if epochs:
            cfg = dataclasses.replace(cfg, epochs=int(epochs), milestones=tuple(m for m in cfg.milestones if m < epochs))
        test_x = test_y = None
        if dataset is not None:
            if features is not None or labels is not None:
                raise UserError("give either a prepared dataset or features and labels, not both")
            split = split or self._default_split(dataset)
            _, train = self._prepared(dataset, split, "train")
            features, labels = self.embed(dataset, split=split, part="train"), train.labels
            class_names = train.meta.class_names
            _, test = self._prepared(dataset, split, "test")
            if len(test):
                test_x, test_y = self.embed(dataset, split=split, part="test"), test.labels
        elif features is None or labels is None:
            raise UserError("fit_probe needs a prepared dataset, or features and labels")
        labels = torch.as_tensor(np.asarray(labels)).long()
        if len(labels) != len(features):
            raise UserError(f"{len(features)} feature rows but {len(labels)} labels")
        num_classes = len(class_names) if class_names is not None else int(labels.max()) + 1
        names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        head, history = fit_linear_head(features, labels, test_x, test_y, num_classes, cfg)
        return LinearProbe(head, names, history[-1][1] if history else None, history)

    def predict(self, data: str | Path | np.ndarray | Tensor, probe: LinearProbe, **embed_options: Any) -> Tensor:
        """Class indices (N,) of `data` (anything `embed` takes, with its options) under a fitted probe."""
        return probe.predict(self.embed(data, **embed_options))


def load(checkpoint: str | Path, device: torch.device | str | None = None,
         overrides: dict[str, Any] | None = None) -> PretrainedModel:
    """The model of a run (RUN or RUN/checkpoints/last.ckpt): a `skelssl pretrain` run or a `skelssl import` one."""
    backbone, cfg = load_backbone(checkpoint, overrides)
    return PretrainedModel(backbone, cfg, device)
