"""The settings of the evaluation protocols, one dataclass each: the config's `eval.knn`, `eval.linear`,
`eval.logistic`, `eval.finetune`, `eval.semi` and `eval.seg` sections are generated from these (skelssl.defaults),
so a protocol has one set of defaults whether it runs from the CLI, a benchmark or your own code.

Each field is declared with its rule (skelssl.settings); `seed` is not a config key (it is trainer.seed).
A leaf module: the defaults read it without importing the evaluation package.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from omegaconf import OmegaConf

from skelssl.errors import UserError
from skelssl.settings import Setting, choice, dataclass_rules, field_setting, integer, integers, number, numbers

__all__ = ["KnnConfig", "LinearProbeConfig", "LogisticProbeConfig", "FinetuneConfig", "SemiConfig",
           "SegmentationConfig", "BATCHNORM_MODES", "config_section"]

BATCHNORM_MODES = ("train", "frozen")


class _FromSection:
    """`from_section(cfg.eval.<name>, seed)`, and every field checked against its rule when built."""

    def __post_init__(self) -> None:
        for name, rule in dataclass_rules(type(self)).items():
            value = getattr(self, name)
            problem = rule.problem(list(value) if isinstance(value, tuple) else value)
            if problem is not None:
                raise UserError(f"{self.section_name()}.{name} = {value!r}: {problem}")
        for name in ("milestones", "k", "percents", "l2"):
            if hasattr(self, name):
                setattr(self, name, tuple(getattr(self, name)))

    @classmethod
    def section_name(cls) -> str:
        return f"eval.{SECTIONS_BY_CLASS[cls]}"

    @classmethod
    def from_section(cls, section: Mapping[str, Any], seed: int | None = None) -> Any:
        values = dict(OmegaConf.to_container(section, resolve=True) if OmegaConf.is_config(section) else section)
        if seed is not None and "seed" in {f.name for f in dataclasses.fields(cls)}:
            values["seed"] = int(seed)
        return cls(**values)


@dataclass
class KnnConfig(_FromSection):
    """1-NN (cosine) and InstDisc weighted k-NN: the k values and the temperature of the weights."""

    k: Sequence[int] = field_setting(integers([10, 20, 40], ge=1, min_length=1))
    temperature: float = field_setting(number(0.1, gt=0))


@dataclass
class LinearProbeConfig(_FromSection):
    """The linear probe (skelssl.evaluation.linear): SGD on cached, z-scored features. lr 0.1 goes with
    standardize=true (our default); the official protocol is lr 3.0 on raw features (standardize=false)."""

    epochs: int = field_setting(integer(100, ge=1))
    lr: float = field_setting(number(0.1, gt=0))
    momentum: float = field_setting(number(0.9, ge=0, lt=1))
    weight_decay: float = field_setting(number(0.0, ge=0))
    milestones: Sequence[int] = field_setting(integers([80], ge=0))
    batch_size: int = field_setting(integer(128, ge=1))
    eval_every: int = field_setting(integer(5, ge=1))
    standardize: bool = True
    seed: int = 0


@dataclass
class LogisticProbeConfig(_FromSection):
    """The deterministic linear probe (skelssl.evaluation.logistic): full-batch multinomial logistic regression
    (Newton-Cholesky or L-BFGS, float64) on the z-scored cached features, its L2 strength chosen by stratified `folds`-fold
    cross-validation on the train part only, from `l2` (the penalty λ of λ/2 ‖W‖² added to the mean
    cross-entropy)."""

    l2: Sequence[float] = field_setting(numbers([1e-4, 1e-3, 1e-2, 1e-1, 1.0], gt=0, min_length=1))
    folds: int = field_setting(integer(5, ge=2))
    max_iter: int = field_setting(integer(1000, ge=1))
    tolerance: float = field_setting(number(1e-8, gt=0))
    solver: str = field_setting(choice("newton-cholesky", "newton-cholesky", "lbfgs"))
    seed: int = 0


@dataclass
class FinetuneConfig(_FromSection):
    """Finetune, semi-supervised, supervised and transfer-finetune (skelssl.evaluation.finetune: our schedule)."""

    epochs: int = field_setting(integer(100, ge=1))
    lr: float = field_setting(number(0.1, gt=0))
    momentum: float = field_setting(number(0.9, ge=0, lt=1))
    weight_decay: float = field_setting(number(1e-4, ge=0))
    milestones: Sequence[int] = field_setting(integers([80], ge=0))
    gamma: float = field_setting(number(0.1, gt=0))
    batch_size: int = field_setting(integer(128, ge=1))
    eval_every: int = field_setting(integer(5, ge=1))
    batchnorm: str = field_setting(choice("train", *BATCHNORM_MODES))  # "frozen": the official eval-mode finetune
    precise_bn: bool = True  # BatchNorm statistics recomputed with the current weights before each test
    augment: bool = False  # true: the run's normal augmentations (shear, crop) on training batches
    seed: int = 0


@dataclass
class SemiConfig(_FromSection):
    """Class-balanced label subsets, percent of each class (5 and 20 are also common)."""

    percents: Sequence[float] = field_setting(numbers([1, 10], gt=0, le=100, min_length=1))


@dataclass
class SegmentationConfig(_FromSection):
    """The frame-wise linear classifier on dense features (skelssl.evaluation.segmentation)."""

    epochs: int = field_setting(integer(30, ge=1))
    lr: float = field_setting(number(0.1, gt=0))
    batch_size: int = field_setting(integer(256, ge=1))
    max_train_frames: int = field_setting(integer(200000, ge=1))
    chunk_frames: int = field_setting(integer(1024, ge=1))
    context_frames: int = field_setting(integer(128, ge=0))
    frame_step: int = field_setting(integer(1, ge=1))


SECTIONS = {"knn": KnnConfig, "linear": LinearProbeConfig, "logistic": LogisticProbeConfig,
            "finetune": FinetuneConfig, "semi": SemiConfig, "seg": SegmentationConfig}
SECTIONS_BY_CLASS = {cls: name for name, cls in SECTIONS.items()}


def config_section(cls: type) -> dict[str, Setting]:
    """The config section of a protocol dataclass: each field (but `seed`) as a Setting with its rule."""
    found = dataclass_rules(cls)
    section = {}
    for item in dataclasses.fields(cls):
        if item.name == "seed":
            continue
        default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
        section[item.name] = Setting(list(default) if isinstance(default, tuple) else default, found[item.name])
    return section
