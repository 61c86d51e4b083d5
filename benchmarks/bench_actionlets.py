"""Actionlet quality of ActCLR and ActCLR+ against the synthetic ground truth, measured the way training computes
the map, and ActCLR+'s per-epoch share of sequences whose eq. 36 hinge is active (`train/hinge_active`).

Each method is pretrained with the budget of benchmarks/compare_methods.py (its shipped config, the warm-up stage
inside the budget, the same overrides), then `skelssl analyze actionlets`' measurement (analyze_actionlets: the
offline encoder in train mode inside a side-effect-free pass, batches of trainer.batch_size) on the test set.
No probes (compare_methods.py has them). A finished run's checkpoint is reused; `--maps` analyses it once per
actionlet map (method.actionlet_map) without retraining. With `--seeds N` every method is pretrained from N
seeds (OUT/METHOD-seedS) and OUT/spread.md gives each figure as mean ± sd over them.

    python benchmarks/bench_actionlets.py --root data/synthetic32s --epochs 10 --warmup 2 --batch 64 \\
        --queue 512 --momentum 0.99 --out runs/actionlets-10ep
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch

from compare_methods import scaled_schedule  # the same budget as the comparison benchmark


def epoch_figures(run_dir: Path, key: str) -> list[tuple[int, float]]:
    """(epoch, value) of an epoch-level training log `key` (e.g. train/hinge_active)."""
    out = []
    for path in sorted(run_dir.glob("logs/*/metrics.csv")):
        with open(path) as fh:
            out += [(int(r["epoch"]), float(r[key])) for r in csv.DictReader(fh) if r.get(key)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic-xsub")
    parser.add_argument("--root", required=True)
    parser.add_argument("--methods", nargs="+", default=["actclr", "actclr_plus"])
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--queue", type=int, default=512)
    parser.add_argument("--momentum", type=float, default=0.99)
    parser.add_argument("--maps", nargs="+", default=["eq37"], help="actionlet maps to analyse each checkpoint with")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1,
                        help="pretraining seeds --seed, --seed+1, ... (runs OUT/METHOD-seedS); a mean ± sd table")
    parser.add_argument("overrides", nargs="*", help="extra key=value for every method")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from skelssl.analyze import analyze_actionlets
    from skelssl.checkpoints import LAST_CHECKPOINT
    from skelssl.config import load_config
    from skelssl.evaluation import ResultRecord, pick_device
    from skelssl.evaluation.spread import spread_table, summarize_seeds
    from skelssl.methods import method_from_checkpoint
    from skelssl.train import pretrain

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device("auto")
    summary: dict[str, dict] = {}
    records = []
    for seed in range(args.seed, args.seed + args.seeds):
        for name in args.methods:
            run_dir = out / (f"{name}-seed{seed}" if args.seeds > 1 else name)
            budget = [f"data.root={args.root}", f"run_dir={run_dir}", f"trainer.epochs={args.epochs}",
                      f"trainer.batch_size={args.batch}", f"method.queue_size={args.queue}", f"trainer.seed={seed}",
                      "trainer.progress_bar=false", "trainer.checkpoint_every_n_epochs=1000",
                      f"method.warmup.epochs={args.warmup}", f"method.momentum={args.momentum}"]
            budget += scaled_schedule(name, None, args.epochs)
            cfg = load_config(None, budget + list(args.overrides), dataset=args.dataset, method=name)
            timing = run_dir / "pretrain_seconds.txt"  # a reused run keeps the time it took
            if not (run_dir / LAST_CHECKPOINT).is_file():
                started = time.time()
                pretrain(cfg, command=["bench_actionlets.py", name])
                timing.write_text(f"{time.time() - started:.0f}\n")
            seconds = round(float(timing.read_text())) if timing.is_file() else None
            hinge = epoch_figures(run_dir, "train/hinge_active")
            for map_name in args.maps:
                method = method_from_checkpoint(run_dir / LAST_CHECKPOINT, {"method.actionlet_map": map_name})
                found, _ = analyze_actionlets(method, run_dir / f"analysis-{map_name}", device, pictures=1)
                for record in found:  # one row per method and map, the seeds pooled by skelssl.evaluation.spread
                    record.model = f"{name} ({map_name})"
                records += found
                if hinge:
                    records += [ResultRecord.from_fraction(found[0].dataset, found[0].split, f"{name} ({map_name})",
                                                           found[0].stream, "hinge_active", "lowest epoch",
                                                           min(v for _, v in hinge))]
                figures = {r.metric: round(r.value, 1) for r in found}
                key = f"{run_dir.name}/{map_name}"
                summary[key] = {"pretrain_seconds": seconds, **figures,
                                "hinge_active_by_epoch": [(e, round(v, 3)) for e, v in hinge]}
                print(f"[actionlets] {run_dir.name} map={map_name}: {json.dumps(summary[key])}", flush=True)
            (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    columns = ["actionlet precision", "actionlet auc", "actionlet joint_precision", "actionlet frame_precision",
               "actionlet predicted_fraction", "hinge_active lowest epoch"]
    table = spread_table(summarize_seeds(records), [c for c in columns if any(
        f"{r.protocol} {r.metric}" == c for r in records)])
    (out / "spread.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    from skelssl.console import run_script

    run_script(main)
