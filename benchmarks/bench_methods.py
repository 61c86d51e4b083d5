"""Training-step throughput of the methods on CPU (or the current device).

One step = the method's `training_loss` (augmentations, encoders, loss) + its plug-ins' extra losses +
backward + optimizer step + enqueue + momentum update, on a batch of (N, 3, T, 25, 2) random-walk sequences,
with each method's paper configuration (its shipped method piece; ST-GCN hidden 16, 256 -> 128). Prints
sequences/s, achieved GFLOP/s (FLOPs of one step counted by skelssl.models.flops.flop_counter, 2 per multiply-add) and
the process's peak resident memory. Each method runs in its own subprocess so the peak memory is its own. The
step time is the median over --steps.

A method is a method piece, optionally `@encoder` and `+prosl` (ProSL on, in its phase 2 with a codebook of
random-walk sequences); a `+prosl` row also prints its overhead over the same row without ProSL when both ran,
and the share of the step spent in the plug-in's forward (the semantic branch and its losses).

    python benchmarks/bench_methods.py                       # SkeletonCLR, AimCLR, ActCLR, ActCLR+, batch 128
    python benchmarks/bench_methods.py --methods aimclr --profile   # + torch.profiler table
    python benchmarks/bench_methods.py --methods actclr_plus --precisions 32-true --phases   # where time goes
    python benchmarks/bench_methods.py --precisions 32-true bf16-mixed   # also trainer.precision=bf16-mixed
    python benchmarks/bench_methods.py --batch 64 --frames 64 --precisions 32-true \
        --methods a2mc@bigru a2mc@stgcn hico hico+prosl skeletonclr skeletonclr+prosl   # issue 13's rows
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

TARGETS = {"aimclr": 15.0, "actclr": 11.0, "actclr_plus": 12.0}  # sequences/s (official code: 7.7, 5.5, none)
SECTION_PREFIXES = ("a2mc", "hico", "prosl")


def parse_spec(spec: str) -> tuple[str, str | None, bool]:
    """'piece[@encoder][+prosl]' -> (method piece, encoder or None for the piece's own, ProSL on)."""
    base, *plugins = spec.split("+")
    unknown = [p for p in plugins if p != "prosl"]
    if unknown:
        raise SystemExit(f"unknown plug-in(s) {unknown} in '{spec}'; known: prosl")
    piece, _, encoder = base.partition("@")
    return piece, encoder or None, "prosl" in plugins


def build(spec: str, queue: int | None, frames: int = 50, settings: list[str] | None = None):
    """The method with its shipped config (the paper's constants) on the NTU-25 layout, and `settings`
    (key=value) on top."""
    from skelssl.config import load_config
    from skelssl.methods import get_method

    piece, encoder, prosl = parse_spec(spec)
    overrides = [f"method.queue_size={queue}"] if queue else []
    if prosl:  # coefficients on 64 sequences: the per-epoch refresh is timed by bench_prosl_refresh.py
        overrides += ["plugins.prosl.enabled=true", "plugins.prosl.start_epoch=0",
                      "plugins.prosl.coefficient_samples=64"]
    overrides += list(settings or [])
    cfg = load_config(None, overrides, method=piece, encoder=encoder or ("stgcn" if piece in LEGACY else None))
    method = get_method(cfg.method.name)(cfg, "ntu25")
    if prosl:  # phase 2 from the first step: a codebook of random-walk sequences
        data = random_walk(256, frames, seed=2)
        method.plugins["prosl"].refresh(method, data, torch.full((256,), frames))
    return method


LEGACY = ("skeletonclr", "aimclr", "actclr")  # the rows this benchmark started with: always on ST-GCN


def random_walk(n: int, frames: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(n, 3, frames, 25, 2, generator=g) * 0.02
    return torch.randn(n, 3, 1, 25, 2, generator=g) * 0.3 + steps.cumsum(dim=2)


def run_one(args: argparse.Namespace) -> dict:
    from skelssl.models.flops import flop_counter

    if not args.no_malloc_tuning:
        from skelssl.models.stgcn import keep_freed_memory_in_process

        keep_freed_memory_in_process()  # what a CPU training run should do at start-up (see its docstring)
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    method = build(args.methods[0], args.queue, args.frames, args.set)
    method.train()
    x = random_walk(args.batch, args.frames)
    if hasattr(method, "update_anchor"):
        method.update_anchor(random_walk(512, args.frames, seed=1).numpy())
    if hasattr(method, "refresh_prototypes"):  # ActCLR+'s prototypes (eq. 33), over a stand-in training set
        method.cfg.method.num_prototypes = 60
        method.refresh_prototypes(random_walk(512, args.frames, seed=2).numpy(), batch_size=args.batch)
    batch = {"x": x, "index": torch.arange(args.batch), "label": torch.zeros(args.batch, dtype=torch.long),
             "length": torch.full((args.batch,), args.frames)}
    optimizer = method.configure_optimizers()["optimizer"]

    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16-mixed")
    plugin_seconds: list[float] = []

    def step() -> None:
        with autocast:  # what Lightning's precision="bf16-mixed" does around the training step
            method.watched, method.exposed, method._pending_keys = {}, {}, []
            loss, _ = method.training_loss(batch)
            started = time.perf_counter()
            for plugin in method.plugins.values():  # as MoCoMethod.training_step adds them
                extra, _ = plugin.extra_loss(method, batch)
                loss = loss + extra
            plugin_seconds.append(time.perf_counter() - started)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        method.after_optimizer_step()  # enqueue the keys, momentum update

    for _ in range(args.warmup):
        step()
    times = []
    plugin_seconds.clear()
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    plugin_forward = statistics.median(plugin_seconds)
    from skelssl.models.fused import kernels_disabled

    # The counter cannot see inside the fused CPU kernels: count on the module path (the same FLOPs); flop_counter
    # also counts the fused recurrent layers (the oneDNN LSTM), which torch's FlopCounterMode alone counts as 0.
    with kernels_disabled(), flop_counter() as counter:
        step()
    flops = counter.get_total_flops()
    profile = None
    if args.profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            started = time.perf_counter()
            step()
            profiled = time.perf_counter() - started
        events = prof.key_averages()
        profile = events.table(sort_by="self_cpu_time_total", row_limit=args.profile_rows)
        # the methods label their forward sections (torch.profiler.record_function "<method>/<part>")
        sections = sorted(((e.key, e.cpu_time_total / 1e6) for e in events
                           if e.key.split("/")[0] in SECTION_PREFIXES and "/" in e.key), key=lambda kv: -kv[1])
        if sections:
            lines = [f"  {name:<28} {seconds:7.2f} s  {100 * seconds / profiled:5.1f}% of the profiled step"
                     for name, seconds in sections]
            profile += "\nwhere the time goes (forward sections; the rest is the backward and the optimiser):\n"
            profile += "\n".join(lines)
    phases = None
    if args.phases:  # the step's named regions (torch.profiler.record_function in the method), one step
        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            step()
            total = time.perf_counter() - start
        regions = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages() if e.key.startswith(f"{args.methods[0]}/")}
        phases = {**regions, "backward + optimizer + the rest": total - sum(regions.values()), "step": total}
    median = statistics.median(times)
    return {"method": args.methods[0], "batch": args.batch, "step_s": median, "seq_per_s": args.batch / median,
            "plugin_forward_s": plugin_forward,
            "gflop_per_step": flops / 1e9, "gflop_per_s": flops / 1e9 / median,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads(), "profile": profile, "phases": phases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["skeletonclr", "aimclr", "actclr", "actclr_plus"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--queue", type=int, default=0, help="override the queue size (0: the paper's)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides for every method, e.g. plugins.prosl.one_encoder_call=false")
    parser.add_argument("--precisions", nargs="+", choices=["32-true", "bf16-mixed"], default=["32-true", "bf16-mixed"],
                        help="trainer.precision values to measure; bf16-mixed runs convolutions and matmuls in "
                             "bfloat16 under autocast (as Lightning does), which changes the numerics")
    parser.add_argument("--precision", default="32-true", help=argparse.SUPPRESS)  # one child's precision
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="keep glibc's default mmap/trim thresholds (see keep_freed_memory_in_process)")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table per method")
    parser.add_argument("--profile-rows", type=int, default=25)
    parser.add_argument("--phases", action="store_true",
                        help="seconds per named region of one step (methods that mark them: ActCLR+)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(args)))
        return 0
    print(f"{'method':<18} {'precision':<10} {'seq/s':>7} {'s/step':>7} {'GFLOP/step':>11} {'GFLOP/s':>8} "
          f"{'peak MB':>8}  target / overhead")
    own_args = argv if argv is not None else sys.argv[1:]
    steps: dict[tuple[str, str], float] = {}
    for method in args.methods:
        for precision in args.precisions:
            cmd = [sys.executable, __file__, *own_args, "--child", "--methods", method, "--precision", precision]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            r = json.loads(out)
            steps[(method, precision)] = r["step_s"]
            target = TARGETS.get(method)
            verdict = "" if target is None else f">= {target:g} {'ok' if r['seq_per_s'] >= target else 'MISSED'}"
            base = method.replace("+prosl", "")
            if method != base and (base, precision) in steps:  # ProSL's overhead over its base method
                overhead = r["step_s"] / steps[(base, precision)] - 1
                verdict = (f"+{100 * overhead:.0f}% over {base} (aim < 15%); plug-in forward "
                           f"{100 * r['plugin_forward_s'] / r['step_s']:.0f}% of the step")
            print(f"{method:<18} {precision:<10} {r['seq_per_s']:7.1f} {r['step_s']:7.2f} {r['gflop_per_step']:11.1f} "
                  f"{r['gflop_per_s']:8.1f} {r['peak_rss_mb']:8.0f}  {verdict}", flush=True)
            if r["profile"]:
                print(r["profile"])
            for name, seconds in (r["phases"] or {}).items():
                print(f"    {name:<34} {seconds:6.2f} s  {100 * seconds / r['phases']['step']:5.1f} %")
    return 0


if __name__ == "__main__":
    from skelssl.console import run_script

    run_script(main)  # skelssl's UserError as one line, not a traceback
