"""Fused CPU kernels for the ST-GCN blocks, compiled on first use (torch.utils.cpp_extension).

- `batch_norm_act`: training-mode BatchNorm with, optionally, an input offset (the graph convolution's
  bias), dropout, a residual sum and ReLU, as one kernel forward and one backward (fused_bn.cpp), where
  PyTorch runs four to six memory-bound kernels. Dropout masks are not stored: they are hashed from a seed
  drawn from torch's global generator, and drawn again in the backward.
- `graph_conv`: the graph convolution, x A_k for the K subsets of the skeleton graph and then the 1x1
  convolution, one sample at a time so that the K-times-wider intermediate never leaves the cache
  (fused_graph.cpp); PyTorch needs a matrix product, a permuted copy and a convolution over it.

They are used only where they compute what the modules they replace compute: CPU, float32, contiguous
inputs, a plain nn.BatchNorm2d in training mode, not under torch.compile. Everywhere else (GPU, bf16
autocast, eval mode, no C++ compiler) the blocks keep their module path. Results agree with that path to
float rounding; dropout draws a different (equally distributed) mask.

The extension is built once per machine type with the system C++ compiler and ninja, into torch's
extension cache (~/.cache/torch_extensions, or $TORCH_EXTENSIONS_DIR), in about a minute. Set
SKELSSL_FUSED_KERNELS=0 to never build or use it; if building fails, a warning says why and the module
path is used.
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor, nn

__all__ = ["batch_norm_act", "graph_conv", "fused_kernels", "can_fuse", "can_fuse_graph",
           "fused_kernels_enabled", "kernels_disabled"]

_SOURCES = [Path(__file__).with_name(name) for name in ("bindings.cpp", "fused_bn.cpp", "fused_graph.cpp")]
_lock = threading.Lock()
_state: dict[str, object] = {"tried": False, "module": None}
_disabled_depth = threading.local()


def fused_kernels_enabled() -> bool:
    """False when SKELSSL_FUSED_KERNELS is 0/false/no/off."""
    return os.environ.get("SKELSSL_FUSED_KERNELS", "1").strip().lower() not in ("0", "false", "no", "off")


def _cpu_fingerprint() -> str:
    """The instruction set the kernels are compiled for (-march=native): a build cached in a shared home
    directory by another CPU type must not be loaded."""
    text = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "model name", "Features")):
                text += line
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        pass
    return text


def _built_library(name: str) -> Path | None:
    """The compiled extension of this name in torch's extension cache, if it is there."""
    try:  # a private helper of torch
        from torch.utils.cpp_extension import _get_build_directory

        path = Path(_get_build_directory(name, verbose=False)) / f"{name}.so"
    except Exception:
        return None
    return path if path.exists() else None


def _import_built(name: str, library: Path) -> ModuleType:
    """Import an already compiled extension directly. Going through cpp_extension.load again would rebuild it
    whenever the sources sit at another path (another checkout or virtual environment) than the one it was
    built from, since the build file records the paths; the name already pins the sources' content, the CPU
    and the torch version, so the library is the right one."""
    import importlib.machinery
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, library,
                                                  loader=importlib.machinery.ExtensionFileLoader(name, str(library)))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fused_kernels() -> ModuleType | None:
    """The compiled extension, built on the first call; None if disabled or if it cannot be built."""
    if _state["tried"]:
        return _state["module"]  # type: ignore[return-value]
    with _lock:
        if _state["tried"]:
            return _state["module"]  # type: ignore[return-value]
        _state["tried"] = True
        if not fused_kernels_enabled():
            return None
        source = b"".join(path.read_bytes() for path in _SOURCES)
        digest = hashlib.sha256(source + _cpu_fingerprint().encode() + torch.__version__.encode()).hexdigest()
        name = f"skelssl_fused_{digest[:12]}"
        try:
            from torch.utils.cpp_extension import load

            library = _built_library(name)
            if library is not None:
                _state["module"] = _import_built(name, library)
                return _state["module"]  # type: ignore[return-value]
            print("[skelssl] compiling the fused CPU kernels (once per machine type, about a minute)...", flush=True)
            _state["module"] = load(name, [str(path) for path in _SOURCES],
                                    extra_cflags=["-O3", "-march=native", "-fopenmp"], verbose=False)
        except Exception as error:  # no compiler, no ninja, no headers: the module path still works
            lines = str(error).strip().splitlines()
            warnings.warn(f"skelssl: the fused CPU kernels could not be built ({type(error).__name__}: "
                          f"{lines[-1] if lines else ''}); using PyTorch's separate kernels, which are slower. "
                          "Install a C++ compiler and ninja to get them, or set SKELSSL_FUSED_KERNELS=0.",
                          stacklevel=2)
            _state["module"] = None
    return _state["module"]  # type: ignore[return-value]


class kernels_disabled:
    """Context manager: the module path everywhere inside (e.g. to count FLOPs, which torch's counter
    cannot see inside the fused kernels, or to compare the two paths). Per thread."""

    def __enter__(self) -> "kernels_disabled":
        _disabled_depth.value = getattr(_disabled_depth, "value", 0) + 1
        return self

    def __exit__(self, *exc: object) -> None:
        _disabled_depth.value -= 1


def _fusable_tensor(x: Tensor) -> bool:
    # Not under autocast: there the module path runs its products in bfloat16.
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous()
            and not getattr(_disabled_depth, "value", 0) and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling())


def can_fuse(x: Tensor, bn: nn.Module) -> bool:
    """Whether `batch_norm_act(x, bn, ...)` computes what bn (and what follows it) computes."""
    return (type(bn) is nn.BatchNorm2d and bn.training and bn.affine and _fusable_tensor(x)
            and bn.weight.dtype == torch.float32 and fused_kernels() is not None)


def can_fuse_graph(x: Tensor) -> bool:
    """Whether `graph_conv` can run on x."""
    return _fusable_tensor(x) and fused_kernels() is not None


class _BatchNormAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, offset: Tensor | None, residual: Tensor | None,
                dropout_p: float, seed: int, relu: bool, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        y, mean, invstd, var = fused_kernels().bn_act_forward(x, weight, bias, eps, offset, dropout_p, seed,
                                                              residual, relu)
        ctx.save_for_backward(x, y if relu else None, mean, invstd, weight, offset)
        ctx.dropout_p, ctx.seed, ctx.relu = dropout_p, seed, relu
        ctx.has_residual = residual is not None
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, grad_y: Tensor, _grad_mean: Tensor, _grad_var: Tensor):
        x, y, mean, invstd, weight, offset = ctx.saved_tensors
        residual_grad = ctx.has_residual and ctx.needs_input_grad[4]
        offset_grad = offset is not None and ctx.needs_input_grad[3]
        grad_x, grad_w, grad_b, grad_r, grad_o = fused_kernels().bn_act_backward(
            grad_y.contiguous(), x, y if y is not None else x, mean, invstd, weight, offset, ctx.dropout_p,
            ctx.seed, ctx.relu, residual_grad, offset_grad)
        return (grad_x, grad_w, grad_b, grad_o if offset_grad else None, grad_r if residual_grad else None,
                None, None, None, None)


def batch_norm_act(x: Tensor, bn: nn.BatchNorm2d, offset: Tensor | None = None, dropout_p: float = 0.0,
                   residual: Tensor | None = None, relu: bool = False) -> Tensor:
    """act(dropout(bn(x + offset)) + residual), bn in training mode, in one fused kernel.

    x (N, C, T, V); offset (C, T·V) added to every sample (or None); dropout_p as nn.Dropout's p (its mask
    hashed from a seed drawn from torch's global generator); residual of x's shape (or None). Updates bn's
    running statistics and batch counter as nn.BatchNorm2d does (running variance unbiased). Call only
    where `can_fuse(x, bn)` holds.
    """
    seed = int(torch.randint(-(2**63), 2**63 - 1, (), dtype=torch.int64)) if dropout_p > 0.0 else 0
    if residual is not None:
        residual = residual.contiguous()
    if offset is not None:
        offset = offset.contiguous()
    y, mean, var = _BatchNormAct.apply(x, bn.weight, bn.bias, offset, residual, float(dropout_p), seed,
                                       bool(relu), float(bn.eps))
    if bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
            count = x.numel() // x.shape[1]
            bn.running_mean.mul_(1.0 - momentum).add_(mean, alpha=momentum)
            bn.running_var.mul_(1.0 - momentum).add_(var * (count / max(count - 1, 1)), alpha=momentum)
    return y


class _GraphConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, adjacency: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(x, adjacency, weight)
        return fused_kernels().graph_conv_forward(x, adjacency, weight)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, adjacency, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        grad_x, grad_a, grad_w = fused_kernels().graph_conv_backward(
            grad_out.contiguous(), x, adjacency, weight, need[0], need[1], need[2])
        return (grad_x if need[0] else None, grad_a if need[1] else None, grad_w if need[2] else None)


def graph_conv(x: Tensor, adjacency: Tensor, weight: Tensor) -> Tensor:
    """The graph product followed by a 1x1 convolution without bias: x (N, C, T, V), adjacency (K, V, W),
    weight (O, C·K) over channels ordered c·K + k (channel c of x A_k) -> (N, O, T, W). One sample at a time, so
    the K-times-wider product stays in cache (and is recomputed in the backward instead of stored).
    Differentiable in all three. Call only where `can_fuse_graph(x)` holds."""
    return _GraphConv.apply(x, adjacency.contiguous(), weight.contiguous())
