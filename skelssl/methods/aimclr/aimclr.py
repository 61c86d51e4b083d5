"""AimCLR (Guo et al., AAAI 2022): extreme augmentations, EADM, D³M loss and nearest-neighbour mining."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor

from skelssl.methods.aimclr.eadm import EnergyAttentionDrop
from skelssl.methods.aimclr.nnm import nearest_neighbor_positives, nnm_loss
from skelssl.methods.core.base import MoCoMethod, StageLoss
from skelssl.methods.core.losses import distribution_cross_entropy, info_nce_logits
from skelssl.methods.skeletonclr import SkeletonCLR
from skelssl.methods.registry import register_method
from skelssl.models.pooling import pool
from skelssl.settings import choice, integer, number, probability

__all__ = ["AimCLR", "aimclr_loss", "d3m_loss"]


def d3m_loss(logits_normal: Tensor, logits_extreme: Tensor, logits_drop: Tensor) -> Tensor:
    """L_D = ½ (L_d1 + L_d2) (eqs. 7-8): the normal query's distribution over {z} ∪ M (eqs. 4-5), detached,
    supervises those of the extreme and the dropped-extreme queries. All logits already divided by τ."""
    return 0.5 * (distribution_cross_entropy(logits_normal, logits_extreme)
                  + distribution_cross_entropy(logits_normal, logits_drop))


@register_method
class AimCLR(MoCoMethod):
    """AimCLR on the shared MoCo v2 core (AimCLR §3).

    Views (§3.2): key x and query x̂ by the normal augmentations (shear + crop), x̃ by the eight extreme ones.
    EADM (§3.3) drops the most important joints/frames of the query encoder's last feature map of x̃, giving
    z̃_drop from the same forward pass as z̃. Loss (§3.5): stage 1 α·InfoNCE + β·L_D, from epoch
    `nnm_start_epoch` (0-based; 150 of 300 in the paper) α·L_N + β·L_D, α = β = 1.
    Constants (§4.2): queue 32768, m 0.999, τ 0.07, 128-d, NNM k = 1.
    """

    name: ClassVar[str] = "aimclr"
    requires_dense_features: ClassVar[bool] = True  # EADM drops joints and frames of the last feature map
    DEFAULTS: ClassVar[dict[str, Any]] = {
        **SkeletonCLR.DEFAULTS,    # the MoCo constants of §4.2 are SkeletonCLR's
        "info_weight": number(1.0, ge=0),  # α
        "d3m_weight": number(1.0, ge=0),  # β
        "nnm_start_epoch": integer(150, ge=0),  # stage 2's first epoch (0-based); >= max_epochs: no NNM
        "nnm_topk": integer(1, ge=1),
        "nnm_reduction": choice("sum", "sum", "mean"),  # "sum" = eq. 9; "mean" = official code
        "eadm_lambda": number(1.0e-4, gt=0),  # λ of eq. 3
        "eadm_keep_margin": probability(0.7),
        # per-frame M_t on the map's range (eadm.py); "element" = official code
        "eadm_temporal": choice("relative", "relative", "element", "frame"),
        "eadm_renorm": choice("sample", "sample", "batch"),  # "sample" = Algorithm 1 per feature; "batch" = code
        "eadm_unbiased": False,    # variance over N (paper) or N-1 (SimAM / official code)
    }

    def __init__(self, cfg, layout=None, train_data_info=None):
        super().__init__(cfg, layout, train_data_info)
        self.eadm = energy_attention_drop(self.cfg.method)

    def nnm_active(self) -> bool:
        return self.current_epoch >= int(self.cfg.method.nnm_start_epoch)

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        return aimclr_loss(self, batch, self.cfg.method, self.eadm)

    @classmethod
    def stage_loss(cls, section: DictConfig) -> StageLoss:
        return partial(aimclr_loss, section=section, eadm=energy_attention_drop(section))  # EADM: parameter-free


def energy_attention_drop(section: DictConfig) -> EnergyAttentionDrop:
    return EnergyAttentionDrop(lam=section.eadm_lambda, keep_margin=section.eadm_keep_margin,
                               temporal=section.eadm_temporal, renorm=section.eadm_renorm,
                               unbiased=section.eadm_unbiased)


def aimclr_loss(method: MoCoMethod, batch: dict[str, Tensor], section: DictConfig, eadm: EnergyAttentionDrop
                ) -> tuple[Tensor, dict[str, Any]]:
    """AimCLR's loss on `method`'s networks, queue and generator, with `section` as its method.* keys."""
    x = batch["x"]
    x_hat = method.to_stream(method.augment_normal(x))      # query x̂ (normal)
    x_tilde = method.to_stream(method.augment_extreme(x))   # query x̃ (extreme)
    x_key = method.to_stream(method.augment_normal(x))      # key x (normal)

    h_hat, z_hat = method.encode_query(x_hat)
    method.watch(backbone=h_hat, projector=z_hat)
    dense = method.encoder_q.features(x_tilde)              # (N, M, C, T', V)
    z_tilde = F.normalize(method.projector_q(pool(dense)), dim=1)
    z_drop = F.normalize(method.projector_q(pool(eadm(dense))), dim=1)  # EADM, Alg. 1
    z_key = method.encode_key(x_key)
    method.expose(query=z_hat, key=z_key)

    bank, keep = method.negatives(z_hat, z_key)  # the bank changes only after backward (MoCoMethod.enqueue)
    tau = float(section.temperature)
    logits_hat = info_nce_logits(z_hat, z_key, bank, tau, keep)      # eqs. 1, 4-5
    logits_tilde = info_nce_logits(z_tilde, z_key, bank, tau, keep)
    logits_drop = info_nce_logits(z_drop, z_key, bank, tau, keep)
    loss_d = d3m_loss(logits_hat, logits_tilde, logits_drop)  # eqs. 7-8

    logs: dict[str, Any] = {"d3m": loss_d.detach(), "eadm_joint_drop": eadm.last_drop_rates["joint"],
                            "eadm_frame_drop": eadm.last_drop_rates["frame"]}
    if method.current_epoch >= int(section.nnm_start_epoch):  # stage 2
        positives = nearest_neighbor_positives(
            [logits_hat[:, 1:], logits_tilde[:, 1:], logits_drop[:, 1:]], k=int(section.nnm_topk))
        loss_main = nnm_loss(logits_hat, positives, section.nnm_reduction)  # eq. 9
        logs["nnm"] = loss_main.detach()
        logs["neighbors"] = positives.sum(dim=1).float().mean().detach()
    else:
        loss_main = F.cross_entropy(logits_hat, logits_hat.new_zeros(x.shape[0], dtype=torch.long))  # eq. 1
        logs["info_nce"] = loss_main.detach()
    method.enqueue(z_key)
    loss = float(section.info_weight) * loss_main + float(section.d3m_weight) * loss_d
    return loss, logs
