"""ProSL (Qin et al., "Progressive semantic learning for unsupervised skeleton-based action recognition", 2025)
as a plug-in on any MoCo-style method here: `plugins.prosl.enabled=true`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.profiler import record_function as section  # labels for benchmarks' profiles

from skelssl.methods.core.losses import similarity_to_bank
from skelssl.methods.core.plugins import Plugin, register_plugin
from skelssl.methods.prosl.codebook import SemanticCodebook
from skelssl.methods.prosl.semantic import (adaptive_joint_mask, branch_kl, codebook_keep, nearest_centroid,
                                            semantic_coefficients, semantic_loss, similarity_distribution)
from skelssl.models.passes import side_effect_free
from skelssl.settings import choice, integer, number, optional, probability, texts
from skelssl.transforms.pipelines import AUGMENTATIONS, apply_named

if TYPE_CHECKING:
    from skelssl.methods.core.base import MoCoMethod

__all__ = ["ProSL", "mixes_samples"]


@register_plugin
class ProSL(Plugin):
    """ProSL §3 on the method's query z, key ẑ and memory bank M (exposed by every method here).

    - Semantic Codebook (§3.3, codebook.py): spherical k-means (k = `codebook_size`: 65 / 130 / 55 for NTU-60 /
      NTU-120 / PKU-MMD, set by the dataset pieces) of the key features ẑ of the whole training set, built at
      the end of epoch `start_epoch` − 1 and refreshed at the end of every later epoch (400 of 450 in the
      paper); at fit start too when a run starts at or after `start_epoch` without one.
    - Two phases (§3.5): before `start_epoch` L = L_CL + L_KL (eq. 11); from it L = L_OptCL + L_KL + L_Sem +
      L_Sem' (eq. 12), all weights 1. L_CL is the base method's own loss.
    - L_OptCL (eqs. 4-5): the base method's InfoNCE without the bank entries of the sample's semantic cluster,
      through `negatives()` on the bank `bank` (the instance bank "queue"; HiCo's other levels live in other
      feature spaces and keep their negatives). A sample's cluster is that of its key ẑ (the nearest centroid),
      an entry's that of the entry.
    - L_Sem (eqs. 2-3) on z and L_Sem' (eq. 9) on z': y = softmax(cos(z, c) / τ_y) over the centroids, the
      target the sample's stored cluster SCoBo{z_b}, samples kept only when y's argmax is that cluster and its
      value exceeds ξ = `outlier_threshold` (0.027); sum / batch size. τ_y = `semantic_temperature`, 1 by
      default: the paper's y is "the cosine similarity distribution" with no temperature, and ξ = 0.027 only
      selects at τ = 1 (k = 65: a feature at its centroid has max y = e / (e + 64) = 0.041, one 0.4 from it
      0.023, a random one ~0.02; at the method's 0.07-0.2 every feature's max y is far above 0.027, so the
      filter removes nothing). null: `temperature` (the behaviour before issue 23).
    - The adaptive semantic branch (§3.4): z' = the query network on the query's own view (exposed as
      `query_input`, else a fresh normal view) with HiCLR's normal set `augmentations` (spatial flip, rotation,
      Gaussian noise, Gaussian blur, axis ("channel") mask), then the stream, then the adaptive mask: joint v
      zeroed with probability p_mask_v = φ / p_v (eq. 8), φ making them average `mask_ratio`; uniform
      `mask_ratio` before the codebook exists (the ablation's "normal branch").
    - Semantic coefficients (eqs. 6-7): p_v = KL(y(ẑ) ‖ y(ẑ_v)), y over the centroids, ẑ_v the key feature with
      joint v zeroed; computed at each codebook refresh on `coefficient_samples` training sequences (at most
      N / (V + 1), so that it costs no more than one key pass over the set) and averaged into one coefficient
      per joint (V + 1 key passes per sequence: per-sample, per-step coefficients would
      cost V key passes every step). Eq. 7's literal KL between two features needs distributions; these are
      the features' distributions over the centroids, which is what eq. 6 measures against.
    - L_KL (eq. 10): KL(P_z' ‖ P_z), P = softmax(·M / τ) over the bank M (eq. 10 writes the dot products
      themselves, which are not distributions), the query's P_z detached as the teacher ("to supervise z'").
    - Cost: the semantic branch is one more pass of the query network with its backward, about 3/4 of a
      SkeletonCLR or HiCo step's FLOPs, from the first epoch (eq. 11 has L_KL). `branch_from_start=false` runs it
      only from `start_epoch` (phase 1 is then the base method alone, which the paper's Fig. 5 finds learns the
      same features before the codebook): a departure from eq. 11 for budgets that cannot pay it.
      `one_encoder_call` (default true): a method that offers it (HiCo) encodes the branch's view in the same
      encoder call as its query view, when no BatchNorm in the query network would normalise the two batches
      together (HiCo's encoder has LayerNorm only, per token); the outputs are those of two calls.
    - Key features for the codebook: `features=pass` (the paper: a pass of the key network over the training
      set at the epoch's end, on each sequence's clean view) or `features=epoch` (the keys the training steps
      computed during the epoch, free; a sample left out of the epoch gets no cluster until the next).
    """

    name = "prosl"
    DEFAULTS = {
        "codebook_size": integer(65, ge=1),
        "start_epoch": integer(400, ge=0),
        "outlier_threshold": number(0.027, ge=0),
        "temperature": optional(number(None, gt=0)),
        "semantic_temperature": optional(number(1.0, gt=0)),
        "bank": "queue",
        "features": choice("pass", "pass", "epoch"),
        "kmeans_iterations": integer(30, ge=1),
        "coefficient_samples": integer(256, ge=1),
        "mask_ratio": probability(0.3),
        "augmentations": texts(["spatial_flip", "rotate", "gaussian_noise", "gaussian_blur", "axis_mask"],
                               *AUGMENTATIONS),
        "branch_from_start": True,
        "one_encoder_call": True,
        "seed": integer(0, ge=0),
    }

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.codebook: SemanticCodebook | None = None
        self._epoch_keys: Tensor | None = None  # features=epoch: this epoch's keys by sample
        self._epoch_seen: Tensor | None = None
        self.last_refresh: dict[str, float] = {}

    # ----- set-up and schedule ----------------------------------------------------------------------------
    def setup(self, method: "MoCoMethod") -> None:
        samples = int(method.train_data_info.get("samples", 0))
        self.codebook = SemanticCodebook(int(self.cfg.codebook_size), int(method.cfg.method.feature_dim),
                                         samples, method.layout.num_joints)

    def temperature(self, method: "MoCoMethod") -> float:
        """τ of the similarity distributions (y over the centroids, the KL over the bank): `temperature`, else
        the method's InfoNCE temperature (ActCLR: its query temperature)."""
        if self.cfg.temperature is not None:
            return float(self.cfg.temperature)
        m = method.cfg.method
        return float(m.temperature if "temperature" in m else m.temperature_query)

    def semantic_temperature(self, method: "MoCoMethod") -> float:
        """τ_y of y in eqs. 2, 3 and 9: `semantic_temperature` (1: the paper's y), else `temperature(method)`."""
        if self.cfg.semantic_temperature is not None:
            return float(self.cfg.semantic_temperature)
        return self.temperature(method)

    def active(self, method: "MoCoMethod") -> bool:
        """Phase 2 (eq. 12): the codebook exists and the epoch has reached `start_epoch`."""
        return bool(self.codebook.ready) and method.current_epoch >= int(self.cfg.start_epoch)

    def on_fit_start(self, method: "MoCoMethod") -> None:
        if not bool(self.codebook.ready) and method.current_epoch >= int(self.cfg.start_epoch):
            self.refresh(method)

    def on_train_epoch_end(self, method: "MoCoMethod") -> None:
        if method.current_epoch + 1 >= int(self.cfg.start_epoch):
            self.refresh(method)
            for name, value in self.last_refresh.items():  # where the refresh's time went
                method.log(f"prosl/refresh_{name}", value, on_step=False, on_epoch=True)

    # ----- the loss terms ---------------------------------------------------------------------------------
    def filter_negatives(self, method, bank_name, bank, query, key, keep):
        if bank_name != self.cfg.bank or not self.active(method):
            return keep
        centers = self.codebook.centers
        with section("prosl/negative_filter"):
            mine = codebook_keep(nearest_centroid(key if key is not None else query, centers),
                                 nearest_centroid(bank, centers))  # eq. 4
        return mine if keep is None else keep & mine

    def extra_loss(self, method: "MoCoMethod", batch: dict[str, Tensor]) -> tuple[Tensor | None, dict[str, Any]]:
        z, key = method.exposed["query"], method.exposed["key"]
        self._remember_keys(method, batch, key)
        if not self.branch_runs(method):
            return None, {}  # phase 1 without the branch: the base method alone
        tau_bank = self.temperature(method)
        with section("prosl/semantic_branch"):
            z_sem = self.semantic_branch(method, batch)
        bank = method.bank(self.cfg.bank).bank
        loss = branch_kl(similarity_to_bank(z_sem, bank) / tau_bank,                       # eq. 10
                         similarity_to_bank(z, bank) / tau_bank)
        logs: dict[str, Any] = {"kl": loss.detach()}
        if self.active(method):
            tau = self.semantic_temperature(method)
            assigned = self.codebook.assigned(batch["index"])
            centers = self.codebook.centers
            sem, kept = semantic_loss(similarity_distribution(z, centers, tau), assigned,
                                      float(self.cfg.outlier_threshold))                     # eqs. 2-3
            sem_prime, kept_prime = semantic_loss(similarity_distribution(z_sem, centers, tau), assigned,
                                                  float(self.cfg.outlier_threshold))         # eq. 9
            loss = loss + sem + sem_prime                                                    # eq. 12
            logs.update(sem=sem.detach(), sem_prime=sem_prime.detach(), kept=kept.float().mean(),
                        kept_prime=kept_prime.float().mean())
        return loss, logs

    def branch_runs(self, method: "MoCoMethod") -> bool:
        """Whether this step has the semantic branch (from the first epoch, or with `branch_from_start=false`
        from `start_epoch`)."""
        return bool(self.cfg.branch_from_start) or self.active(method)

    def semantic_view(self, method: "MoCoMethod", batch: dict[str, Tensor], base: Tensor | None = None) -> Tensor:
        """The semantic branch's input (§3.4): `base` (the query's own view; else the exposed `query_input`,
        else a fresh normal view) with HiCLR's normal set `augmentations`, then the stream, then the adaptive
        mask of eq. 8."""
        if base is None:
            base = method.exposed.get("query_input")
        if base is None:
            base = method.augment_normal(batch["x"])
        view = apply_named(base, method.generator, list(self.cfg.augmentations), method.layout,
                           method.augment_cfg, coords=method.coordinates)
        probabilities = self.codebook.masking_probabilities(float(self.cfg.mask_ratio))
        return adaptive_joint_mask(method.to_stream(view), probabilities, method.generator)  # eq. 8

    def query_companion(self, method: "MoCoMethod", batch: dict[str, Tensor], query_input: Tensor) -> Tensor | None:
        """The semantic view for a method that can encode it in its query's encoder call (HiCo asks after
        making its query and key views, the point where the separate branch would draw its randomness), or
        None: `one_encoder_call` off, no branch this step, or a BatchNorm in the query network, which would
        normalise the query and the semantic views together and so change both."""
        if not self.cfg.one_encoder_call or not self.branch_runs(method) or \
                mixes_samples(method.encoder_q, method.projector_q):
            return None
        return self.semantic_view(method, batch, query_input)

    def semantic_branch(self, method: "MoCoMethod", batch: dict[str, Tensor]) -> Tensor:
        """z' of the adaptive semantic branch (§3.4) from the query network: the one the method computed in its
        query's encoder call (exposed as "companion/prosl"), else its own pass."""
        shared = method.exposed.get(f"companion/{self.name}")
        if shared is not None:
            return shared
        return method.encode_query(self.semantic_view(method, batch))[1]

    # ----- the codebook -----------------------------------------------------------------------------------
    def _remember_keys(self, method: "MoCoMethod", batch: dict[str, Tensor], key: Tensor) -> None:
        if self.cfg.features != "epoch" or method.current_epoch + 1 < int(self.cfg.start_epoch):
            return
        samples = self.codebook.assignments.shape[0]
        if self._epoch_keys is None or self._epoch_keys.device != key.device:
            self._epoch_keys = torch.zeros(samples, key.shape[1], device=key.device)
            self._epoch_seen = torch.zeros(samples, dtype=torch.bool, device=key.device)
        index = batch["index"].to(key.device)
        self._epoch_keys[index] = key.detach().float()
        self._epoch_seen[index] = True

    def _gather_epoch_keys(self) -> None:
        """Under DDP each rank saw its own part of the epoch: every rank takes the union (a sample is seen by
        one rank per epoch, so summing the zero-filled tables joins them)."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            seen = self._epoch_seen.float()
            dist.all_reduce(self._epoch_keys)
            dist.all_reduce(seen)
            self._epoch_seen = seen > 0

    @torch.no_grad()
    def refresh(self, method: "MoCoMethod", data: np.ndarray | Tensor | None = None,
                lengths: np.ndarray | Tensor | None = None) -> None:
        """Rebuild the codebook from the training set (`data`/`lengths`: the method's training data when None)
        and the joints' semantic coefficients; the seconds each part took go to `last_refresh`."""
        if data is None:
            dataset = method.training_dataset("ProSL's codebook")
            data, lengths = dataset.array(), dataset.lengths
        epoch = method.current_epoch
        generator = torch.Generator(device=method.device).manual_seed(int(self.cfg.seed) * 100003 + epoch)
        started = time.perf_counter()
        if self.cfg.features == "epoch" and self._epoch_seen is not None:
            self._gather_epoch_keys()
        if self.cfg.features == "epoch" and self._epoch_seen is not None and bool(self._epoch_seen.any()):
            rows = torch.nonzero(self._epoch_seen).flatten()
            features = self._epoch_keys[rows]
        else:
            rows = torch.arange(len(data))
            features = method.encode_all(method.encode_key, "ProSL's codebook", data, lengths,
                                         desc="ProSL codebook: key pass")
        extracted = time.perf_counter()
        if self.codebook.assignments.shape[0] != len(data):  # built without knowing the training set's size
            self.codebook.assignments = torch.full((len(data),), -1, dtype=torch.long,
                                                   device=self.codebook.assignments.device)
        iterations = self.codebook.build(features, rows, iterations=int(self.cfg.kmeans_iterations),
                                         generator=generator)
        clustered = time.perf_counter()
        # at most one key pass's worth of work: V + 1 passes over at most N / (V + 1) sequences
        count = min(int(self.cfg.coefficient_samples), max(1, len(data) // (method.layout.num_joints + 1)))
        chosen = torch.randperm(len(data), generator=torch.Generator().manual_seed(epoch))[:count].sort().values
        (_, x, valid), = method.training_batches("ProSL's coefficients", data, lengths, chosen.numpy(),
                                                 batch_size=len(chosen), desc="ProSL coefficients")
        view = method.to_stream(method.clean_view(x, valid))
        with side_effect_free(method):
            coefficients = semantic_coefficients(method.encode_key, view, self.codebook.centers,
                                                 self.temperature(method))
        self.codebook.coefficients.copy_(coefficients.mean(dim=0))
        done = time.perf_counter()
        self._epoch_keys, self._epoch_seen = None, None
        self.last_refresh = {"extract_s": extracted - started, "kmeans_s": clustered - extracted,
                             "coefficients_s": done - clustered, "kmeans_iterations": float(iterations)}


def mixes_samples(*modules: nn.Module) -> bool:
    """Whether a batch's samples change each other's outputs in these modules: a BatchNorm (any kind) normalises
    with the batch's statistics. LayerNorm, GroupNorm, recurrent and attention layers work per sample."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for module in modules for m in module.modules())
