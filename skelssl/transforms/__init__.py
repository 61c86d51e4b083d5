"""Batched, on-device skeleton augmentations and input streams on (N, C, T, V, M) tensors."""

from skelssl.transforms.noise import gaussian_blur, gaussian_kernels, gaussian_noise
from skelssl.transforms.pipelines import (
    AUGMENTATIONS,
    AugmentConfig,
    apply_named,
    extreme_augment,
    extreme_from_config,
    normal_augment,
    normal_from_config,
)
from skelssl.transforms.spatial import axis_mask, rotate, rotation_matrices, shear, spatial_flip
from skelssl.transforms.streams import STREAMS, bone_stream, motion_stream, to_stream
from skelssl.transforms.temporal import crop_resize, temporal_crop, temporal_flip

__all__ = [
    "AUGMENTATIONS", "AugmentConfig", "apply_named", "extreme_augment", "extreme_from_config",
    "normal_augment", "normal_from_config",
    "shear", "rotate", "rotation_matrices", "spatial_flip", "axis_mask",
    "temporal_crop", "crop_resize", "temporal_flip",
    "gaussian_noise", "gaussian_blur", "gaussian_kernels",
    "STREAMS", "to_stream", "motion_stream", "bone_stream",
]
