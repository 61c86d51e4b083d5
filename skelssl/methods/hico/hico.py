"""HiCo (Dong et al., AAAI 2023, "Hierarchical Contrast for Unsupervised Skeleton-based Action Representation
Learning"): hierarchical contrast over the clip, part, domain and instance features of its encoder."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function as section  # labels for benchmarks' profiles

from skelssl.errors import UserError
from skelssl.methods.core.banks import MemoryQueue
from skelssl.methods.core.base import MoCoMethod
from skelssl.methods.core.losses import info_nce_loss, remove_entries, similarity_to_bank
from skelssl.methods.registry import register_method
from skelssl.models.heads import Projector
from skelssl.models.hico import HiCoEncoder
from skelssl.models.recurrent import xavier_init_
from skelssl.settings import integer, number
from skelssl.transforms.isc import isc_augment, whole_sequence

__all__ = ["HiCo", "HiCoProjectors", "multi_positive_info_nce"]

HIERARCHY_BANKS = ("clip_queue", "part_queue", "temporal_queue", "spatial_queue")  # + the instance "queue"


def multi_positive_info_nce(query: Tensor, positives: Tensor, bank: Tensor, temperature: float,
                            keep: Tensor | None = None) -> Tensor:
    """−log Σ_{p ∈ positives} softmax([q·k_1 .. q·k_P, q·m_1 .. q·m_K] / τ)_p, averaged over the batch.
    query (N, D), positives (N, P, D), bank (K, D), all L2-normalised; keep (N, K) as in core.losses."""
    pos = torch.einsum("nd,npd->np", query.float(), positives.float()) / temperature
    neg = remove_entries(similarity_to_bank(query, bank) / temperature, keep)
    return (torch.logsumexp(torch.cat([pos, neg], dim=1), dim=1) - torch.logsumexp(pos, dim=1)).mean()


class HiCoProjectors(nn.Module):
    """HiCo's projectors besides the instance one (MLP Linear-ReLU-Linear to the contrast dimension): clip
    features (applied per granularity), part features, temporal-domain vt (G·H) and spatial-domain vs (G·H)."""

    def __init__(self, hidden: int, granularities: int, out_dim: int) -> None:
        super().__init__()
        self.clip = Projector(hidden, hidden, out_dim)
        self.part = Projector(hidden, hidden, out_dim)
        self.temporal = Projector(granularities * hidden, hidden, out_dim)
        self.spatial = Projector(granularities * hidden, hidden, out_dim)

    def forward(self, clips: Tensor, parts: Tensor) -> dict[str, Tensor]:
        """L2-normalised projections: clip (N, G, D), part (N, G, D), temporal (N, D), spatial (N, D)."""
        return {"clip": F.normalize(self.clip(clips), dim=-1), "part": F.normalize(self.part(parts), dim=-1),
                "temporal": F.normalize(self.temporal(clips.flatten(1)), dim=1),
                "spatial": F.normalize(self.spatial(parts.flatten(1)), dim=1)}


@register_method
class HiCo(MoCoMethod):
    """HiCo on the shared MoCo core, as its authors' code (HuiGuanLab/HiCo) does it; the paper is not in the
    specification, so this docstring says what was followed (docs/fidelity_a2mc_prosl_hico.md):

    - encoder: models.hico.HiCoEncoder (`model.encoder=hico`; HiCo-LSTM: 1-layer BiLSTM, H 512, 4 granularities);
    - views: query and key are two independent ISC views (crop-resize to 64 frames, then joint corruption or
      pose shear U(-1, 1), each p 0.5), made on the device from the batch's valid lengths, then the stream;
    - five InfoNCE terms, weight 1, one temperature (0.2), each with its own FIFO bank of keys:
      clip level: the query's granularity-1 clip feature against all G key clip features as positives
      (multi-positive InfoNCE), negatives from a bank of G·K clip keys; part level: the same with parts;
      domain level, crossed: query temporal-domain vs key spatial-domain (negatives: the spatial-domain bank) and
      query spatial-domain vs key temporal-domain (the temporal-domain bank); instance level: query vi vs key vi
      (the instance bank, `queue`, which plug-ins such as ProSL filter);
    - projectors Linear(·, H) - ReLU - Linear(H, 128): per-granularity clip and part, vt, vs, and vi (2·G·H);
      the key networks follow by momentum 0.999;
    - `model.init=official`: the authors' xavier-uniform on every weight matrix of encoder and projectors.
    Constants of the released scripts: τ 0.2, K 2048, SGD 0.01, momentum 0.9, wd 1e-4, batch 64, 451 epochs,
    ×0.1 at 351 (methods/hico.yaml). The downstream representation is vi (4096-d).
    """

    name: ClassVar[str] = "hico"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "queue_size": integer(2048, ge=1),
        "momentum": number(0.999, ge=0, lt=1),
        "temperature": number(0.2, gt=0),
        "feature_dim": integer(128, ge=1),
    }

    def __init__(self, cfg, layout=None, train_data_info=None):
        super().__init__(cfg, layout, train_data_info)
        e = self.encoder_q
        self.heads_q = HiCoProjectors(e.hidden_size, e.granularities, int(self.cfg.method.feature_dim))
        if self.cfg.model.init == "official":
            xavier_init_(self.heads_q)
        self.heads_k = copy.deepcopy(self.heads_q)
        self.heads_k.requires_grad_(False)

    def build_projector(self) -> nn.Module:
        """The instance projector vi (2·G·H) -> H -> 128."""
        if not isinstance(self.encoder_q, HiCoEncoder):
            raise UserError(f"method 'hico' needs its hierarchical encoder (model.encoder=hico), "
                            f"got '{self.cfg.model.encoder}'")
        e = self.encoder_q
        projector = Projector(e.feature_dim, e.hidden_size, int(self.cfg.method.feature_dim))
        if self.cfg.model.init == "official":
            xavier_init_(projector)
        return projector

    def build_banks(self) -> dict[str, nn.Module]:
        """The instance bank `queue`, then one bank per hierarchy level (G·K entries for clips and parts)."""
        banks = super().build_banks()
        dim, size, g = int(self.cfg.method.feature_dim), int(self.cfg.method.queue_size), self.encoder_q.granularities
        gen = torch.Generator().manual_seed(int(self.cfg.trainer.seed) + 1)
        for name, entries in zip(HIERARCHY_BANKS, (g * size, g * size, size, size)):
            banks[name] = MemoryQueue(entries, dim, generator=gen)
        return banks

    @property
    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return super().momentum_pairs + [(self.heads_q, self.heads_k)]

    def learnable_params(self) -> list[dict[str, Any]]:
        return super().learnable_params() + [{"name": "hierarchy_projectors", "params": list(self.heads_q.parameters())}]

    def view(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """An ISC view in joint coordinates (before the stream)."""
        a = self.augment_cfg
        return isc_augment(x, self.generator, lengths, crop_scale=a.crop_scale, out_frames=a.crop_out_frames,
                           min_frames=a.crop_min_frames)

    def clean_view(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """The whole valid sequence at 64 frames (ProSL's codebook pass encodes this)."""
        return whole_sequence(x, lengths, self.augment_cfg.crop_out_frames)

    def features(self, x: Tensor, key: bool = False,
                 companions: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Every projected feature of a stream view (L2-normalised) and the backbone feature vi.
        companions: other stream views (plug-ins' inputs, e.g. ProSL's semantic view) encoded in the same call
        to the encoder and the instance projector, which work per sample (LayerNorm, no BatchNorm); their
        projected instance features come back under "companion/<name>"."""
        encoder, projector, heads = ((self.encoder_k, self.projector_k, self.heads_k) if key
                                     else (self.encoder_q, self.projector_q, self.heads_q))
        companions = companions or {}
        n = x.shape[0]
        clips, parts = encoder.hierarchy(torch.cat([x, *companions.values()]) if companions else x)
        vi = HiCoEncoder.instance(clips, parts)
        instance = F.normalize(projector(vi), dim=1)
        out = heads(clips[:n], parts[:n])
        out.update(instance=instance[:n], backbone=vi[:n])
        start = n
        for name, view in companions.items():
            out[f"companion/{name}"] = instance[start:start + view.shape[0]]
            start += view.shape[0]
        return out

    def query_companions(self, batch: dict[str, Tensor], query_input: Tensor) -> dict[str, Tensor]:
        """The stream views plug-ins ask to encode with the query view (`query_companion`, e.g. ProSL's
        semantic branch): one encoder call instead of one per view."""
        companions = {}
        for name, plugin in self.plugins.items():
            view = plugin.query_companion(self, batch, query_input)
            if view is not None:
                companions[name] = view
        return companions

    def encode_query(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(vi, projected instance feature), as every method's encode_query (ProSL's semantic branch uses it)."""
        h = self.encoder_q(x)
        return h, F.normalize(self.projector_q(h), dim=1)

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        tau = float(self.cfg.method.temperature)
        x, lengths = batch["x"], batch.get("length")
        with section("hico/views"):
            query_input = self.view(x, lengths)
            key_input = self.view(x, lengths)
            companions = self.query_companions(batch, query_input)  # drawn after both views, as a later pass would
        with section("hico/query_encoder"):
            q = self.features(self.to_stream(query_input), companions=companions)
        with section("hico/key_encoder"), torch.no_grad():
            k = self.features(self.to_stream(key_input), key=True)
        self.watch(backbone=q["backbone"], projector=q["instance"])
        self.expose(query=q["instance"], key=k["instance"], query_input=query_input,
                    **{f"companion/{name}": q[f"companion/{name}"] for name in companions})

        def level(loss_fn, query: Tensor, positive: Tensor, bank_name: str) -> Tensor:
            first_key = positive[:, 0] if positive.dim() == 3 else positive
            bank, keep = self.negatives(query, first_key, bank=bank_name)  # plug-ins may filter any bank
            return loss_fn(query, positive, bank, tau, keep)

        losses = {  # the five levels, weight 1 each
            "clip": level(multi_positive_info_nce, q["clip"][:, 0], k["clip"], "clip_queue"),
            "part": level(multi_positive_info_nce, q["part"][:, 0], k["part"], "part_queue"),
            "temporal_domain": level(info_nce_loss, q["temporal"], k["spatial"], "spatial_queue"),  # crossed
            "spatial_domain": level(info_nce_loss, q["spatial"], k["temporal"], "temporal_queue"),
            "instance": level(info_nce_loss, q["instance"], k["instance"], "queue"),
        }
        self.enqueue(k["clip"].flatten(0, 1), bank="clip_queue")  # every granularity of every key
        self.enqueue(k["part"].flatten(0, 1), bank="part_queue")
        self.enqueue(k["temporal"], bank="temporal_queue")
        self.enqueue(k["spatial"], bank="spatial_queue")
        self.enqueue(k["instance"])
        loss = sum(losses.values())
        return loss, {name: value.detach() for name, value in losses.items()}
