"""Forward + backward throughput of the bare ST-GCN encoder (train mode, dropout on).

One step = zero_grad + encoder(x).sum().backward() on a (N, 3, T, 25, M) batch. Prints the median step
time over --repeats after --warmup steps, sequences/s and GFLOP/s counted as 3x the forward FLOPs of the
straightforward formulation (1.225 GFLOP per 3x50x25x2 sample), so that variants compare on the same work.

    python benchmarks/bench_encoder.py                      # optimised encoder (fused CPU kernels), batch 128
    python benchmarks/bench_encoder.py --separate-kernels   # the same without skelssl's fused kernels
    python benchmarks/bench_encoder.py --reference          # the straightforward formulation (before)
    python benchmarks/bench_encoder.py --compile default    # + torch.compile
    python benchmarks/bench_encoder.py --no-malloc-tuning   # glibc's default mmap/trim thresholds
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from skelssl.models.flops import count_flops
from skelssl.models.fused import kernels_disabled
from skelssl.models.stgcn import STGCN, FastDropout, GraphConv, keep_freed_memory_in_process, maybe_compile


def _reference_graph_conv(self: GraphConv, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    """The usual formulation: 1x1 conv to K·C_out channels, then einsum with the K matrices."""
    n, _, t, v = x.shape
    y = self.conv(x).view(n, self.num_subsets, self.out_channels, t, v)
    return torch.einsum("nkctv,kvw->nctw", y, adjacency)


def _reference_dropout(self: FastDropout, x: torch.Tensor) -> torch.Tensor:
    if not self.training or self.p == 0.0:
        return x
    keep = torch.rand_like(x) >= self.p
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--persons", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--reference", action="store_true",
                        help="the straightforward graph conv and dropout (and no fused kernels)")
    parser.add_argument("--separate-kernels", action="store_true",
                        help="PyTorch's separate kernels instead of skelssl's fused CPU kernels")
    parser.add_argument("--compile", default="none", help="torch.compile mode, or 'none'")
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args(argv)

    if args.reference or args.separate_kernels:
        kernels_disabled().__enter__()  # for the rest of this process
    if not args.no_malloc_tuning:
        keep_freed_memory_in_process()
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 3, args.frames, 25, args.persons)
    optimised = GraphConv.forward, FastDropout.forward
    GraphConv.forward = _reference_graph_conv  # type: ignore[method-assign]
    FastDropout.forward = _reference_dropout  # type: ignore[method-assign]
    flops_forward = count_flops(STGCN("ntu25").eval(), x[:1]) * args.batch  # FLOPs of the reference
    if not args.reference:
        GraphConv.forward, FastDropout.forward = optimised  # type: ignore[method-assign]
    torch.manual_seed(0)
    encoder = STGCN("ntu25").train()
    model = maybe_compile(encoder, args.compile != "none", mode=args.compile)

    def step() -> None:
        encoder.zero_grad(set_to_none=True)
        model(x).sum().backward()

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(args.warmup - 1):
        step()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    variant = "reference" if args.reference else ("separate kernels" if args.separate_kernels else "fused kernels")
    print(f"{variant} compile={args.compile} threads={torch.get_num_threads()} batch={args.batch}: "
          f"median {median:.3f} s/step, {args.batch / median:.1f} seq/s, "
          f"{3 * flops_forward / median / 1e9:.1f} GFLOP/s (first step {first:.1f} s; "
          f"all {', '.join(f'{t:.2f}' for t in times)})")
    return 0


if __name__ == "__main__":
    from skelssl.console import run_script

    run_script(main)  # skelssl's UserError as one line, not a traceback
