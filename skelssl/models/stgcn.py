"""ST-GCN encoder (Yan et al. 2018) in the configuration of SkeletonCLR / AimCLR / ActCLR.

Ten spatial-temporal blocks (output channels hidden·[1,1,1,1,2,2,2,4,4] then `out_channels`, temporal
stride 2 at blocks 5 and 8), spatial partition with learnable edge importance, input BatchNorm over V·C per
person, global average pooling over (T', V) and then over persons. With the NTU layout and the defaults
(hidden 16, out 256) the encoder has 821,380 parameters (REFERENCE_NOTES).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from skelssl.models.base import DenseEncoder
from skelssl.models.fused import batch_norm_act, can_fuse, can_fuse_graph, graph_conv
from skelssl.models.graph import spatial_partition
from skelssl.settings import integer, number, odd_integer
from skelssl.skeleton.layouts import Layout, get_layout

__all__ = ["STGCN", "GraphConv", "STGCNBlock", "FastDropout", "init_official_", "keep_freed_memory_in_process",
           "maybe_compile"]


def keep_freed_memory_in_process(threshold_bytes: int = 1 << 30) -> bool:
    """Make glibc's malloc reuse freed blocks below `threshold_bytes` instead of unmapping them.

    By default glibc serves blocks above ~32 MB with fresh mmap pages and returns them on free, so every
    large feature map of an ST-GCN step (about 80 MB at batch 128) is page-faulted and zeroed by the kernel
    again: about a third of the CPU time of a training step was spent in the kernel (sys time) on a 2-core
    machine. Raising the mmap and trim thresholds keeps that memory in the process for reuse (the peak
    resident memory is unchanged: it is the same working set). Process-wide; call once at start-up of a
    CPU training run. Returns False (and does nothing) where glibc's mallopt is unavailable.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    threshold = int(min(threshold_bytes, (1 << 31) - 1))
    return bool(mallopt(m_mmap_threshold, threshold)) and bool(mallopt(m_trim_threshold, threshold))


def maybe_compile(module: nn.Module, enabled: bool, mode: str = "default") -> nn.Module:
    """torch.compile(module, mode=mode) when `enabled`, else the module itself (parameters are shared)."""
    if not enabled:
        return module
    return torch.compile(module, mode=None if mode == "default" else mode)


def init_official_(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """The official SkeletonCLR/AimCLR/ActCLR init, in place: conv and linear weights N(0, 0.02), BatchNorm
    weights N(1, 0.02), all their biases 0. Other parameters (edge importance) are left as they are.

    The official code applies this to Conv1d/Conv2d/BatchNorm; we also apply it to Linear layers so that the
    methods can reuse it for their projectors (as the project's brief asks). Returns the module.
    """
    for sub in module.modules():
        if isinstance(sub, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            with torch.no_grad():
                sub.weight.normal_(0.0, 0.02, generator=generator)
                if sub.bias is not None:
                    sub.bias.zero_()
        elif isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.affine:
            with torch.no_grad():
                sub.weight.normal_(1.0, 0.02, generator=generator)
                sub.bias.zero_()
    return module


def _keep_mask_from_bits(shape: torch.Size, p: float, device: torch.device) -> Tensor:
    """Boolean keep mask, each entry independently True with probability 1 - p (to 2^-24, like torch.rand).

    CPU random numbers are drawn one 32-bit word at a time by a serial generator, so torch.rand costs a
    whole word (~5 ns) per element. Here each 32-bit word is split into 4 bytes or 2 half-words when p is a
    multiple of 2^-8 or 2^-16 (p = 0.5 needs one byte per element), else one 24-bit uniform per word:
    comparing a uniform b-bit integer with p·2^b gives exactly the Bernoulli(1 - p) that `rand >= p` gives.
    """
    numel = 1
    for size in shape:
        numel *= size
    for bits, dtype, offset in ((8, torch.uint8, 0), (16, torch.int16, 1 << 15)):
        threshold = p * (1 << bits)
        if threshold == int(threshold):
            words = (numel * bits + 31) // 32
            draws = torch.empty(words, dtype=torch.int32, device=device).random_(-(1 << 31), 1 << 31)
            uniform = draws.view(dtype)[:numel].view(shape)  # uniform over the dtype's range
            return uniform >= int(threshold) - offset
    draws = torch.empty(shape, dtype=torch.int32, device=device).random_(-(1 << 31), 1 << 31)
    return draws.bitwise_and_((1 << 24) - 1) >= math.ceil(p * (1 << 24))


class FastDropout(nn.Module):
    """Inverted dropout, like nn.Dropout, with a cheaper mask.

    Same distribution (keep each entry independently with probability 1 - p, scale by 1 / (1 - p)), same
    global RNG. On CPU the mask comes from packed random bits (`_keep_mask_from_bits`, about 7x cheaper than
    torch.rand, itself half of bernoulli_); on other devices from torch.rand_like.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type == "cpu":
            keep = _keep_mask_from_bits(x.shape, self.p, x.device)
        else:
            keep = torch.rand_like(x) >= self.p
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GraphConv(nn.Module):
    """Spatial graph convolution f_out = Σ_k W_k f_in (A_k ⊙ M_k) (ST-GCN Eq. 10).

    The parameters are those of the usual formulation (one 1x1 convolution to K·C_out channels, then an
    einsum with the K V x V matrices), but the forward contracts with the graph first: one matrix product
    x (N·C_in·T, V) @ A (V, K·V) on a view without copies, then one 1x1 convolution from K·C_in channels
    (the same weights, regrouped) and the bias pushed through the graph, Σ_k b_k (1ᵀ A_k). Equal up to
    float rounding; it is cheaper because C_in <= C_out in every block (4x fewer graph FLOPs and a 4x
    smaller intermediate in the widening blocks), and it avoids the K·C_out-channel intermediate.
    """

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int) -> None:
        super().__init__()
        self.num_subsets = num_subsets
        self.out_channels = out_channels
        self.conv = nn.Conv2d(in_channels, out_channels * num_subsets, kernel_size=1)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        out, bias = self.contract(x, adjacency)
        return out if bias is None else out + bias.view(1, bias.shape[0], 1, bias.shape[1])

    def contract(self, x: Tensor, adjacency: Tensor) -> tuple[Tensor, Tensor | None]:
        """The product without its bias, and the bias pushed through the graph (O, W) (None without bias)."""
        n, c, t, v = x.shape
        k, o = self.num_subsets, self.out_channels
        w = adjacency.shape[2]
        weight = self.conv.weight.view(k, o, c).permute(1, 2, 0).reshape(o, c * k, 1, 1)
        if can_fuse_graph(x):
            # x A_k and the 1x1 convolution sample by sample in one fused kernel (skelssl.models.fused)
            out = graph_conv(x, adjacency, weight.view(o, c * k))
        else:
            # x A_k for all k in one GEMM: (N·C·T, V) @ (V, K·W)
            graph = adjacency.permute(1, 0, 2).reshape(v, k * w)
            z = torch.matmul(x, graph).view(n, c, t, k, w)
            z = z.permute(0, 1, 3, 2, 4).reshape(n, c * k, t, w)  # channels (c, k)
            out = F.conv2d(z, weight)
        if self.conv.bias is None:
            return out, None
        # Σ_k b_k Σ_v A_k[v, w]: the bias of W_k reaches joint w with the column sums of A_k
        return out, self.conv.bias.view(k, o).t() @ adjacency.sum(dim=1)  # (O, W)


class STGCNBlock(nn.Module):
    """Graph conv -> BN -> ReLU -> temporal conv (kernel × 1, stride) -> BN -> dropout, + residual, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int, temporal_kernel: int,
                 stride: int = 1, dropout: float = 0.0, residual: bool = True) -> None:
        super().__init__()
        if temporal_kernel % 2 != 1:
            raise ValueError(f"temporal_kernel must be odd (so that stride 1 keeps T), got {temporal_kernel}")
        padding = (temporal_kernel - 1) // 2
        self.gcn = GraphConv(in_channels, out_channels, num_subsets)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (temporal_kernel, 1), (stride, 1), (padding, 0)),
            nn.BatchNorm2d(out_channels),
            FastDropout(dropout),
        )
        if not residual:
            self.residual: nn.Module | None = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        if can_fuse(x, self.tcn[0]) and can_fuse(x, self.tcn[3]):  # both BatchNorms of the block
            return self._fused_forward(x, adjacency)
        out = self.tcn(self.gcn(x, adjacency))
        if self.residual is not None:
            out = out + self.residual(x)
        return self.relu(out)

    def _fused_forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """The same block with the graph product, and the steps around the temporal convolution (bias,
        BatchNorm, ReLU; BatchNorm, dropout, residual, ReLU), in fused CPU kernels (skelssl.models.fused):
        same parameters and running statistics; dropout draws its mask differently."""
        bn_in, _, conv, bn_out, dropout = self.tcn
        graph, bias = self.gcn.contract(x, adjacency)
        offset = None
        if bias is not None:  # (O, W) -> (O, T·W), added to every sample inside the kernel
            offset = bias.unsqueeze(1).expand(bias.shape[0], graph.shape[2], bias.shape[1]).reshape(
                bias.shape[0], -1)
        hidden = conv(batch_norm_act(graph, bn_in, offset=offset, relu=True))
        if self.residual is None:
            residual = None
        elif isinstance(self.residual, nn.Identity):
            residual = x
        else:
            res_conv, res_bn = self.residual
            shortcut = res_conv(x)
            residual = batch_norm_act(shortcut, res_bn) if can_fuse(shortcut, res_bn) else res_bn(shortcut)
        p = dropout.p if dropout.training else 0.0
        return batch_norm_act(hidden, bn_out, dropout_p=p, residual=residual, relu=True)


class STGCN(DenseEncoder):
    """ST-GCN encoder: (N, C, T, V, M) -> (N, out_channels); dense features (N, M, out_channels, T', V).

    layout: a Layout or its name ('ntu25', 'kinect20'); the graph is its spatial partition (3 subsets).
    init: "pytorch" keeps PyTorch's default init (our default; the official N(0, 0.02) init starts the
    outputs almost collapsed, see REFERENCE_NOTES "small real data"); "official" applies `init_official_`.
    official_graph: use the official code's partition (see `spatial_partition(official_code=True)`);
    default False follows the paper.
    generator: optional seeded generator for the "official" init.
    """

    name = "stgcn"
    # model.stgcn.* keys and their defaults (the SkeletonCLR / AimCLR / ActCLR configuration)
    DEFAULTS = {"hidden_channels": integer(16, ge=1), "out_channels": integer(256, ge=1),
                "temporal_kernel": odd_integer(9),
                "dropout": number(0.5, ge=0, lt=1), "edge_importance": True, "official_graph": False}

    def __init__(self, layout: Layout | str, in_channels: int = 3, hidden_channels: int = 16,
                 out_channels: int = 256, temporal_kernel: int = 9, dropout: float = 0.5,
                 edge_importance: bool = True, init: Literal["pytorch", "official"] = "pytorch",
                 official_graph: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.layout = get_layout(layout)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.feature_dim = out_channels
        self.temporal_kernel = temporal_kernel
        adjacency = torch.from_numpy(spatial_partition(self.layout, official_code=official_graph))
        self.register_buffer("adjacency", adjacency)
        num_subsets, num_joints = adjacency.shape[0], adjacency.shape[1]
        self.data_bn = nn.BatchNorm1d(in_channels * num_joints)

        h = hidden_channels
        widths = [h, h, h, h, 2 * h, 2 * h, 2 * h, 4 * h, 4 * h, out_channels]
        strides = [1, 1, 1, 1, 2, 1, 1, 2, 1, 1]
        blocks = []
        previous = in_channels
        for i, (width, stride) in enumerate(zip(widths, strides)):
            first = i == 0  # the first block has neither residual nor dropout
            blocks.append(STGCNBlock(previous, width, num_subsets, temporal_kernel, stride,
                                     dropout=0.0 if first else dropout, residual=not first))
            previous = width
        self.blocks = nn.ModuleList(blocks)
        self.strides = strides
        if edge_importance:
            self.edge_importance = nn.ParameterList(
                [nn.Parameter(torch.ones_like(adjacency)) for _ in self.blocks])
        else:
            self.edge_importance = None

        if init == "official":
            init_official_(self, generator)
        elif init != "pytorch":
            raise ValueError(f"unknown init '{init}'; use 'pytorch' or 'official'")

    def feature_frames(self, num_frames: int) -> int:
        """T' of the last feature map for an input of `num_frames` frames."""
        t = num_frames
        for stride in self.strides:
            t = (t - 1) // stride + 1  # kernel k, padding (k-1)/2: floor((T - 1) / s) + 1
        return t

    def features(self, x: Tensor) -> Tensor:
        """(N, C, T, V, M) -> dense last feature map per person (N, M, C', T', V)."""
        if x.dim() != 5:
            raise ValueError(f"STGCN expects (N, C, T, V, M), got shape {tuple(x.shape)}")
        n, c, t, v, m = x.shape
        # BatchNorm1d over V·C channels (index v·C + c, as in the official code) per person.
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x)
        x = x.view(n * m, v, c, t).permute(0, 2, 3, 1).contiguous()  # (N·M, C, T, V)
        for i, block in enumerate(self.blocks):
            adjacency = self.adjacency if self.edge_importance is None else self.adjacency * self.edge_importance[i]
            x = block(x, adjacency)
        return x.view(n, m, *x.shape[1:])

