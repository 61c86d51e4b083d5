"""ActCLR+ (Lin, Zhang & Liu, TPAMI 2025): actionlet contrast and reconstruct, on ActCLR's steps.

No public code exists for its new modules; this is written from the paper (§IV, eqs. 30-50). Every choice the
paper leaves open is listed in the class docstring and in docs/fidelity_actclr_plus.md.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import torch
from torch import Tensor

from skelssl.errors import UserError
from skelssl.methods.actclr.actclr import ActCLR
from skelssl.methods.actclr.actionlet import Objective, upsample_to_frames
from skelssl.methods.actclr.inter_sd import actionlet_shares, mixed_target
from skelssl.methods.actclr.mats import mats_plus
from skelssl.methods.actclr.prototypes import ActionPrototypes, TripletObjective, cluster_prototypes, triplet_objective
from skelssl.methods.actclr.sam import MaskedMotionDecoder, gumbel_topk_mask, masked_mse, motion_target
from skelssl.methods.registry import register_method
from skelssl.models.passes import frozen_statistics, side_effect_free
from skelssl.models.pooling import pool
from skelssl.settings import choice, count_range, integer, number, numbers, probability, texts
from skelssl.transforms.masking import ADVERSARIAL_MATRICES, PADDINGS
from skelssl.transforms.mixing import skeleton_mix_with_mask
from skelssl.transforms.tracking import ViewTracker, downsample_frames

__all__ = ["ActCLRPlus"]

SAM_TARGETS = ("motion", "actionlet", "both")


def phase(name: str) -> torch.profiler.record_function:
    """A named region of the step for torch.profiler (benchmarks/bench_methods.py --phases); free otherwise."""
    return torch.profiler.record_function(f"actclr_plus/{name}")


@register_method
class ActCLRPlus(ActCLR):
    """ActCLR+ (§IV): ActCLR's steps with prototype anchors, a stronger MATS, two distillation losses and SAM³.

    Step by step (`training_loss`), for a batch X:
    1. Actionlet (§IV-A, eqs. 33-38): the offline encoder on X; the anchor objective is the triplet loss of
       eq. 36 (prototypes.py): the nearest action prototype positive, the average motion's embedding b
       negative, margin γ (`triplet_margin`; `triplet_hinge=false` drops the [.]_+, whose zero region leaves
       a sequence without actionlet); channel weights from the positive part of its gradient
       (eq. 37), A = [Σ_c α_c h]_+ G (eq. 38), the selector ActCLR uses. Prototypes: spherical k-means
       (eq. 33) of the offline embeddings g_k(GAP(f_k(x))) of every training sequence, unaugmented, in one
       side-effect-free pass (MoCoMethod.encode_all); computed at the start of every epoch after the warm-up
       (`prototype_every`, 1: a stale set leaves eq. 36's hinge at zero, see docs/fidelity_actclr_plus.md;
       each refresh's seconds and share of its epoch are logged: prototype_seconds, prototype_share); saved
       in the checkpoint. `train/hinge_active`: the share of sequences whose eq. 36 hinge is active.
    2. Views x_q, x_k (normal augmentations) and MATS on x_q (eqs. 40-44, mats.mats_plus): T_act = AimCLR's
       eight extreme augmentations; T_non = dropout + rescale, the adversarial transformation (one FGSM step of
       size `adversarial_epsilon` against eq. 36 through the offline encoder on each of eq. 16's mask, shear
       and noise matrices, eq. 42, `adversarial_matrices`; then Gaussian noise) and the skeleton mask (eq. 43,
       `mask_padding` zero | noise | sequence); eq. 44 combines them.
    3. Intra-SD (eq. 45): z_q = g_q(GAP(f_q(x_trans))), z_k = g_k(GAP(f_k(x_k))), −P_k log P_q over the bank,
       τq 0.1, τk 0.04 (ActCLR's eq. 9 and its options `mining_*`).
    4. Inter-SD (eqs. 46-48, inter_sd.py): x_q mixed with a partner's x_q by CutMix, ResizeMix (body parts)
       or Mixup, one at random (1/3 each); target z̃_k = a/(a+b) z_k + b/(a+b) z'_k by actionlet shares.
    5. SAM³ (eqs. 49-50, sam.py): x_q with Gumbel-sampled actionlet tokens hidden, encoded by f_q, a light
       decoder reconstructs "both the skeleton data of actionlets and the actionlet regions" (§IV-C):
       the motion of the hidden tokens and the actionlet map (`sam_target=both`); `motion` or `actionlet`
       (eq. 50 as printed) alone. Inter-SD's and SAM³'s passes through f_q run in
       passes.frozen_statistics: their BatchNorms normalise with the batch but only the MATS query moves
       the running statistics the probes use.
    L = intra_sd_weight·L_KL + inter_sd_weight·L_MX + sam_weight·L_RC (weights 1: the paper gives none);
    the bank takes z_k. Every module has a switch: `intra_sd`, `inter_sd`, `sam` (Table IX) and `t_act`,
    `t_non`, `adversarial`, `skeleton_mask` (Table XI).

    Choices where the paper is open (docs/fidelity_actclr_plus.md): the number of prototypes (0 = the
    number of action classes of the training set), refresh every epoch, 30 k-means iterations; γ = 0.2;
    ε = 0.03 and Gaussian σ = 0.03 (together about ActCLR's 0.05 noise); dropout 0.1, rescale U(0.8, 1.2);
    the skeleton mask hides one limb for the whole sequence with p = 0.5, padded with a partner sequence;
    the offline pooling is GAP (eq. 45 has no SAFP; `offline_pool=safp` uses ActCLR's); Inter-SD mixes the
    normal views x_q (before MATS); SAM³ masks half of the tokens (τ 0.25). The warm-up stage (MoCo v2,
    ActCLR's training overview) is on in the shipped config, as for ActCLR. Constants from §V-A: ST-GCN
    (16 hidden), 256 -> 128, τq 0.1, τk 0.04, Adam, batch 128, 300 epochs.
    """

    name: ClassVar[str] = "actclr_plus"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        **{key: ActCLR.DEFAULTS[key] for key in (
            "queue_size", "momentum", "feature_dim", "temperature_query", "temperature_key", "anchor", "anchor_batch",
            "actionlet_map", "actionlet_threshold", "actionlet_smooth", "actionlet_soft", "safp", "safp_global_mix",
            "mining_topk", "mining_exclude_above", "mining_square_query", "warmup")},
        # action prototypes (eq. 33) and the triplet anchor (eq. 36)
        "num_prototypes": integer(0, ge=0),  # 0 = the number of action classes of the training set
        "prototype_every": integer(1, ge=1),  # epochs between refreshes (1: fresh, the hinge stays active)
        "prototype_iterations": integer(30, ge=1),
        "triplet_margin": number(0.2, ge=0),  # γ
        "triplet_hinge": True,         # eq. 36's [.]_+ as printed; false: every sequence gets a gradient
        # MATS (eqs. 40-44); Table XI's switches
        "t_act": True,
        "t_non": True,                 # dropout + rescale
        "dropout_p": number(0.1, ge=0, lt=1),
        "rescale": numbers([0.8, 1.2], gt=0, length=2, ascending=True),
        "adversarial": True,
        "adversarial_epsilon": number(0.03, ge=0),  # ε of eq. 42
        # the matrices of eq. 16 that eq. 42 steps ("the three matrices"): mask, shear, noise
        "adversarial_matrices": texts(list(ADVERSARIAL_MATRICES), *ADVERSARIAL_MATRICES, min_length=1),
        "adversarial_noise_std": number(0.03, ge=0),
        "skeleton_mask": True,
        "mask_padding": choice("sequence", *PADDINGS),  # eq. 43's d: zero | noise | sequence
        "mask_p": probability(0.5),
        "mask_parts": count_range([1, 1]),
        # similarity distillation (eqs. 45-48); Table IX's switches
        "offline_pool": choice("gap", "gap", "safp"),  # "gap" = eq. 45; "safp" = ActCLR's eq. 8 (mode `safp`)
        "intra_sd": True,
        "intra_sd_weight": number(1.0, ge=0),
        "inter_sd": True,
        "inter_sd_weight": number(1.0, ge=0),
        "mix_probs": numbers([1 / 3, 1 / 3, 1 / 3], ge=0, length=3),  # Mixup, CutMix, ResizeMix
        "mix_parts": count_range([2, 3]),
        "mix_blocks": count_range([3, 5]),
        "mix_block_frames": integer(4, ge=1),
        # SAM³ (eqs. 49-50)
        "sam": True,
        "sam_weight": number(1.0, ge=0),
        "sam_target": choice("both", *SAM_TARGETS),  # both (§IV-C's text) | motion | actionlet (eq. 50 as printed)
        "sam_mask_ratio": number(0.5, gt=0, lt=1),
        "sam_temperature": number(0.25, gt=0),
        "sam_hidden": integer(64, ge=1),
    }

    def __init__(self, cfg, layout, train_data_info=None):
        super().__init__(cfg, layout, train_data_info)
        m = self.cfg.method
        _validate(m)
        self.prototypes = ActionPrototypes()
        channels = int(self.train_data_info.get("channels", 3))
        self.decoder = MaskedMotionDecoder(self.encoder_q.feature_dim, channels,
                                           MaskedMotionDecoder.frames_per_token_of(self.encoder_q), self.layout,
                                           hidden=int(m.sam_hidden))
        self.prototype_seconds = 0.0
        self._epoch_started: float | None = None
        self.last_objective: TripletObjective | None = None  # of the last actionlet pass (its hinge share)

    def learnable_params(self) -> list[dict[str, Any]]:
        return super().learnable_params() + [{"name": "sam_decoder", "params": list(self.decoder.parameters())}]

    # ----- action prototypes (eq. 33) --------------------------------------------------------------------------
    def num_prototypes(self) -> int:
        k = int(self.cfg.method.num_prototypes) or int(self.train_data_info.get("num_classes", 0))
        if k < 1:
            raise UserError("ActCLR+ needs method.num_prototypes (the number of action prototypes, eq. 33): the "
                            "training set does not say how many action classes it has")
        return k

    @torch.no_grad()
    def refresh_prototypes(self, data: Any = None, rows: Any = None, epoch: int = 0,
                           batch_size: int | None = None) -> None:
        """Eq. 33 over the fit's training set, or over a (N, C, T, V, M) array or memmap `data` (optionally
        only its `rows`): the offline embeddings of the unaugmented sequences (MoCoMethod.encode_all),
        clustered on the hypersphere."""
        embeddings = self.encode_all(lambda x: self.projector_k(self.encoder_k(x)),  # kmeans normalises
                                     "the action prototypes (eq. 33)", data, rows=rows, batch_size=batch_size,
                                     desc="ActCLR+ prototypes: offline embeddings")
        generator = torch.Generator(device=self.device).manual_seed(int(self.cfg.trainer.seed) * 1000 + epoch)
        self.prototypes.set(cluster_prototypes(embeddings, self.num_prototypes(), generator,
                                               int(self.cfg.method.prototype_iterations)), epoch)

    def prototypes_due(self, epoch: int) -> bool:
        """Whether eq. 33's prototypes are to be (re)computed at the start of `epoch`: every `prototype_every`
        epochs from the first one after the warm-up, once per epoch."""
        if self.warmup is not None and self.warmup.active(epoch):  # `epoch`, not the trainer's current one
            return False
        start = self.warmup.epochs if self.warmup is not None else 0
        due = not self.prototypes.is_set or (epoch - start) % int(self.cfg.method.prototype_every) == 0
        return due and int(self.prototypes.epoch) != epoch

    def on_train_epoch_start(self) -> None:
        self._epoch_started = time.perf_counter()
        self.prototype_seconds = 0.0
        epoch = self.current_epoch
        if self.prototypes_due(epoch):
            self.refresh_prototypes(epoch=epoch)
            self.prototype_seconds = time.perf_counter() - self._epoch_started

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self._epoch_started is not None and self.prototype_seconds > 0:
            share = self.prototype_seconds / max(time.perf_counter() - self._epoch_started, 1e-9)
            self.log("train/prototype_seconds", self.prototype_seconds)
            self.log("train/prototype_share", share)

    # ----- step 1: the actionlet (eqs. 36-38) -----------------------------------------------------------------
    def actionlet_objective(self, z_anchor: Tensor) -> Objective:
        """Eq. 36: [sim(z, p) − sim(z, b) + γ]_+, p the nearest prototype, b the average motion's embedding;
        kept in `last_objective`, whose `active_share` training logs as hinge_active."""
        self.last_objective = triplet_objective(self.projector_k, self.prototypes, z_anchor,
                                                float(self.cfg.method.triplet_margin),
                                                hinge=bool(self.cfg.method.triplet_hinge))
        return self.last_objective

    # ----- step 2: MATS (eqs. 40-44) -----------------------------------------------------------------------------
    def attack_gradient(self, x_query: Tensor, actionlet: Tensor) -> Tensor:
        """∇_{X_non} I_triplet (eq. 42) for the query x_query = A ⊙ X_act + (1 − A) ⊙ X_non: (1 − A) ⊙ ∇I,
        through the offline encoder in a side-effect-free pass (its parameters get no gradient); the gradients
        of eq. 16's three matrices follow from it (transforms.masking.adversarial_step)."""
        x = x_query.detach().requires_grad_(True)
        objective = self.actionlet_objective(self.anchor_embedding)
        with side_effect_free(self.encoder_k, self.projector_k), torch.enable_grad():
            value = objective(pool(self.encoder_k.features(self.to_stream(x)))).sum()
            (gradient,) = torch.autograd.grad(value, x)
        a = actionlet.permute(0, 2, 3, 1).unsqueeze(1).to(x.dtype)  # (N, 1, T, V, M)
        return (1 - a) * gradient

    def transform_query(self, x_query: Tensor, actionlet_frames: Tensor, tracker: ViewTracker) -> Tensor:
        m = self.cfg.method
        x_trans, _ = mats_plus(
            x_query, actionlet_frames, self.generator, self.layout, extreme=self.augment_extreme, tracker=tracker,
            t_act=bool(m.t_act), t_non=bool(m.t_non), dropout_p=float(m.dropout_p), scale=list(m.rescale),
            attack=self.attack_gradient if m.adversarial else None, epsilon=float(m.adversarial_epsilon),
            attack_noise_std=float(m.adversarial_noise_std), attack_matrices=list(m.adversarial_matrices),
            mask=bool(m.skeleton_mask),
            mask_padding=m.mask_padding, mask_p=float(m.mask_p), mask_parts=list(m.mask_parts))
        return x_trans

    @torch.no_grad()
    def encode_offline(self, x_key: Tensor, actionlet_frames: Tensor, tracker: ViewTracker) -> Tensor:
        """z_k = g_k(GAP(f_k(x_k))) (eq. 45); `offline_pool=safp` pools with the actionlet (ActCLR eq. 8)."""
        if self.cfg.method.offline_pool == "safp":
            return super().encode_offline(x_key, actionlet_frames, tracker)
        return self.encode_key(self.to_stream(x_key))

    # ----- steps 4 and 5: Inter-SD (eqs. 46-48) and SAM³ (eqs. 49-50) ------------------------------------------
    def inter_sd_loss(self, x_query: Tensor, actionlet: Tensor, z_key: Tensor) -> tuple[Tensor, Tensor]:
        """L_MX (eq. 48) for the query views x_query and their actionlet (N, M, T, V) in the views' coordinates;
        returns (loss, a / (a + b) per sample)."""
        m = self.cfg.method
        mix = skeleton_mix_with_mask(x_query, self.generator, self.layout, probs=list(m.mix_probs),
                                     parts=list(m.mix_parts), blocks=list(m.mix_blocks),
                                     block_frames=int(m.mix_block_frames))  # eq. 46
        a, b = actionlet_shares(mix, actionlet)
        target = mixed_target(z_key, mix.partner, a, b)  # eq. 47
        with frozen_statistics(self.encoder_q, self.projector_q):  # a side input: no running statistic moves
            _, z_mixed = self.encode_query(self.to_stream(mix.mixed))
        return self.mining_loss(z_mixed, target), (a / (a + b).clamp_min(1e-12)).detach()

    def sam_loss(self, x_query: Tensor, scores: Tensor, actionlet: Tensor) -> Tensor:
        """L_RC (eq. 50) for the query views, with the actionlet scores and map (N, M, T, V) in their
        coordinates."""
        m = self.cfg.method
        x = self.to_stream(x_query)
        num_frames = x.shape[2]
        tokens = self.encoder_q.feature_frames(num_frames)
        hidden = gumbel_topk_mask(downsample_frames(scores, tokens), float(m.sam_mask_ratio),
                                  float(m.sam_temperature), self.generator)  # (N, M, T', V)
        hidden_frames = upsample_to_frames(hidden.to(x.dtype), num_frames)  # (N, M, T, V)
        keep = (1 - hidden_frames).permute(0, 2, 3, 1).unsqueeze(1)  # (N, 1, T, V, M)
        with frozen_statistics(self.encoder_q):  # a side input: no running statistic moves
            dense = self.encoder_q.features(x * keep)  # eq. 49
        motion, actionlet_map = self.decoder(dense, num_frames)
        present = (x.abs().amax(dim=(1, 2, 3)) > 0).to(x.dtype)  # (N, M): absent persons are left out
        loss = x.new_zeros(())
        if m.sam_target in ("motion", "both"):
            target = motion_target(x)
            weights = (hidden_frames * present[:, :, None, None]).permute(0, 2, 3, 1).unsqueeze(1)
            scale = target.pow(2).mean(dim=(1, 2, 3)).mul(present).sum().div(present.sum().clamp_min(1)).sqrt()
            loss = loss + masked_mse(motion, target / scale.clamp_min(1e-6), weights)
        if m.sam_target in ("actionlet", "both"):
            target = downsample_frames(actionlet, tokens)
            loss = loss + masked_mse(actionlet_map, target, present[:, :, None, None])  # eq. 50 as printed
        return loss

    # ----- the step -----------------------------------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        m = self.cfg.method
        x = batch["x"]
        with phase("actionlet"):
            scores, mask = self.actionlet_maps(self.to_stream(x))  # step 1, on the original X
        hinge_active = self.last_objective.active_share  # before the attack evaluates eq. 36 again
        actionlet = scores if m.actionlet_soft else mask
        actionlet_frames = upsample_to_frames(actionlet, x.shape[2])
        x_query, x_key, query_tracker, key_tracker = self.views(x)
        # in the query views' own coordinates, before MATS moves them further (Inter-SD and SAM³ use x_q)
        query_actionlet = query_tracker.carry(actionlet_frames)
        query_scores = query_tracker.carry(upsample_to_frames(scores, x.shape[2]))
        with phase("mats"):
            x_trans = self.transform_query(x_query, actionlet_frames, query_tracker)  # step 2
        with phase("query"):
            h_query, z_query = self.encode_query(self.to_stream(x_trans))
        self.watch(backbone=h_query, projector=z_query)
        with phase("key"):
            z_key = self.encode_offline(x_key, actionlet_frames, key_tracker)
        self.expose(query=z_query, key=z_key)
        loss = z_query.new_zeros(())
        logs: dict[str, Any] = {"actionlet_fraction": actionlet.mean().detach(), "hinge_active": hinge_active}
        if m.intra_sd:
            intra = self.mining_loss(z_query, z_key)  # eq. 45
            loss = loss + float(m.intra_sd_weight) * intra
            logs["intra_sd"] = intra.detach()
        if m.inter_sd:
            with phase("inter_sd"):
                inter, weight_own = self.inter_sd_loss(x_query, query_actionlet, z_key)  # eqs. 46-48
            loss = loss + float(m.inter_sd_weight) * inter
            logs.update(inter_sd=inter.detach(), inter_sd_own_weight=weight_own.mean())
        if m.sam:
            with phase("sam"):
                reconstruction = self.sam_loss(x_query, query_scores, query_actionlet)  # eqs. 49-50
            loss = loss + float(m.sam_weight) * reconstruction
            logs["sam"] = reconstruction.detach()
        self.enqueue(z_key)
        self.last_actionlet = actionlet.detach()
        return loss, logs

def _validate(m: Any) -> None:
    if not (m.intra_sd or m.inter_sd or m.sam):
        raise UserError("ActCLR+ with method.intra_sd, method.inter_sd and method.sam all false has no loss; "
                        "switch at least one on")
