"""What ProSL's codebook refresh costs at the end of an epoch, as a share of the epoch, for training sets of
several sizes (NTU-60 x-sub: 40,091 sequences; NW-UCLA: 1,020; synthetic: 1,680).

Measured on this machine, with the method's paper configuration (+ ProSL) and random-walk sequences:
- the epoch: (samples / batch) training steps, the step time measured over --steps steps;
- the key pass over the training set (`features=pass`, the paper's): the key network's throughput on
  --probe sequences, times the set's size (`features=epoch` reuses the steps' keys: no pass);
- k-means of `samples` 128-d features into k centroids (at the full size, on features drawn around k
  directions, 30 Lloyd iterations at most, as the plug-in runs it);
- the semantic coefficients: V + 1 key passes over min(coefficient_samples, N / (V + 1)) sequences (the
  plug-in's cap), from the measured key throughput.

    python benchmarks/bench_prosl_refresh.py --method hico --samples 40091 1020 --k 65 11
    python benchmarks/bench_prosl_refresh.py --method skeletonclr --frames 50 --batch 128 --samples 40091
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def clustered_features(n: int, k: int, dim: int = 128, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centers = F.normalize(torch.randn(k, dim, generator=g), dim=1)
    labels = torch.randint(0, k, (n,), generator=g)
    return F.normalize(centers[labels] + 0.3 * torch.randn(n, dim, generator=g), dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="hico", help="a method piece (with @encoder as in bench_methods)")
    parser.add_argument("--samples", type=int, nargs="+", default=[40091, 1020])
    parser.add_argument("--k", type=int, nargs="+", default=[65], help="one k, or one per --samples")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--probe", type=int, default=256, help="sequences the key-pass throughput is timed on")
    parser.add_argument("--coefficient-samples", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from bench_methods import build, random_walk

    from skelssl.methods.core.kmeans import kmeans
    from skelssl.methods.prosl.semantic import semantic_coefficients
    from skelssl.models.passes import side_effect_free

    method = build(f"{args.method}+prosl", None, args.frames).train()
    plugin = method.plugins["prosl"]
    x = random_walk(args.batch, args.frames)
    batch = {"x": x, "index": torch.arange(args.batch), "length": torch.full((args.batch,), args.frames),
             "label": torch.zeros(args.batch, dtype=torch.long)}
    optimizer = method.configure_optimizers()["optimizer"]
    times = []
    for i in range(args.steps + 1):
        started = time.perf_counter()
        method.watched, method.exposed, method._pending_keys = {}, {}, []
        loss, _ = method.training_loss(batch)
        extra, _ = plugin.extra_loss(method, batch)
        optimizer.zero_grad(set_to_none=True)
        (loss + extra).backward()
        optimizer.step()
        method.after_optimizer_step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - started)
    step = statistics.median(times)

    probe = random_walk(args.probe, args.frames, seed=3)
    started = time.perf_counter()
    with torch.no_grad(), side_effect_free(method):
        for s in range(0, args.probe, args.batch):
            method.encode_key(method.to_stream(probe[s:s + args.batch]))
    per_sequence = (time.perf_counter() - started) / args.probe

    view = method.to_stream(random_walk(min(args.probe, 16), args.frames, seed=4))
    started = time.perf_counter()
    with side_effect_free(method):  # checks the estimate below on a few sequences
        semantic_coefficients(method.encode_key, view, plugin.codebook.centers, plugin.temperature(method))
    joints = view.shape[3]
    per_coefficient_sequence = (time.perf_counter() - started) / view.shape[0]

    ks = args.k if len(args.k) == len(args.samples) else args.k * len(args.samples)
    print(f"{args.method} + ProSL, batch {args.batch}, {args.frames} frames: step {step:.2f} s, key pass "
          f"{1000 * per_sequence:.1f} ms/sequence, coefficients {1000 * per_coefficient_sequence:.0f} ms/sequence "
          f"({joints + 1} key passes)")
    print(f"{'samples':>8} {'k':>4} {'epoch s':>9} {'key pass s':>11} {'k-means s':>10} {'iters':>5} "
          f"{'coeff. s':>9}   share of the epoch: pass / k-means / coefficients / total (features=epoch: no pass)")
    for n, k in zip(args.samples, ks):
        epoch = (n // args.batch) * step
        feats = clustered_features(n, k)
        started = time.perf_counter()
        result = kmeans(feats, k, iterations=30, spherical=True, generator=torch.Generator().manual_seed(0))
        clustering = time.perf_counter() - started
        extraction = n * per_sequence
        coefficients = min(args.coefficient_samples, max(1, n // (joints + 1))) * per_coefficient_sequence
        parts = [extraction, clustering, coefficients]
        shares = " / ".join(f"{100 * p / epoch:.1f}%" for p in parts)
        print(f"{n:>8} {k:>4} {epoch:>9.0f} {extraction:>11.1f} {clustering:>10.2f} {result.iterations:>5} "
              f"{coefficients:>9.1f}   {shares} / {100 * sum(parts) / epoch:.1f}% "
              f"({100 * sum(parts[1:]) / epoch:.1f}%)", flush=True)


if __name__ == "__main__":
    from skelssl.console import run_script

    run_script(main)  # skelssl's UserError as one line, not a traceback
