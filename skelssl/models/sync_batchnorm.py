"""BatchNorm over the global batch of all processes, on any device and backend (gloo on CPU included).

With several processes each one sees only its share of the batch, so plain BatchNorm normalises every share
with its own statistics: a 2-process run with 64 sequences per process is not the 1-process run with 128.
`GlobalBatchNorm` gathers each process's per-channel count, mean and sum of squared deviations (one
all-gather of 2C + 1 numbers per layer, differentiable), merges them with the pairwise formula of Chan et al.
(no cancellation between a large mean and a small variance) and normalises every share with the global mean
and variance, as a single process with the whole batch would. torch.nn.SyncBatchNorm does the same on GPUs only.
Outside training, or with one process, it is an ordinary BatchNorm.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["GlobalBatchNorm", "convert_to_global_batchnorm"]


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm{1d,2d} whose training statistics are those of the global batch (module docstring)."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (N, C, ...), got {x.dim()}D")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and self.track_running_stats and _world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_gather  # differentiable

        channels = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        local_mean = x.mean(dims)
        local_m2 = (x - local_mean.view([1, channels] + [1] * (x.dim() - 2))).pow(2).sum(dims)
        local = torch.cat([local_mean, local_m2, x.new_tensor([x.numel() / channels])])
        parts = torch.stack(all_gather(local))  # (processes, 2C + 1)
        means, m2s, counts = parts[:, :channels], parts[:, channels:2 * channels], parts[:, -1:]
        count = counts.sum()
        mean = (counts * means).sum(dim=0) / count
        var = (m2s + counts * (means - mean).pow(2)).sum(dim=0) / count  # Chan et al.'s merge
        with torch.no_grad():
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
            self.num_batches_tracked.add_(1)
            self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            unbiased = var.detach() * count / (count - 1).clamp_min(1)
            self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_to_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm{1d,2d,3d} in `module` by a GlobalBatchNorm with the same parameters and
    statistics (in place where possible; returns the module)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        converted = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                    module.track_running_stats)
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        for p, q in zip(module.parameters(), converted.parameters()):
            q.requires_grad_(p.requires_grad)
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_to_global_batchnorm(child))
    return module
