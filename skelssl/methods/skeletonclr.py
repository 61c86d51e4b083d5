"""SkeletonCLR (Li et al. 2021, recapped in AimCLR §3.1): MoCo v2 on two normally augmented views."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from omegaconf import DictConfig
from torch import Tensor

from skelssl.methods.core.base import MoCoMethod, StageLoss
from skelssl.methods.core.losses import info_nce_loss
from skelssl.methods.registry import register_method
from skelssl.settings import integer, number

__all__ = ["SkeletonCLR", "skeletonclr_loss"]


@register_method
class SkeletonCLR(MoCoMethod):
    """Query x̂ and key x are two normal augmentations (shear + crop) of the same sequence; InfoNCE (eq. 1)
    against a FIFO queue of keys; momentum key encoder (eq. 2).

    Constants from AimCLR §4.2: queue 32768, momentum 0.999, temperature 0.07, feature dim 128.
    """

    name: ClassVar[str] = "skeletonclr"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "queue_size": integer(32768, ge=1),
        "momentum": number(0.999, ge=0, lt=1),
        "temperature": number(0.07, gt=0),
        "feature_dim": integer(128, ge=1),
    }

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        return skeletonclr_loss(self, batch, self.cfg.method)

    @classmethod
    def stage_loss(cls, section: DictConfig) -> StageLoss:
        return partial(skeletonclr_loss, section=section)


def skeletonclr_loss(method: MoCoMethod, batch: dict[str, Tensor], section: DictConfig
                     ) -> tuple[Tensor, dict[str, Any]]:
    """SkeletonCLR's loss on `method`'s networks, queue and generator, with `section` as its method.* keys."""
    x = batch["x"]
    query_view = method.to_stream(method.augment_normal(x))
    key_view = method.to_stream(method.augment_normal(x))
    h, z_query = method.encode_query(query_view)
    method.watch(backbone=h, projector=z_query)
    z_key = method.encode_key(key_view)
    method.expose(query=z_query, key=z_key)
    bank, keep = method.negatives(z_query, z_key)
    loss = info_nce_loss(z_query, z_key, bank, section.temperature, keep)  # eq. 1
    method.enqueue(z_key)
    return loss, {"info_nce": loss.detach()}
