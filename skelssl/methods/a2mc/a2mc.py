"""A²MC (Xu et al., "Attack-Augmentation Mixing-Contrastive Skeletal Representation Learning"), §III."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.profiler import record_function as section  # labels for benchmarks' profiles

from skelssl.methods.a2mc.attack import (BOUND_UNITS, attack_perturbation, information_maximization,
                                         rnn_backward_allowed, uniform_attack_loss)
from skelssl.methods.a2mc.batching import joins_views, per_view_batch_norm
from skelssl.methods.a2mc.mc_loss import mc_loss
from skelssl.methods.a2mc.pnm import AdversarialBank
from skelssl.methods.core.base import MoCoMethod
from skelssl.methods.registry import register_method
from skelssl.models.passes import side_effect_free
from skelssl.settings import choice, integer, number, numbers, optional
from skelssl.transforms.isc import isc_augment, whole_sequence
from skelssl.transforms.pipelines import apply_named

__all__ = ["A2MC", "STRONG_EXTRA"]

# The strong augmentation adds these to the basic ones (§III-B, after AimCLR): spatial flip, rotate, Gaussian
# noise, Gaussian filter, axis mask.
STRONG_EXTRA = ["spatial_flip", "rotate", "gaussian_noise", "gaussian_blur", "axis_mask"]


@register_method
class A2MC(MoCoMethod):
    """A²MC on the shared MoCo core: Att-Aug (targeted attack, then weak/strong augmentation), PNM (the
    gradient-updated bank M0 and the mixed banks), the MC loss.

    Views per step: x0 (key) and x3 (query) by the basic augmentation of x -- ISC's crop-resize to 64 frames
    then joint corruption or pose shear (§III-A, [33]); x̂ = x + ρ by the targeted attack (eqs. 5-6, attack.py)
    through the query encoder and the class head in a side-effect-free pass (BatchNorm statistics untouched,
    dropout off, not watched by the collapse monitor, no random draws); x1 = basic(x̂) (weak), x2 = basic(x̂)
    then STRONG_EXTRA (strong). f0 from the key encoder, f1, f2, f3 from the query encoder (one call with
    per-view BatchNorm statistics on the recurrent encoders, batching.py).
    Loss: MC (eqs. 9-11, mc_loss.py) over M0 and the mixed banks (pnm.py), plus the head's own training loss
    (attack.py) on the detached basic query feature, which reaches only the head.
    After each optimiser step M0 ascends its gradient (eq. 7), computed from the MC loss at temperature
    `bank_temperature` with the step's features detached; while M0 is not yet full the keys f0 fill it.

    Constants (§IV-B): K = 16384, τ 0.07, m 0.999, ε 0.1, η 0.5, β 3.0 with temperature 0.03,
    λ = (0.4, 0.3, 0.2, 0.1); SGD lr 0.01 ×0.1 at 350 of 450, momentum 0.9, wd 1e-4, batch 64 (methods/a2mc.yaml).
    Open choices, all on docs/fidelity_a2mc_prosl_hico.md: the head is a Linear layer on the query encoder's
    feature with C = `attack_classes` outputs (null: the training set's number of classes, 60 when unknown),
    trained by information maximisation with its own learning rate `head_lr` (`head_training=frozen`: the
    official code's untrained head); mixed entries as eq. 8 writes them (`mix_normalize=true`: unit length).
    """

    name: ClassVar[str] = "a2mc"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "queue_size": integer(16384, ge=1),  # K, the size of M0
        "momentum": number(0.999, ge=0, lt=1),
        "temperature": number(0.07, gt=0),
        "feature_dim": integer(128, ge=1),
        "attack_lr": number(0.1, gt=0),  # ε of eq. 6
        "attack_bound": number(0.5, gt=0),  # η of eq. 6
        "attack_bound_unit": choice("joint", *BOUND_UNITS),  # what η bounds: each joint's displacement
        "attack_classes": optional(integer(None, ge=2)),  # C of f_a
        "head_training": choice("infomax", "infomax", "frozen"),  # or "frozen"
        "head_lr": number(0.01, gt=0),
        "bank_lr": number(3.0, gt=0),  # β of eq. 7
        "bank_temperature": number(0.03, gt=0),
        "bank_momentum": number(0.0, ge=0, lt=1),  # official code: 0.9
        "bank_weight_decay": number(0.0, ge=0),  # official code: 1e-4
        "mix_lambdas": numbers([0.4, 0.3, 0.2, 0.1], ge=0, min_length=1),
        "mix_normalize": False,
    }

    def __init__(self, cfg, layout=None, train_data_info=None):
        super().__init__(cfg, layout, train_data_info)
        m = self.cfg.method
        if m.head_training not in ("infomax", "frozen"):
            raise ValueError(f"method.head_training must be 'infomax' or 'frozen', got '{m.head_training}'")
        classes = m.attack_classes or self.train_data_info.get("num_classes") or 60
        self.head = nn.Linear(self.encoder_q.feature_dim, int(classes))
        self.head.requires_grad_(m.head_training == "infomax")
        self._pending_bank_grad: Tensor | None = None

    def build_banks(self) -> dict[str, nn.Module]:
        """M0, the gradient-updated bank (eq. 7), as the main bank `queue`, so `negatives()` and plug-ins see it."""
        m = self.cfg.method
        generator = torch.Generator().manual_seed(int(self.cfg.trainer.seed))
        return {"queue": AdversarialBank(int(m.queue_size), int(m.feature_dim), generator=generator,
                                         momentum=float(m.bank_momentum), weight_decay=float(m.bank_weight_decay))}

    def learnable_params(self) -> list[dict[str, Any]]:
        groups = super().learnable_params()
        if self.cfg.method.head_training == "infomax":
            groups.append({"name": "head", "params": list(self.head.parameters()),
                           "lr": float(self.cfg.method.head_lr)})
        return groups

    # ----- views ------------------------------------------------------------------------------------------
    def clean_view(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """The whole valid sequence at the views' 64 frames (what the attack sees; ProSL's codebook pass too)."""
        return whole_sequence(x, lengths, self.augment_cfg.crop_out_frames)

    def basic_view(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """Basic augmentation (§III-A): ISC crop-resize to 64 frames, then joint corruption or pose shear."""
        a = self.augment_cfg
        return isc_augment(x, self.generator, lengths, crop_scale=a.crop_scale, out_frames=a.crop_out_frames,
                           min_frames=a.crop_min_frames)

    def strong_view(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        return apply_named(self.basic_view(x, lengths), self.generator, STRONG_EXTRA, self.layout, self.augment_cfg)

    def attack(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        """x̂ = x + ρ (eqs. 5-6, attack.py): one fresh Adam step of learning rate ε against the attack loss on the
        valid frames resampled to 64, carried to every raw frame, each joint's displacement within η, zero
        where a person is absent. Side-effect free; draws nothing."""
        m = self.cfg.method

        def class_loss(view: Tensor) -> Tensor:  # eq. 5 on f_a = softmax(head(encoder(view)))
            return uniform_attack_loss(self.head(self.encoder_q(self.to_stream(view))))

        with side_effect_free(self.encoder_q, self.head), rnn_backward_allowed(x.device, self.encoder_q):
            rho, loss = attack_perturbation(class_loss, x, lengths, grid_frames=int(self.augment_cfg.crop_out_frames),
                                            eps=float(m.attack_lr), eta=float(m.attack_bound),
                                            bound_unit=str(m.attack_bound_unit))
        return (x + rho).detach(), {"attack_loss": loss / x.shape[0],
                                    "attack_norm": rho.flatten(1).norm(dim=1).mean()}

    def encode_queries(self, views: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """encode_query of each view; in one call of the query network with per-view BatchNorm statistics where
        that gives the separate calls' outputs (batching.py: the recurrent encoders), else one call each."""
        if len(views) < 2 or not joins_views(self.encoder_q):
            return [self.encode_query(view) for view in views]
        with per_view_batch_norm(self.encoder_q, self.projector_q, views=len(views)):
            h, z = self.encode_query(torch.cat(views))
        return list(zip(h.chunk(len(views)), z.chunk(len(views))))

    # ----- step -------------------------------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        m = self.cfg.method
        x, lengths = batch["x"], batch.get("length")
        with section("a2mc/attack"):
            x_hat, logs = self.attack(x, lengths)                     # Att-Aug: targeted semantic attack
        with section("a2mc/views"):
            x0 = self.to_stream(self.basic_view(x, lengths))          # key view
            x3 = self.to_stream(self.basic_view(x, lengths))          # basic query view
            x1 = self.to_stream(self.basic_view(x_hat, lengths))      # weak attack-augmentation
            x2 = self.to_stream(self.strong_view(x_hat, lengths))     # strong attack-augmentation
        with section("a2mc/query_encoder"):
            (h3, f3), (_, f1), (_, f2) = self.encode_queries([x3, x1, x2])
        with section("a2mc/key_encoder"):
            f0 = self.encode_key(x0)
        self.watch(backbone=h3, projector=f3)
        self.expose(query=f3, key=f0, weak=f1, strong=f2)

        lambdas = [float(v) for v in m.mix_lambdas]
        with section("a2mc/mc_loss"):
            bank, keep = self.negatives(f3, f0)  # M0, and which entries each sample may use
            mc = mc_loss(f0, f1, f2, f3, bank, lambdas, float(m.temperature), bool(m.mix_normalize), keep)
        with section("a2mc/bank_gradient"):
            self._pending_bank_grad = self.bank_gradient(f0, f1, f2, f3, bank, keep)
        self.enqueue(f0)  # fills M0 while it is not yet full
        loss = mc.total
        logs.update(l1=mc.l1.detach(), l2=mc.l2.detach(), l3=mc.l3.detach())
        if m.head_training == "infomax":
            head_loss = information_maximization(self.head(h3.detach()))
            loss = loss + head_loss
            logs["head_infomax"] = head_loss.detach()
        return loss, logs

    def bank_gradient(self, f0: Tensor, f1: Tensor, f2: Tensor, f3: Tensor, bank: Tensor,
                      keep: Tensor | None) -> Tensor:
        """dL/dM0 of eq. 7: the MC loss at the bank's temperature, the features held fixed."""
        m = self.cfg.method
        with torch.enable_grad():
            leaf = bank.detach().clone().requires_grad_(True)
            loss = mc_loss(f0.detach(), f1.detach(), f2.detach(), f3.detach(), leaf,
                           [float(v) for v in m.mix_lambdas], float(m.bank_temperature), bool(m.mix_normalize),
                           keep).total
            (grad,) = torch.autograd.grad(loss, leaf)
        return grad

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """M0 ascends its gradient (eq. 7) before the keys fill it and the key encoder follows by momentum."""
        if self._pending_bank_grad is not None:
            self.queue.ascend(self._pending_bank_grad, float(self.cfg.method.bank_lr))
            self._pending_bank_grad = None
        super().after_optimizer_step()
