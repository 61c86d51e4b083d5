"""ST-GCN encoder (Yan et al. 2018) in the configuration of SkeletonCLR / AimCLR / ActCLR.

Ten spatial-temporal blocks (output channels hidden·[1,1,1,1,2,2,2,4,4] then `out_channels`, temporal
stride 2 at blocks 5 and 8), spatial partition with learnable edge importance, input BatchNorm over V·C per
person, global average pooling over (T', V) and then over persons. With the NTU layout and the defaults
(hidden 16, out 256) the encoder has 821,380 parameters (REFERENCE_NOTES).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from skelssl.models.graph import spatial_partition
from skelssl.skeleton.layouts import Layout, get_layout

__all__ = ["STGCN", "GraphConv", "STGCNBlock", "FastDropout", "init_official_"]


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


class FastDropout(nn.Module):
    """Inverted dropout, like nn.Dropout, with the mask drawn from torch.rand instead of bernoulli_.

    Same distribution (keep with probability 1 - p, scale by 1 / (1 - p)), same global RNG; on CPU the
    mask costs about half of nn.Dropout's (bernoulli_ is slow there), which matters for the large late
    feature maps.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand_like(x) >= self.p
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GraphConv(nn.Module):
    """Spatial graph convolution f_out = Σ_k W_k f_in (A_k ⊙ M_k) (ST-GCN Eq. 10).

    One 1x1 convolution to K·C_out channels (the K weight matrices at once), then one einsum with the K
    (possibly importance-weighted) V x V matrices.
    """

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int) -> None:
        super().__init__()
        self.num_subsets = num_subsets
        self.out_channels = out_channels
        self.conv = nn.Conv2d(in_channels, out_channels * num_subsets, kernel_size=1)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        n, _, t, v = x.shape
        y = self.conv(x).view(n, self.num_subsets, self.out_channels, t, v)
        return torch.einsum("nkctv,kvw->nctw", y, adjacency)


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
        out = self.tcn(self.gcn(x, adjacency))
        if self.residual is not None:
            out = out + self.residual(x)
        return self.relu(out)


class STGCN(nn.Module):
    """ST-GCN encoder: (N, C, T, V, M) -> (N, out_channels).

    layout: a Layout or its name ('ntu25', 'kinect20'); the graph is its spatial partition (3 subsets).
    init: "pytorch" keeps PyTorch's default init (our default; the official N(0, 0.02) init starts the
    outputs almost collapsed, see REFERENCE_NOTES "small real data"); "official" applies `init_official_`.
    official_graph: use the official code's partition (see `spatial_partition(official_code=True)`);
    default False follows the paper.
    generator: optional seeded generator for the "official" init.
    """

    def __init__(self, layout: Layout | str, in_channels: int = 3, hidden_channels: int = 16,
                 out_channels: int = 256, temporal_kernel: int = 9, dropout: float = 0.5,
                 edge_importance: bool = True, init: Literal["pytorch", "official"] = "pytorch",
                 official_graph: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.layout = get_layout(layout)
        self.in_channels = in_channels
        self.out_channels = out_channels
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

    @staticmethod
    def pool(dense: Tensor, weights: Tensor | None = None) -> Tensor:
        """(N, M, C', T', V) -> (N, C'): average over (T', V), then mean over persons.

        weights: optional (N, T', V) or (N, M, T', V) non-negative weights for a weighted average over
        (T', V) (ActCLR's SAFP); they are normalised here to sum 1 over (T', V) per sample (and person).
        """
        if weights is None:
            return dense.mean(dim=(3, 4)).mean(dim=1)
        if weights.dim() == 3:
            weights = weights.unsqueeze(1)
        if weights.dim() != 4:
            raise ValueError(f"pool weights must be (N, T', V) or (N, M, T', V), got {tuple(weights.shape)}")
        weights = weights / weights.sum(dim=(2, 3), keepdim=True).clamp_min(1e-12)
        weights = weights.expand(dense.shape[0], dense.shape[1], *weights.shape[2:])
        return torch.einsum("nmctv,nmtv->nmc", dense, weights).mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.features(x))
