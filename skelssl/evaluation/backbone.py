"""What evaluation needs of a model: the encoder and the few facts about it that its input depends on.

Every protocol, finetune, transfer, prediction, the analyses and the Python API take a `Backbone`, never a
training method: a pretraining run, an imported checkpoint (skelssl.interop) and any `nn.Module` of yours that
maps (N, C, T, V, M) to (N, D) and has a `feature_dim` are evaluated the same way:

    backbone = Backbone(encoder=my_module, layout="ntu25")
    records = evaluate_backbone(backbone, cfg, ["knn", "linear"], device="cpu")

`fresh` makes a new encoder of the same architecture as it was before training (the supervised reference and
the random-init baseline); a backbone without one cannot run those.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from skelssl.errors import UserError
from skelssl.skeleton.layouts import Layout, get_layout
from skelssl.transforms.pipelines import AugmentConfig

__all__ = ["Backbone", "ClassifierHead", "TrainedClassifier", "normalisation_differences"]


class ClassifierHead(nn.Module):
    """features (N, D) -> logits (N, K): an optional per-dimension standardisation (the linear probe's z-score)
    then one linear layer; what `predict` applies after the encoder."""

    def __init__(self, feature_dim: int, num_classes: int, standardize: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(int(feature_dim), int(num_classes))
        self.standardize = bool(standardize)
        self.register_buffer("mean", torch.zeros(int(feature_dim)))
        self.register_buffer("std", torch.ones(int(feature_dim)))

    @property
    def num_classes(self) -> int:
        return int(self.linear.out_features)

    def forward(self, features: Tensor) -> Tensor:
        if self.standardize:
            features = (features - self.mean) / self.std
        return self.linear(features)


@dataclass
class TrainedClassifier:
    """An encoder and the classifier a protocol trained on it (linear: the frozen encoder and the probe;
    finetune, semi, supervised: the trained copy and its head), which `evaluate --save-classifier` keeps as a run
    that `predict` takes."""

    protocol: str
    encoder: nn.Module
    head: ClassifierHead
    class_names: list[str]

    @classmethod
    def from_linear(cls, protocol: str, encoder: nn.Module, linear: nn.Linear, class_names: list[str],
                    mean: Tensor | None = None, std: Tensor | None = None) -> "TrainedClassifier":
        head = ClassifierHead(linear.in_features, linear.out_features, standardize=mean is not None)
        with torch.no_grad():
            head.linear.load_state_dict({k: v.detach().cpu() for k, v in linear.state_dict().items()})
            if mean is not None:
                head.mean.copy_(mean.detach().cpu())
                head.std.copy_(std.detach().cpu())
        return cls(protocol, copy.deepcopy(encoder).cpu().eval(), head.eval(), list(class_names))


@dataclass
class Backbone:
    """An encoder under evaluation and what its input depends on.

    encoder: (N, C, T, V, M) -> (N, D), with a `feature_dim` attribute.
    layout: the joint layout it reads (data of another layout goes through a joint map).
    stream: the view of the joints it reads ("joint", "motion" or "bone").
    name: the model name results carry.
    persons: the person count M of the data it learnt on (other data gets zero persons up to it); None: as given.
    expects: the input normalisation its weights expect, {"preset": ..., "recipe": {...}} in the form a prepared
        NTU dataset records it (meta.json provenance.recipe); None when unknown. Data prepared otherwise warns.
    fresh: a new encoder of the same architecture, as it was before training (seeded): for the supervised
        reference and the random-init baseline.
    augment: the augmentations finetuning applies with eval.finetune.augment=true (default: none).
    head: a classifier features -> logits, when the model has one (imported linear-evaluation weights, a probe);
        class_names: its classes.
    pretrained_on: what the weights learnt on ({"root": ..., "dataset": ...}), for transfer labels.
    provenance: where the weights come from (a run's checkpoint, an imported file's sha256 ...).
    """

    encoder: nn.Module
    layout: Layout | str | dict
    stream: str = "joint"
    name: str = "encoder"
    persons: int | None = None
    expects: dict[str, Any] | None = None
    fresh: Callable[[], nn.Module] | None = field(default=None, repr=False)
    augment: AugmentConfig | None = field(default=None, repr=False)
    head: nn.Module | None = field(default=None, repr=False)
    class_names: list[str] | None = None
    pretrained_on: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layout = get_layout(self.layout)
        if not isinstance(self.encoder, nn.Module):
            raise TypeError(f"Backbone.encoder must be an nn.Module, got {type(self.encoder).__name__}")
        if not isinstance(getattr(self.encoder, "feature_dim", None), int):
            raise TypeError("Backbone.encoder needs an integer `feature_dim` (the size of the features it returns)")

    @property
    def feature_dim(self) -> int:
        return int(self.encoder.feature_dim)

    def copy_encoder(self) -> nn.Module:
        """A copy of the trained encoder (finetuning trains it in place)."""
        return copy.deepcopy(self.encoder)

    def fresh_encoder(self, purpose: str) -> nn.Module:
        """A new encoder as it was before training; a clear error naming `purpose` when there is no way to make
        one."""
        if self.fresh is None:
            raise UserError(f"{purpose} needs a freshly initialised encoder of the same architecture, and the "
                            f"model '{self.name}' does not say how to make one (Backbone.fresh)")
        return self.fresh()

    def random_init(self) -> "Backbone":
        """The same architecture as before training: the random-init baseline (its weights from `fresh`)."""
        return Backbone(encoder=self.fresh_encoder("the random-init baseline"), layout=self.layout,
                        stream=self.stream, name="random_init", persons=self.persons, expects=None,
                        fresh=self.fresh, augment=self.augment, pretrained_on=dict(self.pretrained_on),
                        provenance={"random_init_of": self.name})


# The recipe entries that change what a frame holds (the rest say how bodies were read).
NORMALISATION_KEYS = ("center_joint", "center_mode", "center_trajectory", "frames", "align")


def normalisation_differences(expects: dict[str, Any] | None, meta: Any) -> list[str]:
    """How the preparation of a dataset (its meta.json, skelssl.data.prepared.Meta) differs from the input
    normalisation a backbone's weights expect: one phrase per differing entry, [] when they agree or when the
    weights expect nothing in particular."""
    if not expects or not expects.get("recipe"):
        return []
    wanted = expects["recipe"]
    recipe = (getattr(meta, "provenance", None) or {}).get("recipe")
    if not isinstance(recipe, dict):
        return [f"the data records no NTU-style preparation recipe (the weights expect the '{expects.get('preset')}' "
                f"preset: {', '.join(f'{k}={wanted[k]}' for k in NORMALISATION_KEYS if k in wanted)})"]
    return [f"{key}={recipe.get(key)!r} where the weights expect {wanted[key]!r}"
            for key in NORMALISATION_KEYS if key in wanted and recipe.get(key) != wanted[key]]
