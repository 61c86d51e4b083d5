"""MoCoMethod: the Lightning module every contrastive method builds on, and its extension points.

It owns what all MoCo-style methods share: the query encoder and projector, their momentum copies (identical at
start), the memory queue, the seeded augmentation generator, optimizers and schedulers, and the checkpoint state
needed to resume exactly. A method subclass writes `training_loss` and, where its paper needs more, extends:

- `build_projector()` and `build_banks()`: the query projector (the key's is its copy) and the named memory
  banks, called once while the method is built, so a method with other heads or banks builds only its own;
- `momentum_pairs`: the (online, target) module pairs updated by momentum after each step;
- `learnable_params()`: optimiser parameter groups, each may carry its own "lr" (e.g. a classifier head);
- `register_bank(name, bank)` and `enqueue(keys, bank=name)`: named memory banks, each updated only after the
  backward pass (the losses of the step used the bank as it was);
- `negatives(query, key, bank=name)`: the one place every method gets its negatives, where plug-ins filter
  them per query;
- plug-ins (`plugins.<name>.enabled=true`, methods.core.plugins): their own config keys, hooks at fit start,
  after each step and at each epoch end, extra loss terms from the features a method `expose`s;
- `watch(backbone=h, projector=z)`: the features the collapse monitor (a callback) looks at; nothing else is
  watched, so extra forward passes do not disturb it;
- `requires_dense_features`: a method that needs the (N, M, C, T', V) map says so, and is refused on an
  encoder without one when it is built;
- a warm-up stage (`method.warmup` in a method's DEFAULTS, core/warmup.py): the first epochs of the run
  trained with another method's loss (its `stage_loss(section)`) on the same networks; no second model.
- `training_batches(purpose)` / `encode_all(encode, purpose)`: the one way to read the whole training set
  (dataset order, trainer.batch_size, a progress bar) and to encode it in a side-effect-free pass; ActCLR's
  anchor, ActCLR+'s prototypes and ProSL's codebook all read it here. `clean_view(x, lengths)` is how a
  method sees a whole, unaugmented sequence (default: as stored).
Auxiliary passes (actionlets, anchors, attacks) run through `models.passes.side_effect_free`; extra training
inputs that must not enter the running statistics (mixed or masked views) through `models.passes.frozen_statistics`.
"""

from __future__ import annotations

import copy
import random
from typing import Any, Callable, ClassVar, Iterator

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from skelssl.checkpoints import checkpoint_metadata
from skelssl.console import Progress
from skelssl.errors import NonFiniteError, UserError
from skelssl.evaluation.features import load_batch
from skelssl.methods.core.banks import MemoryQueue
from skelssl.methods.core.momentum import update_momentum
from skelssl.methods.core.plugins import PLUGINS, Plugin
from skelssl.methods.core.warmup import WarmupStage
from skelssl.models import build_encoder
from skelssl.models.finite import batchnorm_layers, batchnorm_statistics, first_nonfinite
from skelssl.models.heads import Projector
from skelssl.models.passes import side_effect_free
from skelssl.models.stgcn import init_official_
from skelssl.skeleton.layouts import Layout, get_layout
from skelssl.transforms.pipelines import AugmentConfig, coordinate_channels, extreme_from_config, normal_from_config
from skelssl.transforms.streams import to_stream
from skelssl.transforms.tracking import ViewTracker

__all__ = ["MoCoMethod", "StageLoss"]


StageLoss = Callable[["MoCoMethod", dict[str, Tensor]], tuple[Tensor, dict[str, Any]]]


class MoCoMethod(L.LightningModule):
    """Query/key encoders with momentum update, MLP projectors, FIFO queue (MoCo v2).

    Subclasses set `name`, `DEFAULTS` (their own keys under `cfg.method`) and implement `training_loss`;
    see the module docstring for the extension points.
    """

    name: ClassVar[str] = "moco"
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    requires_dense_features: ClassVar[bool] = False
    # state_dict keys of earlier versions -> their names now (checkpoints written before a rename still load)
    RENAMED_STATE: ClassVar[dict[str, str]] = {}

    def __init__(self, cfg: DictConfig | dict, layout: Layout | str | dict,
                 train_data_info: dict | None = None):
        super().__init__()
        cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
        self.cfg = cfg
        self.layout = get_layout(layout)
        self.train_data_info = dict(train_data_info or {})
        self.save_hyperparameters({"cfg": OmegaConf.to_container(cfg, resolve=True),
                                   "layout": self.layout.to_dict(),
                                   "train_data_info": self.train_data_info})
        m = cfg.method
        self.encoder_q = build_encoder(cfg.model, self.layout,
                                       in_channels=int(self.train_data_info.get("channels", 3)))
        if self.requires_dense_features and not self.encoder_q.dense:
            raise UserError(f"method '{self.name}' needs dense (T', V) feature maps, which encoder "
                            f"'{cfg.model.encoder}' does not give (it gives only a pooled feature); use a dense "
                            "encoder such as model.encoder=stgcn")
        self.projector_q = self.build_projector()
        # The key encoder starts as an exact copy (the official code re-initialises after copying).
        self.encoder_k = copy.deepcopy(self.encoder_q)
        self.projector_k = copy.deepcopy(self.projector_q)
        for p in list(self.encoder_k.parameters()) + list(self.projector_k.parameters()):
            p.requires_grad_(False)
        self._bank_names: list[str] = []
        for name, bank in self.build_banks().items():
            self.register_bank(name, bank)
        if "queue" not in self._bank_names:
            raise ValueError(f"{type(self).__name__}.build_banks() must return the main bank 'queue'")
        self.augment_cfg = AugmentConfig.from_dict(OmegaConf.to_container(cfg.augment, resolve=True))
        self.coordinates = coordinate_channels(self.train_data_info)  # 2 for (x, y, score) keypoints
        self.plugins = nn.ModuleDict(_build_plugins(cfg))
        self._pending_keys: list[tuple[str, Tensor]] = []
        self._skip_step = False  # this step's loss or gradients were not finite and it is skipped
        self._batchnorms: list | None = None  # (name, layer) of every BatchNorm, found at the first step
        self.skipped_steps = 0
        self.watched: dict[str, Tensor] = {}
        self.exposed: dict[str, Tensor] = {}
        self._generator: torch.Generator | None = None
        self._pending_rng: dict[str, Any] | None = None
        for plugin in self.plugins.values():
            plugin.setup(self)
        self.warmup = WarmupStage.from_config(self)  # None unless the method has a warm-up stage switched on

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
        return normal_from_config(x, self.generator, self.augment_cfg, tracker=tracker, coords=self.coordinates)

    def augment_extreme(self, x: Tensor, tracker: ViewTracker | None = None) -> Tensor:
        return extreme_from_config(x, self.generator, self.layout, self.augment_cfg, tracker=tracker,
                                   coords=self.coordinates)

    def to_stream(self, x: Tensor) -> Tensor:
        """Joint/motion/bone view, computed after augmentation as in CrosSCLR/AimCLR."""
        return to_stream(x, self.cfg.data.stream, self.layout)

    def encode_query(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(backbone feature h, L2-normalised projection z) of the query encoder."""
        h = self.encoder_q(x)
        return h, F.normalize(self.projector_q(h), dim=1)

    @torch.no_grad()
    def encode_key(self, x: Tensor) -> Tensor:
        return F.normalize(self.projector_k(self.encoder_k(x)), dim=1)

    @property
    def backbone(self) -> nn.Module:
        """The encoder that downstream evaluation uses."""
        return self.encoder_q

    # ----- networks and banks (hooks, called once while the method is built) --------------------------------
    def build_projector(self) -> nn.Module:
        """The query projector g_q (the key's g_k is its copy): MLP feature -> feature -> method.feature_dim."""
        dim = self.encoder_q.feature_dim
        projector = Projector(dim, dim, int(self.cfg.method.feature_dim))
        if self.cfg.model.init == "official":
            init_official_(projector)
        return projector

    def build_banks(self) -> dict[str, nn.Module]:
        """The named memory banks, "queue" (the one `negatives()` and plug-ins use by default) first."""
        generator = torch.Generator().manual_seed(int(self.cfg.trainer.seed))
        m = self.cfg.method
        return {"queue": MemoryQueue(int(m.queue_size), int(m.feature_dim), generator=generator)}

    # ----- the whole training set ---------------------------------------------------------------------------
    def clean_view(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """How the method sees a whole, unaugmented sequence (e.g. valid frames resampled); default: as stored."""
        return x

    def training_dataset(self, purpose: str) -> Any:
        """The fit's training dataset (a SkeletonDataset); `purpose` names what needs it in the error raised
        without one."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        dataset = getattr(datamodule, "train_dataset", None)
        if dataset is None or getattr(dataset, "data", None) is None:
            raise RuntimeError(f"{self.name} needs the training data (trainer.datamodule.train_dataset) to compute "
                               f"{purpose}")
        return dataset

    def training_batches(self, purpose: str, data: Any = None, lengths: Any = None, rows: Any = None,
                         batch_size: int | None = None, desc: str | None = None
                         ) -> Iterator[tuple[np.ndarray, Tensor, Tensor | None]]:
        """(rows, x (B, C, T, V, M) on the device, valid lengths (B,) or None) over the training set in dataset
        order, `trainer.batch_size` at a time, with a progress bar. data/lengths: an explicit (N, C, T, V, M)
        array (or memmap) and its lengths instead of the fit's training set; rows: only these of its rows."""
        data, lengths = self.training_arrays(purpose, data, lengths)
        rows = np.arange(int(data.shape[0])) if rows is None else np.asarray(rows)
        size = int(batch_size or self.cfg.trainer.batch_size)
        with Progress(len(rows), desc or f"{self.name}: {purpose}", "sequences") as bar:
            for start in range(0, len(rows), size):
                index = rows[start:start + size]
                x = load_batch(data, index, self.device)
                valid = None if lengths is None else torch.as_tensor(np.asarray(lengths)[index], device=self.device)
                yield index, x, valid
                bar.update(len(index))

    def training_arrays(self, purpose: str, data: Any = None, lengths: Any = None) -> tuple[Any, Any]:
        """(data, lengths): the given array and lengths, or the fit's training set's."""
        if data is None:
            dataset = self.training_dataset(purpose)
            # a SkeletonDataset gives its rows in dataset order; any dataset with `data` (and `lengths`) will do
            data = dataset.array() if hasattr(dataset, "array") else dataset.data
            lengths = getattr(dataset, "lengths", None)
        return data, lengths

    @torch.no_grad()
    def encode_all(self, encode: Callable[[Tensor], Tensor], purpose: str, data: Any = None, lengths: Any = None,
                   rows: Any = None, batch_size: int | None = None, desc: str | None = None) -> Tensor:
        """encode(stream(clean_view(x))) of every training sequence (or of `rows`), (N, D) float32 in dataset
        order (or the order of `rows`), in one side-effect-free pass: no dropout, no BatchNorm running statistic
        moved, no gradient. BatchNorm normalises with batch statistics, so the batches are drawn from a
        permutation seeded by trainer.seed, as training's shuffled batches are: on a class-sorted set, batches in
        dataset order would hold one class each, with other statistics than the training steps'."""
        data, lengths = self.training_arrays(purpose, data, lengths)
        rows = np.arange(int(data.shape[0])) if rows is None else np.asarray(rows)
        order = np.random.default_rng(int(self.cfg.trainer.seed)).permutation(len(rows))
        chunks = []
        with side_effect_free(self):
            for _, x, valid in self.training_batches(purpose, data, lengths, rows[order], batch_size, desc):
                chunks.append(encode(self.to_stream(self.clean_view(x, valid))).float())
        shuffled = torch.cat(chunks)
        features = torch.empty_like(shuffled)
        features[torch.as_tensor(order, device=shuffled.device)] = shuffled  # back to the order of `rows`
        return features

    # ----- extension points ---------------------------------------------------------------------------------
    @property
    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) pairs updated by momentum after each step; extend with super().momentum_pairs + ..."""
        return [(self.encoder_q, self.encoder_k), (self.projector_q, self.projector_k)]

    def learnable_params(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups: {"name", "params"} and optionally "lr" / "weight_decay" of their own
        (else optim.lr / optim.weight_decay). Extend with super().learnable_params() + [...]."""
        return [{"name": "encoder", "params": list(self.encoder_q.parameters())},
                {"name": "projector", "params": list(self.projector_q.parameters())}]

    def register_bank(self, name: str, bank: nn.Module) -> nn.Module:
        """Add a named memory bank (a submodule with `bank` (K, D) and `enqueue(keys)`), saved in checkpoints."""
        if name in self._bank_names:
            raise ValueError(f"a memory bank named '{name}' is already registered")
        self.add_module(name, bank)
        self._bank_names.append(name)
        return bank

    def bank(self, name: str = "queue") -> nn.Module:
        if name not in self._bank_names:
            raise KeyError(f"no memory bank named '{name}'; banks: {', '.join(self._bank_names)}")
        return getattr(self, name)

    def enqueue(self, keys: Tensor, bank: str = "queue") -> None:
        """Add keys to a bank after this step's backward pass and optimiser step (not now)."""
        self.bank(bank)  # fails now for an unknown name, not after the step
        self._pending_keys.append((bank, keys.detach()))

    def negatives(self, query: Tensor, key: Tensor | None = None, bank: str = "queue") -> tuple[Tensor, Tensor | None]:
        """The bank's entries (K, D) and which of them each query may use as negatives ((N, K) bool, or None
        for all of them). Every method takes its negatives here; enabled plug-ins filter them."""
        entries = self.bank(bank).bank
        keep = None
        for plugin in self.plugins.values():
            keep = plugin.filter_negatives(self, bank, entries, query, key, keep)
        return entries, keep

    def watch(self, **features: Tensor) -> None:
        """Hand the collapse monitor the features of this step's main view (e.g. backbone=h, projector=z)."""
        self.watched.update({name: value.detach() for name, value in features.items()})

    def expose(self, **features: Tensor) -> None:
        """Make this step's features available to plug-ins (e.g. query=z_q, key=z_k)."""
        self.exposed.update(features)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """What follows each optimiser step: the banks take this step's keys, the targets follow by momentum."""
        for name, keys in self._pending_keys:
            self.bank(name).enqueue(keys)
        self._pending_keys = []
        m = float(self.cfg.method.momentum)
        for online, target in self.momentum_pairs:
            update_momentum(online, target, m)

    # ----- training -----------------------------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        raise NotImplementedError

    @classmethod
    def stage_loss(cls, section: DictConfig) -> "StageLoss":
        """This method's loss as a picklable function of (run, batch), computed on the run's networks with
        `section` as its method.* keys: what a warm-up stage trains with (core/warmup.py). Only a method whose
        whole state is the shared networks and queue defines it (and each subclass must define its own)."""
        raise NotImplementedError(f"method '{cls.name}' has no stage loss")

    def on_fit_start_hook(self) -> None:
        """Set-up work before the first step (e.g. a statistic over the training set)."""

    def on_fit_start(self) -> None:
        self.on_fit_start_hook()
        for plugin in self.plugins.values():
            plugin.on_fit_start(self)

    def on_train_start(self) -> None:
        if self._pending_rng is not None:
            _set_rng_state(self._pending_rng, self)
            self._pending_rng = None

    def in_warmup(self) -> bool:
        """Whether this epoch belongs to the warm-up stage (trained with another method's loss)."""
        return self.warmup is not None and self.warmup.active(self.current_epoch)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        self.watched, self.exposed, self._pending_keys, self._skip_step = {}, {}, [], False
        if self.cfg.trainer.get("nonfinite", "stop") == "skip":  # a skipped step must not move the statistics
            self._statistics_before = [(b, b.detach().clone()) for m in self.modules()
                                       if isinstance(m, nn.modules.batchnorm._BatchNorm)
                                       for b in m.buffers()]
        loss, logs = self.warmup.training_loss(self, batch) if self.in_warmup() else self.training_loss(batch)
        for plugin in self.plugins.values():
            extra, extra_logs = plugin.extra_loss(self, batch)
            if extra is not None:
                loss = loss + extra
            logs.update({f"{plugin.name}/{key}": value for key, value in extra_logs.items()})
        if not torch.isfinite(loss):
            terms = ", ".join(f"{key} {float(value):.4g}" for key, value in logs.items()
                              if isinstance(value, (Tensor, float, int)))
            self._not_finite(f"the loss became {loss.item()} ({terms or 'no terms logged'})", batch_idx)
            return None  # Lightning skips the backward pass and the optimiser step
        if self._batchnorms is None:  # the layers are fixed once training runs (global BatchNorm converted before)
            self._batchnorms = batchnorm_layers(self)
        statistic = first_nonfinite(batchnorm_statistics(self._batchnorms))
        if statistic is not None:  # a finite loss can hide it: every sequence then gets the same feature
            self._not_finite(f"the BatchNorm statistic '{statistic}' became infinite or NaN in this step's forward "
                             "pass (a batch whose spread float32 cannot hold: check the data's scale with "
                             "`skelssl info`)", batch_idx)
            return None
        size = batch["x"].shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        for key, value in logs.items():
            self.log(f"train/{key}", value, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def _not_finite(self, what: str, batch_idx: int) -> None:
        """A non-finite loss or gradient: stop with a message (default), or skip the step and count it."""
        where = f"{self.name}: at epoch {self.current_epoch}, step {self.global_step} (batch {batch_idx}), {what}"
        limit = int(self.cfg.trainer.get("max_nonfinite_skips", 0))
        if self.cfg.trainer.get("nonfinite", "stop") != "skip" or self.skipped_steps >= limit:
            raise NonFiniteError(f"{where}. The last good checkpoint is kept. Lower optim.lr, check the data for "
                                 "NaN (skelssl info), or set trainer.nonfinite=skip to skip such steps"
                                 + (f" (stopped after {limit} skipped steps)" if self.skipped_steps else ""))
        self.skipped_steps += 1
        self._skip_step = True
        self._pending_keys = []  # keys of a skipped step never reach a bank
        with torch.no_grad():  # nor do its batch's BatchNorm statistics
            for buffer, before in getattr(self, "_statistics_before", []):
                buffer.copy_(before)
        rank_zero_warn(f"{where}; step skipped ({self.skipped_steps} of at most {limit})")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads and not torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum()):
            self._not_finite("a gradient became infinite or NaN", self.trainer.fit_loop.epoch_loop.batch_idx)
            for group in optimizer.param_groups:  # skipped: no parameter receives this step's update
                for p in group["params"]:
                    p.grad = None

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        if self._skip_step:
            self._pending_keys = []
            return
        self.after_optimizer_step()
        weight = first_nonfinite(self.named_parameters())
        if weight is not None:  # an update cannot be undone: stop, whatever trainer.nonfinite says
                raise NonFiniteError(f"{self.name}: at epoch {self.current_epoch}, step {self.global_step}, the weight "
                                 f"'{weight}' became infinite or NaN in the optimiser step. The last good checkpoint "
                                 "is kept. Lower optim.lr (or check the data's scale with `skelssl info`)")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        for plugin in self.plugins.values():
            plugin.on_train_batch_end(self)

    def on_train_epoch_end(self) -> None:
        for plugin in self.plugins.values():
            plugin.on_train_epoch_end(self)

    def configure_optimizers(self) -> Any:
        o = self.cfg.optim
        groups = self.learnable_params() + [g for p in self.plugins.values() for g in p.learnable_params()]
        _check_groups(self, groups)
        if o.name == "sgd":
            optimizer = torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                                        nesterov=bool(o.get("nesterov", False)))
        elif o.name == "adam":
            optimizer = torch.optim.Adam(groups, lr=o.lr, weight_decay=o.weight_decay)
        elif o.name == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
        else:
            raise UserError(f"optim.name must be sgd, adam or adamw, got '{o.name}'")
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(o.milestones), gamma=o.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ----- exact resume -------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current if self._trainer is not None else None
        checkpoint["skelssl"] = {"method": self.name, "rng": _get_rng_state(self), **checkpoint_metadata(self.cfg),
                                 # where the data order stands: batches of this epoch already trained on
                                 "data_position": {"epoch": int(self.current_epoch),
                                                   "batches": int(progress.processed) if progress else 0},
                                 "skipped_steps": int(self.skipped_steps)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        info = checkpoint.get("skelssl", {})
        if info.get("method") not in (None, self.name):
            raise UserError(f"this checkpoint was trained with method '{info.get('method')}', not '{self.name}'")
        checkpoint["state_dict"] = self.migrate_state_dict(checkpoint["state_dict"])
        self._pending_rng = info.get("rng")
        self.skipped_steps = int(info.get("skipped_steps", 0))

    @classmethod
    def migrate_state_dict(cls, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A state_dict of an earlier version with its renamed entries under their current names."""
        return {cls.RENAMED_STATE.get(key, key): value for key, value in state.items()}


def _build_plugins(cfg: DictConfig) -> dict[str, Plugin]:
    plugins = {}
    for name, section in (cfg.get("plugins") or {}).items():
        if section.get("enabled", False):
            plugins[name] = PLUGINS.lookup(name)(section)
    return plugins


def _check_groups(module: nn.Module, groups: list[dict[str, Any]]) -> None:
    """Every trainable parameter in exactly one group: a forgotten one would silently never train."""
    grouped: dict[int, str] = {}
    for group in groups:
        for p in group["params"]:
            if id(p) in grouped:
                raise ValueError(f"a parameter is in two optimiser groups ('{grouped[id(p)]}', '{group['name']}')")
            grouped[id(p)] = group["name"]
    missing = [name for name, p in module.named_parameters() if p.requires_grad and id(p) not in grouped]
    if missing:
        raise ValueError(f"trainable parameters in no optimiser group (add them to learnable_params()): "
                         f"{', '.join(missing[:5])}")


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
