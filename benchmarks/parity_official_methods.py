"""One training step of skelssl's methods beside the authors' own code: the same initial weights, the same input
views, the losses and the gradients in float64.

    python benchmarks/parity_official_methods.py --work /tmp/parity-methods \
        [--crossclr /work/.mirror/LinguoLi+CrosSCLR/repo] [--aimclr /work/.mirror/Levigty+AimCLR/repo] \
        [--actclr /work/.mirror/LanglandsLin+ActCLR/repo] [--cmd /work/.mirror/maoyunyao+CMD/repo]

Each --REPO is the bare git directory of a snapshot of the authors' repository (the `fetch` tool's mirror). Their
files are read from it at run time (`git show HEAD:...` into --work; nothing of them is kept in skelssl) and
patched there for the CPU, as their code assumes one GPU per process: `.cuda()` is the identity while their code
runs, the queue's GPU index (`keys.device.index`, None on the CPU) falls back to 0, and ActCLR's shuffle-BN and
key gather run in a one-process gloo group. Per family:

- SkeletonCLR (CrosSCLR's `net/skeletonclr.py`, their ST-GCN) and AimCLR (AimCLR's `net/aimclr.py` with its EADM
  `net/att_drop.py`): their model is built (seed 0), its tensors go into skelssl's method through skelssl's own
  importer (`skelssl.interop.torchlight.read_torchlight`, the pretext checkpoint route), its queue becomes ours.
  The views are drawn once with skelssl's augmentations and fed to both; their loss is the formula of their
  processor's `train()` (`processor/pretrain_*.py`), ours `training_loss`. Dropout is 0 on both sides (a random
  mask cannot be shared); BatchNorm in train mode. AimCLR is run with the official-code options
  (`eadm_temporal=element eadm_renorm=batch eadm_unbiased=true nnm_reduction=mean`) and once with the paper's
  defaults to show what those options change; NNM (stage 2) too.
- ActCLR (LanglandsLin/ActCLR's `net/actclr.py`, `net/st_gcn.py`): see `actclr_rows`.
- The ISC/CMD BiGRU (CMD's `moco/GRU.py`): tensors copied one by one (the importer refuses BiGRU checkpoints,
  see skelssl/interop/contrast.py), forward output and gradients of a loss on it; see `bigru_rows`.

Printed: one table row per comparison, the largest absolute difference of the loss, of the gradients over all
parameters, and of the other outputs named; exits 1 when a row expected to agree differs by more than 1e-5.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from unittest import mock

import torch
import torch.distributed as dist
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn

from skelssl.config import defaults_for
from skelssl.methods.actclr import actclr as ours_actclr
from skelssl.methods.actclr.actionlet import ActionletSelector, anchor_similarity_objective, upsample_to_frames
from skelssl.methods.actclr.safp import safp_key
from skelssl.methods.aimclr import aimclr as ours_aimclr
from skelssl.methods.core import losses as ours_losses
from skelssl.console import run_script
from skelssl.interop.sources import SourceFile
from skelssl.interop.torchlight import read_torchlight
from skelssl.methods.core.base import MoCoMethod
from skelssl.methods.registry import build_method
from skelssl.models.heads import Projector
from skelssl.models.recurrent import BiGRU
from skelssl.transforms.tracking import ViewTracker

MIRRORS = Path("/work/.mirror")
TOLERANCE = 1e-5
BATCH, FRAMES, QUEUE = 4, 24, 64
MODULE_ROOTS = ("net", "torchlight", "moco")  # the authors' top-level packages (each repository has its own `net`)
# modules their files import but never use on this path (torchlight's HDF5 logger, CMD's unused torchvision):
# an empty module stands in for each one not installed
UNUSED_IMPORTS = ("h5py", "torchvision")
TORCHLIGHT = ("torchlight/torchlight/__init__.py", "torchlight/torchlight/io.py", "torchlight/torchlight/gpu.py")
STGCN_FILES = ("net/__init__.py", "net/st_gcn.py", "net/utils/__init__.py", "net/utils/graph.py",
               "net/utils/tgcn.py")
PRECISE = "; ours without the float32 cast of q·m (diagnostic)"
# text patches applied to the shown files (their CPU needs): (file, old, new)
GPU_INDEX = ("keys.device.index", "(keys.device.index or 0)")


@dataclass
class Row:
    """One line of the table: what was compared and the largest absolute differences found."""

    family: str
    setting: str
    loss_ours: float
    loss_theirs: float
    differences: dict[str, float] = field(default_factory=dict)
    expected_equal: bool = True
    note: str = ""

    @property
    def worst(self) -> float:
        loss = abs(self.loss_ours - self.loss_theirs)
        return max([0.0 if loss != loss else loss, *self.differences.values()])


# ----- the authors' code, read from a snapshot ----------------------------------------------------------------
def commit_of(repo: Path) -> str:
    return subprocess.run(["git", f"--git-dir={repo}", "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def write_authors_files(repo: Path, names: tuple[str, ...], target: Path,
                        patches: tuple[tuple[str, str], ...] = (), commit: str = "HEAD") -> None:
    """git show <commit>:<name> for each name into target (torchlight/torchlight/x.py as torchlight/x.py), with the
    text patches applied (each must apply to at least one file)."""
    applied = {old: 0 for old, _ in patches}
    for name in names:
        shown = subprocess.run(["git", f"--git-dir={repo}", "show", f"{commit}:{name}"], capture_output=True, check=False)
        text = shown.stdout.decode() if shown.returncode == 0 else ""  # an absent __init__.py: empty
        for old, new in patches:
            applied[old] += text.count(old)
            text = text.replace(old, new)
        path = target / (name[len("torchlight/"):] if name.startswith("torchlight/torchlight/") else name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    missing = [old for old, count in applied.items() if count == 0]
    if missing:
        raise RuntimeError(f"{repo}: the CPU patches {missing} found nothing to replace (the code has changed)")


def forget_authors_modules() -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in MODULE_ROOTS]:
        del sys.modules[name]


@contextlib.contextmanager
def authors_code(repo: Path, names: tuple[str, ...], work: Path,
                 patches: tuple[tuple[str, str], ...] = (), commit: str = "HEAD") -> Iterator[None]:
    """Their files (at `commit`) importable (first on sys.path) and `.cuda()` the identity, for the duration of
    the block."""
    target = work / repo.parent.name / commit
    write_authors_files(repo, names, target, patches, commit)
    forget_authors_modules()
    stand_ins = {name: types.ModuleType(name) for name in UNUSED_IMPORTS
                 if name not in sys.modules and importlib.util.find_spec(name) is None}
    sys.modules.update(stand_ins)
    sys.path.insert(0, str(target))
    try:
        with mock.patch.object(torch.Tensor, "cuda", lambda self, *args, **kwargs: self):
            yield
    finally:
        sys.path.remove(str(target))
        forget_authors_modules()
        for name in stand_ins:
            del sys.modules[name]


# ----- the same weights, the same views -----------------------------------------------------------------------
def skelssl_method(name: str, **overrides: Any) -> MoCoMethod:
    cfg = defaults_for(name)
    cfg.method = OmegaConf.merge(cfg.method, {"queue_size": QUEUE}, overrides)
    cfg.model.stgcn.dropout = 0.0  # a random mask cannot be shared with their code
    cfg.model.stgcn.official_graph = True
    return build_method(cfg, "ntu25", seed=1)  # weights replaced by theirs below


def load_theirs_into_ours(theirs: nn.Module, ours: MoCoMethod) -> dict[str, str]:
    """Their pretext state (encoder_q, encoder_k, queue) into our method through skelssl's torchlight importer;
    returns their parameter name -> ours."""
    state = {k: v.detach().clone() for k, v in theirs.state_dict().items()}
    source = SourceFile(path=Path("authors-model.pt"), sha256="", tensors=state)
    [imported] = read_torchlight(source, head="projector")
    placed = {k: v for k, v in imported.state.items() if not k.startswith("source.")}
    missing, unexpected = ours.load_state_dict(placed, strict=False)
    # not in their file: the queue (copied below), ActCLR's anchor and smoothing graph (method state of ours)
    left = [k for k in missing if not k.startswith(("queue.", "static_anchor.", "selector."))]
    if left or unexpected:
        raise RuntimeError(f"import did not fill our method: missing {left}, unexpected {unexpected}")
    with torch.no_grad():
        ours.queue.bank.copy_(imported.state["source.queue"].t())
    return dict(imported.key_map)


def feed_views(method: MoCoMethod, normal: list[Tensor], extreme: list[Tensor]) -> None:
    """method.augment_normal / augment_extreme return these views, in this order, instead of drawing new ones."""
    normal_views, extreme_views = iter(normal), iter(extreme)
    method.augment_normal = lambda x, tracker=None: next(normal_views)
    method.augment_extreme = lambda x, tracker=None: next(extreme_views)


def skeleton_batch(n: int = BATCH, t: int = FRAMES, seed: int = 0) -> Tensor:
    """A small float64 batch with motion (a sine per joint and coordinate), the second person of half the
    samples zero as in single-person NTU sequences."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.randn(n, 3, t, 25, 2, generator=g, dtype=torch.float64)
    phase = torch.linspace(0, 6, t, dtype=torch.float64).view(1, 1, t, 1, 1)
    x = x + torch.sin(phase) * torch.randn(n, 3, 1, 25, 1, generator=g, dtype=torch.float64)
    x[n // 2:, :, :, :, 1] = 0
    return x


def hard_queue(theirs: nn.Module, ours: MoCoMethod, size: int = QUEUE) -> None:
    """Both queues filled with the key encoder's keys of `size` other sequences (a copy of their key encoder,
    so that no running statistic moves): negatives as similar as the positive, so that the loss and its
    gradients are far from zero (with a random queue the InfoNCE loss of a fresh model is ~1e-4)."""
    with torch.no_grad():
        keys = F.normalize(copy.deepcopy(theirs.encoder_k)(skeleton_batch(n=size, seed=1)), dim=1)
        theirs.queue.copy_(keys.t())
        ours.queue.bank.copy_(keys)


def draw_views(method: MoCoMethod, x: Tensor, normal: int, extreme: int) -> tuple[list[Tensor], list[Tensor]]:
    with torch.no_grad():
        return ([method.augment_normal(x) for _ in range(normal)],
                [method.augment_extreme(x) for _ in range(extreme)])


def gradient_difference(theirs: nn.Module, ours: nn.Module, names: dict[str, str],
                        reorder: Callable[[str, Tensor], Tensor] | None = None) -> tuple[float, float, int]:
    """(max |grad ours - grad theirs| over every parameter of theirs that `names` maps to ours, the largest |grad|,
    the number of parameters compared). A parameter with a gradient on one side only counts as its size; a
    trainable parameter of theirs outside `names` must have no gradient. reorder(their name, their gradient):
    their gradient in our layout (the BiGRU's input columns)."""
    ours_params = dict(ours.named_parameters())
    worst, scale, count = 0.0, 0.0, 0
    for name, p in theirs.named_parameters():
        if not p.requires_grad:
            continue
        if name not in names:
            if p.grad is not None and p.grad.abs().max() > 0:
                raise RuntimeError(f"their '{name}' has a gradient and no counterpart here")
            continue
        q = ours_params[names[name]]
        g_theirs = torch.zeros_like(p) if p.grad is None else p.grad
        g_theirs = reorder(name, g_theirs) if reorder else g_theirs
        g_ours = torch.zeros_like(q) if q.grad is None else q.grad
        worst = max(worst, (g_ours.reshape(g_theirs.shape) - g_theirs).abs().max().item())
        scale = max(scale, g_theirs.abs().max().item())
        count += 1
    return worst, scale, count


def buffer_difference(theirs: nn.Module, ours: MoCoMethod, names: dict[str, str]) -> float:
    """max |difference| of the BatchNorm running statistics after the step (both encoders)."""
    ours_buffers = dict(ours.named_buffers())
    return max((ours_buffers[names[k]].double() - v.double()).abs().max().item()
               for k, v in theirs.named_buffers() if "running" in k)


@contextlib.contextmanager
def bank_logits_in_input_precision(enabled: bool) -> Iterator[None]:
    """Diagnostic: skelssl's bank similarities without their float32 cast (core/losses.py `similarity_to_bank`
    and `info_nce_logits` compute q·m in float32 whatever the input's dtype, for bfloat16 autocast); with it
    removed, a float64 model's logits stay float64. Changes only this process, never a file."""
    if not enabled:
        yield
        return

    def similarity(q: Tensor, bank: Tensor) -> Tensor:
        return q @ bank.t()

    def logits(q: Tensor, k: Tensor, bank: Tensor, temperature: float, keep: Tensor | None = None) -> Tensor:
        negatives = ours_losses.remove_entries(similarity(q, bank) / temperature, keep)
        return torch.cat([(q * k).sum(dim=1, keepdim=True) / temperature, negatives], dim=1)

    with contextlib.ExitStack() as stack:
        for module in (ours_losses, ours_actclr):
            stack.enter_context(mock.patch.object(module, "similarity_to_bank", similarity))
        for module in (ours_losses, ours_aimclr):
            stack.enter_context(mock.patch.object(module, "info_nce_logits", logits))
        yield


# ----- SkeletonCLR and AimCLR ---------------------------------------------------------------------------------
def skeletonclr_rows(repo: Path, work: Path) -> list[Row]:
    return [skeletonclr_row(repo, work, precise) for precise in (False, True)]


def same_start(theirs: nn.Module, ours: MoCoMethod) -> tuple[nn.Module, MoCoMethod, dict[str, str]]:
    """Their weights in ours, both in float64 and train mode, both queues the same hard negatives."""
    names = load_theirs_into_ours(theirs, ours)
    theirs, ours = theirs.double().train(), ours.double().train()
    hard_queue(theirs, ours)
    return theirs, ours, names


def our_step(family: str, setting: str, theirs: nn.Module, ours: MoCoMethod, names: dict[str, str], x: Tensor,
             their_loss: Tensor, precise: bool, equal: bool = True) -> Row:
    """Our training_loss on x (the views already fed) and its backward pass, compared with theirs (their
    backward done, their queue's first BATCH columns the keys they enqueued)."""
    with bank_logits_in_input_precision(precise):
        loss, _ = ours.training_loss({"x": x})
    loss.backward()
    grad, scale, count = gradient_difference(theirs, ours, names)
    their_keys = theirs.queue[:, :BATCH].t()
    return Row(family, setting + PRECISE * precise, loss.item(), their_loss.item(),
               {"gradients": grad, "enqueued keys": (ours._pending_keys[0][1] - their_keys).abs().max().item(),
                "BN statistics": buffer_difference(theirs, ours, names)},
               expected_equal=equal, note=f"{count} parameters, largest |grad| {scale:.2g}")


def skeletonclr_row(repo: Path, work: Path, precise: bool) -> Row:
    with authors_code(repo, STGCN_FILES + TORCHLIGHT + ("net/skeletonclr.py",), work, (GPU_INDEX,)):
        from net.skeletonclr import SkeletonCLR as TheirSkeletonCLR  # noqa: PLC0415 - their code, read at run time
        torch.manual_seed(0)
        theirs, ours, names = same_start(
            TheirSkeletonCLR(base_encoder="net.st_gcn.Model", queue_size=QUEUE, in_channels=3, hidden_channels=16,
                             hidden_dim=256, dropout=0.0, num_class=60), skelssl_method("skeletonclr"))
        x = skeleton_batch()
        (query, key), _ = draw_views(ours, x, 2, 0)
        feed_views(ours, [query, key], [])
        logits, labels = theirs(query, key)
        their_loss = F.cross_entropy(logits, labels)  # processor/pretrain_skeletonclr.py: self.loss(output, target)
        their_loss.backward()
    return our_step("SkeletonCLR", "InfoNCE, queue", theirs, ours, names, x, their_loss, precise)


AIMCLR_OFFICIAL = {"eadm_temporal": "element", "eadm_renorm": "batch", "eadm_unbiased": True,
                   "nnm_reduction": "mean"}


def aimclr_rows(repo: Path, work: Path) -> list[Row]:
    rows = []
    # (setting, our options, NNM, expected equal, our bank logits in float64)
    settings = [("D³M, official options", AIMCLR_OFFICIAL, False, True, False),
                ("D³M + NNM, official options", AIMCLR_OFFICIAL, True, True, False),
                ("D³M + NNM, official options", AIMCLR_OFFICIAL, True, True, True),
                ("D³M, paper defaults", {}, False, False, False),
                ("D³M + NNM, paper defaults", {}, True, False, False)]
    with authors_code(repo, STGCN_FILES + TORCHLIGHT + ("net/aimclr.py", "net/att_drop.py"), work, (GPU_INDEX,)):
        from net.aimclr import AimCLR as TheirAimCLR  # noqa: PLC0415 - their code, read at run time
        for setting, options, nnm, equal, precise in settings:
            torch.manual_seed(0)
            theirs, ours, names = same_start(
                TheirAimCLR(base_encoder="net.st_gcn.Model", queue_size=QUEUE, in_channels=3, hidden_channels=16,
                            hidden_dim=256, dropout=0.0, num_class=60),
                skelssl_method("aimclr", nnm_start_epoch=0 if nnm else 150, **options))
            x = skeleton_batch()
            (query, key), (extreme,) = draw_views(ours, x, 2, 1)
            feed_views(ours, [query, key], [extreme])
            # processor/pretrain_aimclr.py train(): the model takes (extreme, normal query, key)
            out1, target1, out2, out3, target2 = theirs(extreme, query, key, nnm=nnm, topk=1)
            if nnm:
                main = (-(F.log_softmax(out1, dim=1) * target1).sum(1) / target1.sum(1)).mean()
            else:
                main = F.cross_entropy(out1, target1)
            d3m = (-(torch.log(out2) * target2).sum(1).mean() - (torch.log(out3) * target2).sum(1).mean()) / 2
            their_loss = main + d3m
            their_loss.backward()
            rows.append(our_step("AimCLR", setting, theirs, ours, names, x, their_loss, precise, equal))
    return rows


# ----- the ISC/CMD BiGRU -------------------------------------------------------------------------------------
GRU_FILES = ("moco/__init__.py", "moco/GRU.py", "moco/builder_cmd.py")
GRU_HIDDEN = 64  # per direction (1024 in ISC/CMD; the comparison does not depend on the width)


def input_order(joints: int = 25, channels: int = 3, persons: int = 2) -> Tensor:
    """index[i] = the position in CMD's frame vector ((joint, coordinate, person) order, their
    `permute(0, 2, 3, 1, 4)`) of our i-th input ((person, joint, coordinate), models/recurrent.py)."""
    theirs = torch.arange(joints * channels * persons).view(joints, channels, persons)
    return theirs.permute(2, 0, 1).reshape(-1)


def to_our_order(name: str, value: Tensor) -> Tensor:
    """Their BIGRU tensor (or its gradient) `name` in our input order (input BatchNorm, first-layer input weights)."""
    if name.startswith("input_norm."):
        return value[input_order()]
    if name.startswith("encoder.gru.weight_ih_l0"):
        return value[:, input_order()]
    return value


def copy_bigru(theirs: nn.Module, ours: BiGRU) -> dict[str, str]:
    """Their BIGRU's tensors into ours one by one (the input columns reordered); their parameter name -> ours."""
    names = {f"encoder.gru.{k}": f"rnn.{k}" for k, _ in ours.rnn.named_parameters()}
    names.update({f"input_norm.{k}": f"input_norm.{k}" for k in ("weight", "bias")})
    buffers = {f"input_norm.{k}": f"input_norm.{k}" for k in ("running_mean", "running_var")}
    source, target = theirs.state_dict(), ours.state_dict()
    with torch.no_grad():
        for their_name, our_name in {**names, **buffers}.items():
            target[our_name].copy_(to_our_order(their_name, source[their_name]))
    return names


def bigru_rows(repo: Path, work: Path) -> list[Row]:
    """Their `MoCo(pretrain=False)` joint encoder (their flattening and BIGRU, `knn_eval=True`: the 2H feature
    at the last frame) beside our BiGRU (pooling final) with the same weights, on the same (N, C, T, V, M)
    input, BatchNorm in train mode; the loss is a fixed random weighting of the feature (or of its first half,
    the forward direction). With one layer the forward direction must agree; their second direction is a GRU
    run forward in time (per-frame calls that carry the state), which `forward_in_time` checks by an
    independent route."""
    rows = []
    with authors_code(repo, GRU_FILES, work), torch_default_dtype(torch.float64):
        from moco.builder_cmd import MoCo as TheirMoCo  # noqa: PLC0415 - their code, read at run time
        for layers in (1, 3):
            for part in ("forward direction", "whole feature"):
                torch.manual_seed(0)
                with contextlib.redirect_stdout(None):  # their init prints every layer
                    their_moco = TheirMoCo("seq-based", {"en_input_size": 150, "en_hidden_size": GRU_HIDDEN,
                                                         "en_num_layers": layers, "num_class": 128}, pretrain=False)
                theirs = their_moco.encoder_q.train()
                ours = BiGRU("ntu25", hidden_size=GRU_HIDDEN, num_layers=layers, input_frames=FRAMES).double()
                ours.train()
                names = copy_bigru(theirs, ours)
                caught: dict[str, Tensor] = {}
                ours.rnn.register_forward_hook(lambda module, inputs, output: caught.update(tokens=inputs[0]))
                x = skeleton_batch()
                their_feature = their_moco(x, view="joint", knn_eval=True)
                feature = ours(x)
                width = GRU_HIDDEN if part == "forward direction" else 2 * GRU_HIDDEN
                weights = torch.randn(feature.shape, generator=torch.Generator().manual_seed(2),
                                      dtype=torch.float64)[:, :width]
                their_loss = (their_feature[:, :width] * weights).sum()
                their_loss.backward()
                loss = (feature[:, :width] * weights).sum()
                loss.backward()
                grad, scale, count = gradient_difference(theirs, ours, names, to_our_order)
                differences = {"gradients": grad,
                               "feature": (feature[:, :width] - their_feature[:, :width]).abs().max().item()}
                differences["BN statistics"] = max(
                    (getattr(ours.input_norm, k) - to_our_order(f"input_norm.{k}", getattr(theirs.input_norm, k)))
                    .abs().max().item() for k in ("running_mean", "running_var"))
                if part == "whole feature":
                    differences["theirs vs both directions forward in time"] = forward_in_time(
                        ours, caught["tokens"], their_feature)
                rows.append(Row(f"BiGRU ({layers} layer{'s' * (layers > 1)})", part, loss.item(),
                                their_loss.item(), differences, expected_equal=part == "forward direction"
                                and layers == 1, note=f"{count} parameters, largest |grad| {scale:.2g}"))
    return rows


def forward_in_time(ours: BiGRU, tokens: Tensor, their_feature: Tensor) -> float:
    """max |their feature - the last frame of a stack in which each layer's two directions are one-directional
    GRUs with our weights of that direction, both run forward in time, their outputs joined| (an independent
    route to what per-frame calls that carry the state compute)."""
    layer_input = tokens.detach()
    with torch.no_grad():
        for layer in range(ours.rnn.num_layers):
            outputs = []
            for suffix in ("", "_reverse"):
                gru = nn.GRU(layer_input.shape[-1], GRU_HIDDEN, batch_first=True).double()
                for name, p in gru.named_parameters():
                    p.copy_(getattr(ours.rnn, f"{name[:-1]}{layer}{suffix}"))
                outputs.append(gru(layer_input)[0])
            layer_input = torch.cat(outputs, dim=-1)
    return (layer_input[:, -1] - their_feature).abs().max().item()


@contextlib.contextmanager
def torch_default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """CMD's BIGRU builds its state buffers with torch.Tensor()/torch.empty: float64 for a float64 run."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


# ----- ActCLR -----------------------------------------------------------------------------------------------
ACTCLR_FILES = STGCN_FILES + ("torchlight/__init__.py", "torchlight/io.py", "torchlight/gpu.py", "net/actclr.py")
# The last commit with a linear projector: at HEAD (7c63e60) the projector is a 1x1 convolution and
# `_generate_mask` normalises a size-1 axis, so its gradient, hence the actionlet, is zero (REFERENCE_NOTES).
ACTCLR_LINEAR = "5e038f096d25a8a79e9095ac6760d69a98877a22"
# at that commit the Skeleton Mix key broadcasts (N,) against (N, 128), which runs only at batch 128; their
# next commit's fix, applied as a load-time patch
MIX_KEY_FIX = ("kc = k * c + k[randidx] * p", "kc = k * c[:, None] + k[randidx] * p[:, None]")
ACTCLR_QUEUE = 8192  # their select_topk keeps 8192 entries: the queue must hold at least that many
ACTCLR_OFFICIAL = {"actionlet_map": "official", "anchor": "batch", "anchor_batch": "own", "safp": "code",
                   "mining_topk": 8192,
                   "mining_exclude_above": 0.95, "mining_square_query": True, "queue_size": ACTCLR_QUEUE}


@contextlib.contextmanager
def one_process_group(work: Path) -> Iterator[None]:
    """A gloo group of one process: their shuffle-BN and key gather (torch.distributed) run as the identity."""
    if dist.is_initialized():
        yield
        return
    dist.init_process_group("gloo", init_method=f"file://{work / 'gloo-rendezvous'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()
        (work / "gloo-rendezvous").unlink(missing_ok=True)


def their_dense_and_anchor(encoder: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """(their last feature map (N·M, C, T', V) of x, their anchor embedding of x's batch mean), both as their
    forward(key=True) computes them (BatchNorm in train mode, the anchor a batch of its own)."""
    caught: dict[str, Tensor] = {}
    hook = encoder.st_gcn_networks[-1].register_forward_hook(lambda m, i, out: caught.update(dense=out[0]))
    with torch.no_grad():
        [anchor] = encoder(x.mean(dim=0, keepdim=True))
        encoder(x)
    hook.remove()
    return caught["dense"], anchor


def our_projector(their_fc: nn.Module) -> Projector:
    """Our projector with their (Linear-ReLU-Linear or 1x1-conv) fc's weights."""
    projector = Projector(256, 256, 128).double()
    with torch.no_grad():
        for index in (0, 2):
            projector[index].weight.copy_(their_fc[index].weight.reshape(projector[index].weight.shape))
            projector[index].bias.copy_(their_fc[index].bias)
    return projector


def actionlet_map_row(theirs: nn.Module, x: Tensor, commit: str) -> Row:
    """The official map on the same dense features and anchor embedding: their `_generate_mask` vs our
    ActionletSelector(map="official") with the anchor objective on our projector holding their fc."""
    encoder = theirs.encoder_k
    dense, anchor = their_dense_and_anchor(encoder, x)
    n, m = x.shape[0], x.shape[4]
    their_mask = encoder._generate_mask(dense, n, m, anchor).view(n, m, *dense.shape[2:])
    selector = ActionletSelector("ntu25", map="official").double()
    dense_ours = dense.view(n, m, *dense.shape[1:])
    _, mask = selector.select(dense_ours, anchor_similarity_objective(our_projector(encoder.fc), anchor))
    linear = commit == ACTCLR_LINEAR
    return Row("ActCLR", f"actionlet map, official, same features ({commit[:7]}, "
               f"{'linear' if linear else '1x1-conv'} projector)", float("nan"), float("nan"),
               {"actionlet": (mask - their_mask).abs().max().item()}, expected_equal=linear,
               note=f"cells on: ours {mask.mean().item():.3f}, theirs {their_mask.mean().item():.3f}")


def safp_rows(theirs: nn.Module, x: Tensor) -> list[Row]:
    """Their key, normalise(0.5·g(GAP(h)) + 0.5·g(maskpool(h))) with their mask, vs our safp="code" key
    (safp_key) on the same features and mask; and our paper SAFP key g(SAFP(h)), to show what the option changes."""
    encoder = theirs.encoder_k
    dense, anchor = their_dense_and_anchor(encoder, x)
    n, m = x.shape[0], x.shape[4]
    with torch.no_grad():
        k_global, k_masked, mask = encoder(x, key=True, mean_feat=anchor)
        their_key = F.normalize(0.5 * k_global + 0.5 * k_masked, dim=1)
        g = our_projector(encoder.fc)
        dense = dense.view(n, m, *dense.shape[1:])
        mask = mask.view(n, m, *dense.shape[3:]).double()  # their _generate_mask returns float32
        code = F.normalize(safp_key(dense, mask, g, "code", 0.5), dim=1)
        paper = F.normalize(safp_key(dense, mask, g, "paper"), dim=1)
    return [Row("ActCLR", "SAFP key, safp=code, same features and mask", float("nan"), float("nan"),
                {"key": (code - their_key).abs().max().item()},
                note="their mask is float32; both mix the projections after g, masked mean over Σmask + 1e-5"),
            Row("ActCLR", "SAFP key, safp=paper (eq. 8), same features and mask", float("nan"), float("nan"),
                {"key": (paper - their_key).abs().max().item()}, expected_equal=False,
                note="eq. 8 pools with the actionlet alone and projects once")]


def mining_row(theirs: nn.Module, their_kld: Callable[[Tensor, Tensor], Tensor]) -> Row:
    """Similarity mining on the same query, key and bank: their kld(select_topk((q·M)², k·M)) vs our
    similarity_mining_loss with the official options; gradients with respect to the unnormalised query."""
    g = torch.Generator().manual_seed(3)
    u = torch.randn(BATCH, 128, generator=g, dtype=torch.float64)
    z_key = F.normalize(u + 0.3 * torch.randn(u.shape, generator=g, dtype=torch.float64), dim=1)
    bank = F.normalize(torch.randn(ACTCLR_QUEUE, 128, generator=g, dtype=torch.float64), dim=1)
    bank[:BATCH] = F.normalize(z_key + 0.01 * torch.randn(z_key.shape, generator=g, dtype=torch.float64), dim=1)
    u_theirs, u_ours = u.clone().requires_grad_(True), u.clone().requires_grad_(True)
    q = F.normalize(u_theirs, dim=1)
    q_topk, k_topk = theirs.select_topk((q @ bank.t()) ** 2, z_key @ bank.t())
    their_loss = their_kld(q_topk, k_topk)
    their_loss.backward()
    with bank_logits_in_input_precision(True):
        loss = ours_actclr.similarity_mining_loss(F.normalize(u_ours, dim=1), z_key, bank, 0.1, 0.04, topk=8192,
                                                  exclude_above=0.95, square_query=True)
    loss.backward()
    # KL = cross-entropy − H(p_k): the entropy of the key's distribution over its kept entries
    sim_k = (z_key @ bank.t()).masked_fill(z_key @ bank.t() > 0.95, -1.0)
    p_k = F.softmax(sim_k.topk(8192, dim=1).values / 0.04, dim=1)
    entropy = -(p_k * p_k.log()).sum(dim=1).mean().item()
    return Row("ActCLR", "similarity mining (topk 8192, > 0.95 excluded, squared query)", loss.item(),
               their_loss.item(), {"gradients": (u_ours.grad - u_theirs.grad).abs().max().item(),
                                   "|Δ loss| − H(p_k)": abs(abs(loss.item() - their_loss.item()) - entropy)},
               expected_equal=False, note=f"ours cross-entropy, theirs KL: the losses differ by H(p_k) = "
               f"{entropy:.4f}; largest |grad| {u_theirs.grad.abs().max().item():.2g}")


def end_to_end_key_row(theirs: nn.Module, work: Path, x: Tensor, **options: Any) -> Row:
    """Their whole forward (shuffle-BN in a one-process group) and the key it enqueues, vs our method's key
    for the same view with the official options (`options` changes some of them): our actionlet_maps on it
    (identity tracker) and encode_offline."""
    settings = {**ACTCLR_OFFICIAL, **options}
    ours = skelssl_method("actclr", **settings)
    load_theirs_into_ours(theirs, ours)
    theirs, ours = theirs.double().train(), ours.double().train()
    with torch.no_grad():
        ours.queue.bank.copy_(theirs.queue.t())
    torch.manual_seed(4)
    import random  # noqa: PLC0415 - their Skeleton Mix draws from Python's generator
    random.seed(4)
    with one_process_group(work):
        # views: copies of the same sequence (only the key is compared; their ske_trans writes into its input)
        theirs(x.clone(), x.clone(), x.clone(), x.clone(), epoch=0).backward()
    their_key = theirs.queue[:, :BATCH].t()
    dense_caught, their_anchor = their_dense_and_anchor(theirs.encoder_k, x)
    _, mask = ours.actionlet_maps(x)
    z_key = ours.encode_offline(x, upsample_to_frames(mask, x.shape[2]), ViewTracker.for_batch(x))
    their_mask = theirs.encoder_k._generate_mask(dense_caught, x.shape[0], x.shape[4], their_anchor).view(mask.shape)
    official = not options
    changed = ", ".join(f"{k}={v}" for k, v in options.items())
    return Row("ActCLR", "key of a whole step, official options" + (f" but {changed}" if changed else ""),
               float("nan"), float("nan"), {"key": (z_key - their_key).abs().max().item(),
                                            "actionlet": (mask - their_mask).abs().max().item()},
               expected_equal=official,
               note="" if official else f"what {changed} changes (cells on: ours {mask.mean().item():.3f}, "
                                        f"theirs {their_mask.mean().item():.3f})")


def actclr_rows(repo: Path, work: Path) -> list[Row]:
    rows = []
    for commit in (ACTCLR_LINEAR, commit_of(repo)):
        patches = (MIX_KEY_FIX,) if commit == ACTCLR_LINEAR else ()
        with authors_code(repo, ACTCLR_FILES, work, patches, commit=commit):
            from net import actclr as their_module  # noqa: PLC0415 - their code, read at run time
            torch.manual_seed(0)
            theirs = their_module.actclr(base_encoder="net.st_gcn.Model", queue_size=ACTCLR_QUEUE, in_channels=3,
                                         hidden_channels=16, hidden_dim=256, dropout=0.0, num_class=60)
            x = skeleton_batch()
            if commit != ACTCLR_LINEAR:
                rows.append(actionlet_map_row(theirs.double().train(), x, commit))
                continue
            rows.append(end_to_end_key_row(copy.deepcopy(theirs), work, x))
            rows.append(end_to_end_key_row(copy.deepcopy(theirs), work, x, anchor_batch="shared"))
            rows.append(end_to_end_key_row(copy.deepcopy(theirs), work, x, safp="paper"))
            theirs = theirs.double().train()
            rows.append(actionlet_map_row(theirs, x, commit))
            rows.extend(safp_rows(theirs, x))
            rows.append(mining_row(theirs, their_module.kld))
    return rows


# ----- table ------------------------------------------------------------------------------------------------
def print_table(rows: list[Row]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row.differences))
    header = ["family", "setting", "loss ours", "loss theirs", "|Δ loss|", *keys, "expected", "note"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        no_loss = row.loss_ours != row.loss_ours  # NaN: a comparison of outputs only
        cells = [row.family, row.setting, *(["—"] * 3 if no_loss else [
                 f"{row.loss_ours:.10f}", f"{row.loss_theirs:.10f}", f"{abs(row.loss_ours - row.loss_theirs):.1e}"]),
                 *[f"{row.differences[k]:.1e}" if k in row.differences else "—" for k in keys],
                 "equal" if row.expected_equal else "departure", row.note]
        print("| " + " | ".join(cells) + " |")


FAMILIES = ("skeletonclr", "aimclr", "bigru", "actclr")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--crossclr", type=Path, default=MIRRORS / "LinguoLi+CrosSCLR" / "repo")
    parser.add_argument("--aimclr", type=Path, default=MIRRORS / "Levigty+AimCLR" / "repo")
    parser.add_argument("--actclr", type=Path, default=MIRRORS / "LanglandsLin+ActCLR" / "repo")
    parser.add_argument("--cmd", type=Path, default=MIRRORS / "maoyunyao+CMD" / "repo")
    parser.add_argument("--only", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for name in ("crossclr", "aimclr", "actclr", "cmd"):
        print(f"{name}: {getattr(args, name)} at commit {commit_of(getattr(args, name))}")
    runs = {"skeletonclr": lambda: skeletonclr_rows(args.crossclr, args.work),
            "aimclr": lambda: aimclr_rows(args.aimclr, args.work), "bigru": lambda: bigru_rows(args.cmd, args.work),
            "actclr": lambda: actclr_rows(args.actclr, args.work)}
    rows = [row for family in args.only for row in runs[family]()]
    print()
    print_table(rows)
    failed = [row for row in rows if row.expected_equal and row.worst > TOLERANCE]
    print(f"\nrows expected equal: {sum(r.expected_equal for r in rows)}, beyond {TOLERANCE:g}: {len(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    run_script(main)
