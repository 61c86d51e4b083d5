"""MoCoMethod: the Lightning module every contrastive method builds on.

It owns what all MoCo-style methods share: the query encoder and projector, their momentum copies (identical at
start), the memory queue, the seeded augmentation generator, optimizers and schedulers, the collapse monitor and
the checkpoint state needed to resume exactly. A method subclass only writes `training_loss`.
"""

from __future__ import annotations

import copy
import random
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from skelssl.methods.core import MemoryQueue, Projector, update_momentum
from skelssl.models import build_encoder
from skelssl.models.stgcn import init_official_
from skelssl.skeleton.layouts import Layout, get_layout
from skelssl.transforms.pipelines import AugmentConfig, extreme_from_config, normal_from_config
from skelssl.transforms.streams import to_stream
from skelssl.transforms.tracking import ViewTracker

# Collapse thresholds: a healthy L2-normalised D-dim embedding has per-dimension std near 1/sqrt(D)
# (SimSiam, Chen & He 2021) and a mean pairwise cosine well below 1.
# Warn only when it lasts two epochs in a row: the first epochs of a healthy MoCo run can pass near it.
COLLAPSE_COSINE = 0.99
COLLAPSE_STD_RATIO = 0.05


def embedding_spread(features: Tensor) -> tuple[float, float]:
    """(mean pairwise cosine, per-dimension std of the L2-normalised features * sqrt(D))."""
    z = F.normalize(features.detach().float(), dim=1)
    n = z.shape[0]
    if n < 2:
        return float("nan"), float("nan")
    cos = z @ z.t()
    mean_cos = (cos.sum() - cos.diagonal().sum()) / (n * (n - 1))
    std_ratio = z.std(dim=0).mean() * z.shape[1] ** 0.5
    return float(mean_cos), float(std_ratio)


class MoCoMethod(L.LightningModule):
    """Query/key encoders with momentum update, MLP projectors, FIFO queue (MoCo v2).

    Subclasses set `name`, `DEFAULTS` (their own keys under `cfg.method`) and implement `training_loss`,
    setting `self.keys_to_enqueue` to the key embeddings of the step.
    """

    name: ClassVar[str] = "moco"
    DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, cfg: DictConfig | dict, layout: Layout | str | dict | None = None,
                 train_data_info: dict | None = None):
        super().__init__()
        cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
        self.cfg = cfg
        self.layout = get_layout(layout if layout is not None else cfg.data.layout)
        self.train_data_info = dict(train_data_info or {})
        self.save_hyperparameters({"cfg": OmegaConf.to_container(cfg, resolve=True),
                                   "layout": self.layout.to_dict(),
                                   "train_data_info": self.train_data_info})
        m = cfg.method
        mc = cfg.model
        self.encoder_q = build_encoder(mc.encoder, self.layout, in_channels=3,
                                       hidden_channels=mc.hidden_channels, out_channels=mc.out_channels,
                                       dropout=mc.dropout, edge_importance=mc.edge_importance, init=mc.init)
        feat_dim = self.encoder_q.out_channels
        self.projector_q = Projector(feat_dim, feat_dim, m.feature_dim)
        if mc.init == "official":
            init_official_(self.projector_q)
        # The key encoder starts as an exact copy (the official code re-initialises after copying).
        self.encoder_k = copy.deepcopy(self.encoder_q)
        self.projector_k = copy.deepcopy(self.projector_q)
        for p in list(self.encoder_k.parameters()) + list(self.projector_k.parameters()):
            p.requires_grad_(False)
        queue_gen = torch.Generator().manual_seed(int(cfg.trainer.seed))
        self.queue = MemoryQueue(int(m.queue_size), int(m.feature_dim), generator=queue_gen)
        self.augment_cfg = AugmentConfig.from_dict(OmegaConf.to_container(cfg.augment, resolve=True))
        self.keys_to_enqueue: Tensor | None = None
        self._generator: torch.Generator | None = None
        self._pending_rng: dict[str, Any] | None = None
        self._monitor: dict[str, list[float]] = {}
        self._step_monitor: dict[str, Tensor] = {}
        self._collapsed_last_epoch: dict[str, bool] = {}
        self.last_collapse_stats: dict[str, float] = {}

    # ----- randomness -------------------------------------------------------------------------------------
    @property
    def generator(self) -> torch.Generator:
        """Seeded generator for the batched augmentations, on the module's device (one stream per rank)."""
        if self._generator is None or self._generator.device != self.device:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(int(self.cfg.trainer.seed) * 1000 + self.global_rank)
            self._generator = gen
        return self._generator

    # ----- views and encoders -----------------------------------------------------------------------------
    def augment_normal(self, x: Tensor, tracker: ViewTracker | None = None) -> Tensor:
        return normal_from_config(x, self.generator, self.augment_cfg, tracker=tracker)

    def augment_extreme(self, x: Tensor, tracker: ViewTracker | None = None) -> Tensor:
        return extreme_from_config(x, self.generator, self.layout, self.augment_cfg, tracker=tracker)

    def to_stream(self, x: Tensor) -> Tensor:
        """Joint/motion/bone view, computed after augmentation as in CrosSCLR/AimCLR."""
        return to_stream(x, self.cfg.data.stream, self.layout)

    def encode_query(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(backbone feature h, L2-normalised projection z) of the query encoder."""
        h = self.encoder_q(x)
        z = F.normalize(self.projector_q(h), dim=1)
        if self.training and "h" not in self._step_monitor:
            self._step_monitor = {"h": h.detach(), "z": z.detach()}
        return h, z

    @torch.no_grad()
    def encode_key(self, x: Tensor) -> Tensor:
        return F.normalize(self.projector_k(self.encoder_k(x)), dim=1)

    @property
    def backbone(self) -> torch.nn.Module:
        """The encoder that downstream evaluation uses."""
        return self.encoder_q

    # ----- training -----------------------------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        raise NotImplementedError

    def on_fit_start_hook(self) -> None:
        """Set-up work before the first step (e.g. a statistic over the training set)."""

    def on_fit_start(self) -> None:
        self.on_fit_start_hook()

    def on_train_start(self) -> None:
        if self._pending_rng is not None:
            _set_rng_state(self._pending_rng, self)
            self._pending_rng = None

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self._step_monitor = {}
        self.keys_to_enqueue = None
        loss, logs = self.training_loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.name}: the loss became {loss.item()} at epoch {self.current_epoch}, "
                                     f"step {batch_idx}; lower optim.lr or check the data for NaN")
        size = batch["x"].shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        for key, value in logs.items():
            self.log(f"train/{key}", value, on_step=False, on_epoch=True, batch_size=size)
        if "h" in self._step_monitor:
            for tag in ("h", "z"):
                cos, std = embedding_spread(self._step_monitor[tag])
                self._monitor.setdefault(f"{tag}_cos", []).append(cos)
                self._monitor.setdefault(f"{tag}_std", []).append(std)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # After the optimizer step: the bank was used by the loss's backward, so it is updated only now.
        if self.keys_to_enqueue is not None:
            self.queue.enqueue(self.keys_to_enqueue)
            self.keys_to_enqueue = None
        m = float(self.cfg.method.momentum)
        update_momentum(self.encoder_q, self.encoder_k, m)
        update_momentum(self.projector_q, self.projector_k, m)

    def on_train_epoch_end(self) -> None:
        if not self._monitor:
            return
        stats = {k: float(np.nanmean(v)) for k, v in self._monitor.items()}
        self._monitor = {}
        names = {"h": "backbone", "z": "projector"}
        for tag, label in names.items():
            self.log(f"collapse/{label}_mean_cosine", stats[f"{tag}_cos"], sync_dist=True)
            self.log(f"collapse/{label}_std_ratio", stats[f"{tag}_std"], sync_dist=True)
        self.last_collapse_stats = {f"{names[k[0]]}_{'mean_cosine' if k.endswith('cos') else 'std_ratio'}": v
                                    for k, v in stats.items()}
        for tag, label in names.items():
            cos, std = stats[f"{tag}_cos"], stats[f"{tag}_std"]
            collapsed = cos > COLLAPSE_COSINE or std < COLLAPSE_STD_RATIO
            lasting = collapsed and self._collapsed_last_epoch.get(tag, False)
            self._collapsed_last_epoch[tag] = collapsed
            if lasting:
                rank_zero_warn(
                    f"epochs {self.current_epoch - 1}-{self.current_epoch}: the {label} outputs are collapsing: "
                    f"mean pairwise cosine {cos:.3f} (collapse above {COLLAPSE_COSINE}), per-dimension spread "
                    f"{std:.3f} (healthy 1.0, collapse below {COLLAPSE_STD_RATIO}). The features no longer tell "
                    "samples apart; try a lower optim.lr, model.init=pytorch, or a larger queue or batch.")

    def configure_optimizers(self) -> Any:
        o = self.cfg.optim
        params = [p for p in self.parameters() if p.requires_grad]
        if o.name == "sgd":
            optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                                        nesterov=bool(o.get("nesterov", False)))
        elif o.name == "adam":
            optimizer = torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
        elif o.name == "adamw":
            optimizer = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        else:
            raise ValueError(f"optim.name must be sgd, adam or adamw, got '{o.name}'")
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(o.milestones), gamma=o.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ----- exact resume -------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["skelssl"] = {"method": self.name, "rng": _get_rng_state(self)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        info = checkpoint.get("skelssl", {})
        if info.get("method") not in (None, self.name):
            from skelssl.errors import UserError

            raise UserError(f"this checkpoint was trained with method '{info.get('method')}', not '{self.name}'")
        self._pending_rng = info.get("rng")


def _get_rng_state(module: MoCoMethod) -> dict[str, Any]:
    """Every RNG the training step draws from, as tensors and plain numbers (loadable with weights_only)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "augment": module.generator.get_state(),
             "numpy": {"keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                       "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
             "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], module: MoCoMethod) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    module.generator.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
