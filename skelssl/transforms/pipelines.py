"""Augmentation pipelines: AimCLR's normal and extreme sets, a config of strengths, and a name registry.

normal_augment  = Shear -> Crop                                   (SkeletonCLR / AimCLR normal set T)
extreme_augment = Shear -> Crop -> Spatial Flip -> Rotate -> Gaussian Noise -> Gaussian Blur -> Axis Mask
                  -> Temporal Flip                                 (AimCLR extreme set T', all eight)
The extreme order is the official feeder's; the paper lists the eight without an order.

2D keypoints: every function takes `coords`, the number of leading coordinate channels (default: all C).
With 2 coordinates shear, rotate and axis mask use their 2D counterparts (transforms/spatial.py) and a
score channel after the coordinates is left to the temporal steps (crop, blur, flip follow the frames);
Gaussian noise is added to every channel, the score too, as the official code adds it to the whole array.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from skelssl.errors import UserError
from skelssl.settings import dataclass_rules, field_setting, integer, number, numbers, odd_integer, probability
from skelssl.skeleton.layouts import Layout
from skelssl.transforms.noise import gaussian_blur, gaussian_noise
from skelssl.transforms.spatial import axis_mask, rotate, shear, spatial_flip
from skelssl.transforms.temporal import crop_resize, temporal_crop, temporal_flip
from skelssl.transforms.tracking import ViewTracker

__all__ = ["AugmentConfig", "normal_augment", "extreme_augment", "apply_named", "AUGMENTATIONS"]


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of every augmentation (defaults: the AimCLR / HiCo papers and official code).

    temporal_flip_p defaults to 0.5 as in the AimCLR paper; the official code has temporal flip off
    (set 0.0 to reproduce it). blur_normalize=False reproduces the official, unnormalised blur kernel.
    """

    shear_amplitude: float = field_setting(number(0.5, ge=0))
    padding_ratio: int = field_setting(integer(6, ge=1))
    max_angle: float = field_setting(number(30.0, ge=0))
    minor_angle: float = field_setting(number(1.0, ge=0))
    spatial_flip_p: float = field_setting(probability(0.5))
    axis_mask_p: float = field_setting(probability(0.5))
    noise_std: float = field_setting(number(0.01, ge=0))
    noise_p: float = field_setting(probability(0.5))
    blur_kernel_size: int = field_setting(odd_integer(15))
    blur_sigma: tuple[float, float] = field_setting(numbers((0.1, 2.0), gt=0, length=2, ascending=True))
    blur_p: float = field_setting(probability(0.5))
    blur_normalize: bool = True
    temporal_flip_p: float = field_setting(probability(0.5))
    crop_scale: tuple[float, float] = field_setting(numbers((0.1, 1.0), gt=0, length=2, ascending=True))
    crop_out_frames: int = field_setting(integer(64, ge=1))
    crop_min_frames: int = field_setting(integer(64, ge=1))

    def __post_init__(self) -> None:
        # the rules declared with the defaults above (skelssl.settings), as the composed config is checked
        for name, rule in dataclass_rules(type(self)).items():
            value = getattr(self, name)
            value = list(value) if isinstance(value, tuple) else value
            wrong = rule.problem(value)
            if wrong is not None:
                raise UserError(f"augment config: '{name}' = {value!r} {wrong}")
        for name in ("blur_sigma", "crop_scale"):  # configs (YAML / OmegaConf) give lists where tuples are meant
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | None) -> "AugmentConfig":
        """Like AugmentConfig(**cfg) but an unknown key is a UserError naming it and the valid keys."""
        cfg = dict(cfg or {})
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(valid))
        if unknown:
            raise UserError(f"augment config: unknown key(s) {unknown}; valid keys: {', '.join(valid)}")
        return cls(**cfg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normal_augment(x: Tensor, generator: torch.Generator, *, shear_amplitude: float = 0.5,
                   padding_ratio: int = 6, tracker: ViewTracker | None = None, coords: int | None = None) -> Tensor:
    """AimCLR/SkeletonCLR normal augmentations T: Shear then Crop (temporal shift).
    tracker: follows the frames the crop moves (transforms.tracking); coords: module docstring."""
    x = shear(x, generator, amplitude=shear_amplitude, coords=coords)
    return temporal_crop(x, generator, padding_ratio=padding_ratio, tracker=tracker)


def extreme_augment(x: Tensor, generator: torch.Generator, layout: Layout | str, *,
                    shear_amplitude: float = 0.5, padding_ratio: int = 6, max_angle: float = 30.0,
                    minor_angle: float = 1.0, spatial_flip_p: float = 0.5, axis_mask_p: float = 0.5,
                    noise_std: float = 0.01, noise_p: float = 0.5, blur_kernel_size: int = 15,
                    blur_sigma: tuple[float, float] = (0.1, 2.0), blur_p: float = 0.5,
                    blur_normalize: bool = True, temporal_flip_p: float = 0.5,
                    tracker: ViewTracker | None = None, coords: int | None = None) -> Tensor:
    """AimCLR extreme augmentations T' (paper §3.2): all eight, in the official order (module docstring).
    tracker: follows the frames and joints that crop, spatial flip and temporal flip move."""
    x = shear(x, generator, amplitude=shear_amplitude, coords=coords)
    x = temporal_crop(x, generator, padding_ratio=padding_ratio, tracker=tracker)
    x = spatial_flip(x, generator, layout, p=spatial_flip_p, tracker=tracker)
    x = rotate(x, generator, max_angle=max_angle, minor_angle=minor_angle, coords=coords)
    x = gaussian_noise(x, generator, std=noise_std, p=noise_p)
    x = gaussian_blur(x, generator, kernel_size=blur_kernel_size, sigma=blur_sigma, p=blur_p,
                      normalize=blur_normalize)
    x = axis_mask(x, generator, p=axis_mask_p, coords=coords)
    return temporal_flip(x, generator, p=temporal_flip_p, tracker=tracker)


def normal_from_config(x: Tensor, generator: torch.Generator, cfg: AugmentConfig,
                       tracker: ViewTracker | None = None, coords: int | None = None) -> Tensor:
    return normal_augment(x, generator, shear_amplitude=cfg.shear_amplitude, padding_ratio=cfg.padding_ratio,
                          tracker=tracker, coords=coords)


def extreme_from_config(x: Tensor, generator: torch.Generator, layout: Layout | str, cfg: AugmentConfig,
                        tracker: ViewTracker | None = None, coords: int | None = None) -> Tensor:
    kwargs = {k: v for k, v in cfg.to_dict().items() if not k.startswith("crop_")}
    return extreme_augment(x, generator, layout, tracker=tracker, coords=coords, **kwargs)


def coordinate_channels(data_info: Mapping[str, Any]) -> int | None:
    """How many leading channels of the training data are coordinates, from a method's train_data_info
    ("channel_names", e.g. ["x", "y", "score"] -> 2); None = all of them."""
    names = data_info.get("channel_names") or []
    return sum(1 for name in names if name in ("x", "y", "z")) or None


# name -> fn(x, generator, layout, cfg, lengths, coords); lengths only matters for crop_resize, coords for the
# spatial ones (the leading coordinate channels, None = all).
Augmentation = Callable[..., Tensor]

AUGMENTATIONS: dict[str, Augmentation] = {
    "shear": lambda x, g, layout, cfg, lengths, coords=None: shear(x, g, amplitude=cfg.shear_amplitude,
                                                                   coords=coords),
    "temporal_crop": lambda x, g, layout, cfg, lengths, coords=None: temporal_crop(
        x, g, padding_ratio=cfg.padding_ratio),
    "crop_resize": lambda x, g, layout, cfg, lengths, coords=None: crop_resize(
        x, g, lengths, scale=cfg.crop_scale, out_frames=cfg.crop_out_frames, min_frames=cfg.crop_min_frames),
    "spatial_flip": lambda x, g, layout, cfg, lengths, coords=None: spatial_flip(x, g, _need_layout(layout),
                                                                                 p=cfg.spatial_flip_p),
    "rotate": lambda x, g, layout, cfg, lengths, coords=None: rotate(x, g, max_angle=cfg.max_angle,
                                                                     minor_angle=cfg.minor_angle, coords=coords),
    "axis_mask": lambda x, g, layout, cfg, lengths, coords=None: axis_mask(x, g, p=cfg.axis_mask_p, coords=coords),
    "gaussian_noise": lambda x, g, layout, cfg, lengths, coords=None: gaussian_noise(x, g, std=cfg.noise_std,
                                                                                     p=cfg.noise_p),
    "gaussian_blur": lambda x, g, layout, cfg, lengths, coords=None: gaussian_blur(
        x, g, kernel_size=cfg.blur_kernel_size, sigma=cfg.blur_sigma, p=cfg.blur_p, normalize=cfg.blur_normalize),
    "temporal_flip": lambda x, g, layout, cfg, lengths, coords=None: temporal_flip(x, g, p=cfg.temporal_flip_p),
}


def _need_layout(layout: Layout | str | None) -> Layout | str:
    if layout is None:
        raise UserError("augmentation 'spatial_flip' needs a skeleton layout (left/right joint pairs)")
    return layout


def apply_named(x: Tensor, generator: torch.Generator, names: list[str], layout: Layout | str | None = None,
                cfg: AugmentConfig | Mapping[str, Any] | None = None, lengths: Tensor | None = None,
                coords: int | None = None) -> Tensor:
    """Apply the augmentations `names` in the given order, with strengths from cfg (AugmentConfig, a dict of
    its fields, or None for the defaults). An unknown name is a UserError listing the valid ones.
    coords: the leading coordinate channels (module docstring)."""
    if isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise UserError(f"unknown augmentation(s) {unknown}; valid names: {', '.join(AUGMENTATIONS)}")
    if not isinstance(cfg, AugmentConfig):
        cfg = AugmentConfig.from_dict(cfg)
    for name in names:
        x = AUGMENTATIONS[name](x, generator, layout, cfg, lengths, coords)
    if not names:
        x = x.clone()  # never hand back the caller's tensor
    return x
