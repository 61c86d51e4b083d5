"""ActCLR (Lin, Zhang & Liu, CVPR 2023): actionlet-dependent contrastive learning on the shared MoCo core."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from skelssl.methods.actclr.actionlet import (ACTIONLET_MAPS, ActionletSelector, AverageMotionAnchor, Objective,
                                              anchor_similarity_objective, upsample_to_frames)
from skelssl.methods.actclr.mats import mats
from skelssl.methods.actclr.safp import SAFP_MODES, safp_key
from skelssl.methods.core.base import MoCoMethod
from skelssl.methods.core.losses import distribution_cross_entropy, remove_entries, similarity_to_bank
from skelssl.methods.registry import register_method
from skelssl.models.passes import side_effect_free
from skelssl.models.pooling import pool
from skelssl.transforms.tracking import ViewTracker, downsample_frames
from skelssl.settings import choice, count_range, integer, number, numbers, optional, probability, text

__all__ = ["ActCLR", "similarity_mining_loss"]


def similarity_mining_loss(z_query: Tensor, z_key: Tensor, bank: Tensor, tau_query: float = 0.1,
                           tau_key: float = 0.04, *, topk: int = 0, exclude_above: float | None = None,
                           square_query: bool = False, keep: Tensor | None = None) -> Tensor:
    """Eq. 9: −p_k · log p_q with p = SoftMax(sim(z, M) / τ) over the memory bank M, batch mean.

    Official-code options (off by default): `exclude_above` sets key similarities above it to −1 (near-
    duplicates of the key), `topk` keeps only the key's top-k bank entries on both sides, `square_query`
    squares the query similarities before the temperature. keep: (N, K) bank entries each query may use
    (MoCoMethod.negatives), None for all.
    """
    sim_q = similarity_to_bank(z_query, bank)  # float32 under mixed precision too
    with torch.no_grad():
        sim_k = similarity_to_bank(z_key, bank)
        if exclude_above is not None:
            sim_k = sim_k.masked_fill(sim_k > exclude_above, -1.0)
    if square_query:
        sim_q = sim_q.pow(2)
    logits_k, logits_q = remove_entries(sim_k / tau_key, keep), remove_entries(sim_q / tau_query, keep)
    if topk and topk < bank.shape[0]:
        logits_k, index = logits_k.topk(topk, dim=1)
        logits_q = logits_q.gather(1, index)
    return distribution_cross_entropy(logits_k, logits_q)


@register_method
class ActCLR(MoCoMethod):
    """ActCLR (ActCLR §3, "Training Overview" steps 1-6), one overridable method per step.

    1) MoCo v2 online/offline encoders. 2) `actionlet`: the offline encoder finds the actionlet A of the
    original sequence X (§3.1; static anchor = the training-set average motion, eq. 2, computed at fit start).
    3) `views`: two normal views X_q, X_k; `transform_query`: MATS (eqs. 6-7) on X_q. 4) z_q =
    g_q(GAP(f_q(MATS(X_q)))), `encode_offline`: z_k = g_k(SAFP(f_k(X_k))) (eq. 8). 5) FIFO bank of z_k.
    6) `mining_loss`: similarity mining (eq. 9), τq 0.1, τk 0.04.
    Paper constants: ST-GCN hidden 16, 256 -> 128, Adam, batch 128. The paper gives no queue size or key
    momentum: 65536 (official config) and 0.999 (MoCo v2 / AimCLR).

    The actionlet is computed once on X and moved with each view's crops and flips (transforms.tracking), so
    MATS and SAFP use it on the frames and joints where it was found.

    Eq. 9 is the whole loss: it matches the query's similarity distribution to the key's, and nothing in it
    pushes against a collapse (identical outputs give uniform distributions on both sides, which match).
    From scratch on small data it collapses (see docs/results.md). Step 1 of the training overview starts
    from encoders pre-trained with MoCo v2: `method.warmup` runs that stage inside the same run
    (core/warmup.py): the first `warmup.epochs` epochs train the same networks with `warmup.method`'s loss
    (skeletonclr = MoCo v2, the paper; aimclr = the official code's start). The shipped config turns it on
    (100 warm-up epochs, then the paper's 300); `method.warmup.epochs=0` turns it off.
    """

    name: ClassVar[str] = "actclr"
    requires_dense_features: ClassVar[bool] = True  # actionlets and SAFP live on the (T', V) feature map
    RENAMED_STATE: ClassVar[dict[str, str]] = {"selector.anchor": "static_anchor.sequence"}
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "queue_size": integer(65536, ge=1),
        "momentum": number(0.999, ge=0, lt=1),
        "feature_dim": integer(128, ge=1),
        "temperature_query": number(0.1, gt=0),  # τq, eq. 9
        "temperature_key": number(0.04, gt=0),  # τk, eq. 9
        # "dataset" = eq. 2 (paper); "batch" = batch mean (official code)
        "anchor": choice("dataset", "dataset", "batch"),
        # BatchNorm batch of the anchor's encoding: "shared" = one batch with the sequences (ours: both are
        # normalised with the same statistics); "own" = a batch of its own (official code); the paper is silent
        "anchor_batch": choice("shared", "shared", "own"),
        # eq37 = ActCLR+ eq. 37 ([·]₊ on the gradient, then eq. 5); official = LanglandsLin/ActCLR's _generate_mask
        # (signed channel-mean gradient, ReLU after the channel mean, binary per body part)
        "actionlet_map": choice("eq37", *ACTIONLET_MAPS),
        "actionlet_threshold": probability(0.5),  # on the max-normalised A of eq. 5 (eq37 only)
        "actionlet_smooth": True,      # G of eq. 5 (eq37 only)
        "actionlet_soft": False,       # use the normalised scores instead of the thresholded region
        # "paper" = g(SAFP(h)), eq. 8; "code" = global_mix·g(GAP(h)) + (1-global_mix)·g(masked mean), the official
        "safp": choice("paper", *SAFP_MODES),
        "safp_global_mix": probability(0.5),
        "adain_p": probability(0.5),
        # the clip of Skeleton AdaIN's gain σ(X^j)/σ(X^i) to [1/r, r]; null = eq. 6 as printed (unbounded)
        "adain_max_ratio": optional(number(2.0, ge=1)),
        "noise_std": number(0.05, ge=0),  # "larger" noise of T_non (Table 7's best, 0.05)
        "mix_probs": numbers([0.25, 0.5, 0.25], ge=0, length=3),  # Mixup, CutMix, ResizeMix
        "mix_parts": count_range([2, 3]),
        "mix_blocks": count_range([3, 5]),
        "mix_block_frames": integer(4, ge=1),
        "mining_topk": integer(0, ge=0),  # 0 = the whole bank (paper); official code 8192
        "mining_exclude_above": optional(number(None, ge=-1, le=1)),  # official code 0.95
        "mining_square_query": False,  # official code squares the query similarities
        # step 1 of the training overview (MoCo v2 pre-training) as a stage of the same run; off here, on in
        # the shipped config (configs/methods/actclr.yaml). overrides: the warm-up method's own keys.
        "warmup": {"method": text("skeletonclr"), "epochs": integer(0, ge=0), "overrides": None},
    }

    def __init__(self, cfg, layout, train_data_info=None):
        super().__init__(cfg, layout, train_data_info)
        m = self.cfg.method
        self.static_anchor = AverageMotionAnchor(source=m.anchor)
        self.selector = ActionletSelector(self.layout, threshold=m.actionlet_threshold, smooth=m.actionlet_smooth,
                                          map=m.actionlet_map)
        self.last_actionlet: Tensor | None = None  # (N, M, T', V) of the last step, for analysis
        self.anchor_embedding: Tensor | None = None  # z̄ (1, D) of the last actionlet pass

    # ----- static anchor (eq. 2) ---------------------------------------------------------------------------
    @torch.no_grad()
    def update_anchor(self, data: Any = None, rows: Any = None) -> None:
        """Recompute the average motion X̄ (eq. 2) over the fit's training set, or over a (N, C, T, V, M)
        array or memmap `data` (optionally only its `rows`), read by MoCoMethod.training_batches; call again
        whenever the training data changes."""
        total, count = None, 0
        for _, x, valid in self.training_batches("the average motion (eq. 2)", data, rows=rows):
            part = self.clean_view(x, valid).double().sum(dim=0)  # float64: a sum over the whole set
            total, count = (part if total is None else total + part), count + x.shape[0]
        if not count:
            raise ValueError("the average motion needs at least one training sequence")
        average = (total / count).float()
        self.static_anchor.set(self.to_stream(average.unsqueeze(0))[0])  # streams are linear in X

    def on_fit_start_hook(self) -> None:
        if self.cfg.method.anchor != "dataset" or self.static_anchor.is_set:
            return  # batch anchor, or resumed from a checkpoint that holds the anchor
        self.update_anchor()

    # ----- the steps -----------------------------------------------------------------------------------------
    def actionlet_objective(self, z_anchor: Tensor) -> Objective:
        """The anchor objective whose gradient locates the actionlet: −sim(z, z̄) (eq. 3)."""
        return anchor_similarity_objective(self.projector_k, z_anchor)

    def actionlet_maps(self, x_stream: Tensor) -> tuple[Tensor, Tensor]:
        """Step 2: (scores in [0, 1], binary mask), both (N, M, T', V), of the offline encoder for sequences
        already in the input stream; the anchor's embedding z̄ is kept in `self.anchor_embedding`.

        A side-effect-free pass: no dropout (the mask of a sequence is the same from pass to pass) and the
        offline encoder's BatchNorm statistics do not move. With method.anchor_batch=shared the anchor goes
        through the encoder in the same batch as x, so BatchNorm normalises both with the same statistics; with
        `own` it is encoded as a batch of its own, as the authors' code does."""
        anchor = self.static_anchor.sequence_for(x_stream)
        with side_effect_free(self.encoder_k, self.projector_k):
            with torch.no_grad():
                if self.cfg.method.anchor_batch == "own":
                    dense, anchor_dense = self.encoder_k.features(x_stream), self.encoder_k.features(anchor)
                else:
                    both = self.encoder_k.features(torch.cat([x_stream, anchor]))
                    dense, anchor_dense = both[:-1], both[-1:]
                self.anchor_embedding = self.projector_k(pool(anchor_dense))  # z̄, eq. 3
            return self.selector.select(dense, self.actionlet_objective(self.anchor_embedding))

    def actionlet(self, x_stream: Tensor) -> Tensor:
        """Step 2: the actionlet (N, M, T', V): the binary region, or its scores with method.actionlet_soft."""
        scores, mask = self.actionlet_maps(x_stream)
        return scores if self.cfg.method.actionlet_soft else mask

    def views(self, x: Tensor) -> tuple[Tensor, Tensor, ViewTracker, ViewTracker]:
        """Step 3: the query and key views X_q, X_k (normal augmentations) and where their positions came from."""
        query_tracker, key_tracker = ViewTracker.for_batch(x), ViewTracker.for_batch(x)
        x_query = self.augment_normal(x, tracker=query_tracker)
        x_key = self.augment_normal(x, tracker=key_tracker)
        return x_query, x_key, query_tracker, key_tracker

    def transform_query(self, x_query: Tensor, actionlet_frames: Tensor, tracker: ViewTracker) -> Tensor:
        """Step 3: MATS (eqs. 6-7) with the actionlet at the input frame rate, in the batch's coordinates."""
        m = self.cfg.method
        x_trans, _ = mats(x_query, actionlet_frames, self.generator, self.layout, extreme=self.augment_extreme,
                          tracker=tracker, adain_p=float(m.adain_p), noise_std=float(m.noise_std),
                          adain_max_ratio=None if m.adain_max_ratio is None else float(m.adain_max_ratio),
                          mix_probs=list(m.mix_probs), mix_parts=list(m.mix_parts), mix_blocks=list(m.mix_blocks),
                          mix_block_frames=int(m.mix_block_frames))
        return x_trans

    @torch.no_grad()
    def encode_offline(self, x_key: Tensor, actionlet_frames: Tensor, tracker: ViewTracker) -> Tensor:
        """Step 4, offline: z_k = g_k(SAFP(f_k(X_k))) (eq. 8; method.safp=code: the authors' mix of two
        projections), the actionlet on the key view's own frames."""
        m = self.cfg.method
        dense_key = self.encoder_k.features(self.to_stream(x_key))
        key_actionlet = downsample_frames(tracker.carry(actionlet_frames), dense_key.shape[3])
        key = safp_key(dense_key, key_actionlet, self.projector_k, m.safp, float(m.safp_global_mix))
        return F.normalize(key, dim=1)

    def mining_loss(self, z_query: Tensor, z_key: Tensor) -> Tensor:
        """Step 6: similarity mining over the bank (eq. 9)."""
        m = self.cfg.method
        bank, keep = self.negatives(z_query, z_key)
        return similarity_mining_loss(z_query, z_key, bank, float(m.temperature_query), float(m.temperature_key),
                                      topk=int(m.mining_topk), exclude_above=m.mining_exclude_above,
                                      square_query=bool(m.mining_square_query), keep=keep)

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        x = batch["x"]
        actionlet = self.actionlet(self.to_stream(x))  # step 2: on the original X
        actionlet_frames = upsample_to_frames(actionlet, x.shape[2])
        x_query, x_key, query_tracker, key_tracker = self.views(x)  # step 3
        x_trans = self.transform_query(x_query, actionlet_frames, query_tracker)
        h_query, z_query = self.encode_query(self.to_stream(x_trans))  # step 4, online: GAP
        self.watch(backbone=h_query, projector=z_query)
        z_key = self.encode_offline(x_key, actionlet_frames, key_tracker)
        self.expose(query=z_query, key=z_key)
        loss = self.mining_loss(z_query, z_key)  # step 6
        self.enqueue(z_key)  # step 5
        self.last_actionlet = actionlet.detach()
        return loss, {"similarity_mining": loss.detach(), "actionlet_fraction": actionlet.mean().detach()}
