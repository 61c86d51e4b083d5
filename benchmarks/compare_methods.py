"""Pretrain several methods with one budget on one dataset, then compare them (a quality benchmark).

For each method: pretrain from its shipped config with the budget's overrides, then KNN and linear probe on the
frozen backbone; once, the same protocols on a random-init encoder; for ActCLR, the actionlet precision against
ground-truth actionlets when the dataset has them (the synthetic one does); for every run, the collapse
monitor's last-epoch figures. Prints one table and writes OUT/results.json and OUT/summary.json.

    python benchmarks/compare_methods.py --dataset nwucla-xview --root data/nw-ucla \\
        --epochs 10 --batch 64 --queue 1024 --out runs/compare-nwucla
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch


def last_collapse_figures(run_dir: Path) -> dict[str, float]:
    rows = []
    for path in sorted(run_dir.glob("logs/*/metrics.csv")):
        with open(path) as fh:
            rows += [r for r in csv.DictReader(fh) if r.get("collapse/projector_mean_cosine")]
    if not rows:
        return {}
    last = rows[-1]
    return {k.split("/", 1)[1]: round(float(v), 4) for k, v in last.items() if k.startswith("collapse/") and v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="a shipped dataset-split config, e.g. nwucla-xview")
    parser.add_argument("--root", required=True, help="prepared dataset")
    parser.add_argument("--methods", nargs="+", default=["skeletonclr", "aimclr", "actclr"])
    parser.add_argument("--stream", default="joint")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--queue", type=int, default=1024)
    parser.add_argument("--momentum", type=float, default=None, help="key-encoder momentum (default: config's)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="extra key=value for every method")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from skelssl.models.stgcn import keep_freed_memory_in_process

    keep_freed_memory_in_process()  # as the skelssl command does

    from skelssl.checkpoints import LAST_CHECKPOINT, method_from_checkpoint
    from skelssl.config import load_config
    from skelssl.evaluation import evaluate_checkpoints, format_table, pick_device, write_results
    from skelssl.train import pretrain

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device("auto")
    records, summary = [], {}
    for name in args.methods:
        run_dir = out / name
        budget = [f"data.root={args.root}", f"run_dir={run_dir}", f"trainer.epochs={args.epochs}",
                  f"trainer.batch_size={args.batch}", f"method.queue_size={args.queue}",
                  f"trainer.seed={args.seed}", "trainer.progress_bar=false", "trainer.checkpoint_every_n_epochs=1000",
                  # the step decay keeps its place in the schedule: at 5/6 of the budget, as 250 of 300
                  f"optim.milestones=[{max(1, round(args.epochs * 5 / 6))}]"]
        if name == "aimclr":  # NNM from half the budget, as epoch 150 of 300
            budget.append(f"method.nnm_start_epoch={args.epochs // 2}")
        if args.momentum is not None:
            budget.append(f"method.momentum={args.momentum}")
        cfg = load_config(None, budget + [f"data.stream={args.stream}"] + list(args.overrides),
                          dataset=args.dataset, method=name)
        started = time.time()
        if not (run_dir / LAST_CHECKPOINT).is_file():
            pretrain(cfg, command=["compare_methods.py", name])
        seconds = time.time() - started
        # the random-init baseline once: the runs share architecture, seed and data
        method_records = evaluate_checkpoints([run_dir / LAST_CHECKPOINT], ("knn", "linear"),
                                              with_random_init=name == args.methods[0], device=device)
        if name == "actclr":
            from skelssl.analyze import analyze_actionlets

            method = method_from_checkpoint(run_dir / LAST_CHECKPOINT)
            actionlet_records, _ = analyze_actionlets(method, run_dir / "analysis", device)
            method_records += actionlet_records
        records += method_records
        summary[name] = {"pretrain_seconds": round(seconds), "collapse": last_collapse_figures(run_dir)}
        print(f"[compare] {name}: pretraining {seconds:.0f} s, collapse monitor {summary[name]['collapse']}",
              flush=True)
        write_results(out, records)

    write_results(out, records)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(format_table(records))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
