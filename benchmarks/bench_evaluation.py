"""Throughput of the evaluation protocols on this machine.

Feature extraction (frozen ST-GCN, eval mode, the paper configuration) in sequences/s and achieved GFLOP/s,
then KNN (1-NN cosine + weighted k 10/20/40) and the linear probe (100 epochs, cached features) on features
of NTU-60 xsub size (40,091 train / 16,487 test, 256-d, 60 classes).

    python benchmarks/bench_evaluation.py [--extract 512] [--threads 0]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extract", type=int, default=512, help="sequences to encode for the extraction figure")
    parser.add_argument("--train", type=int, default=40091)
    parser.add_argument("--test", type=int, default=16487)
    parser.add_argument("--linear-epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from skelssl.models.stgcn import keep_freed_memory_in_process

    keep_freed_memory_in_process()  # as the skelssl command does

    from skelssl.evaluation import LinearProbeConfig, extract_features, knn_evaluate, linear_probe
    from skelssl.models import build_encoder
    from skelssl.models.flops import count_flops

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    encoder = build_encoder("stgcn", "ntu25").eval()
    data = torch.randn(args.extract, 3, 50, 25, 2)
    flops_per_seq = count_flops(encoder, data[:1])
    extract_features(encoder, data[:256], batch_size=256)  # warm-up
    start = time.perf_counter()
    extract_features(encoder, data, batch_size=256)
    seconds = time.perf_counter() - start
    rate = args.extract / seconds
    print(f"feature extraction: {rate:8.1f} sequences/s, {rate * flops_per_seq / 1e9:6.1f} GFLOP/s "
          f"({flops_per_seq / 1e9:.3f} GFLOP per sequence)")

    g = torch.Generator().manual_seed(0)
    centers = torch.randn(60, 256, generator=g)
    train_y = torch.randint(0, 60, (args.train,), generator=g)
    test_y = torch.randint(0, 60, (args.test,), generator=g)
    train_x = centers[train_y] + 2.0 * torch.randn(args.train, 256, generator=g)
    test_x = centers[test_y] + 2.0 * torch.randn(args.test, 256, generator=g)

    start = time.perf_counter()
    accs = knn_evaluate(train_x, train_y, test_x, test_y, 60, ks=(10, 20, 40))
    seconds = time.perf_counter() - start
    print(f"KNN (1-NN + k 10/20/40) on {args.train} x {args.test}: {seconds:6.2f} s, "
          f"{args.test / seconds:8.0f} test sequences/s   (top-1 1-NN {accs['1nn_cosine']:.3f})")

    start = time.perf_counter()
    out = linear_probe(train_x, train_y, test_x, test_y, 60, LinearProbeConfig(epochs=args.linear_epochs))
    seconds = time.perf_counter() - start
    print(f"linear probe, {args.linear_epochs} epochs on cached features: {seconds:6.2f} s, "
          f"{args.train * args.linear_epochs / seconds:10.0f} samples/s   (top-1 {out['final_top1']:.3f})")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mb:.0f} MB")


if __name__ == "__main__":
    from skelssl.console import run_script

    run_script(main)  # skelssl's UserError as one line, not a traceback
