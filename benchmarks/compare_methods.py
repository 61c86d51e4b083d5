"""Pretrain several methods with one budget on one dataset, then compare them (a quality benchmark).

For each method: pretrain from its shipped config with the budget's overrides, then KNN and linear probe on the
frozen backbone; once, the same protocols on a random-init encoder, and the no-learning cosine 1-NN on the
prepared coordinates; for ActCLR and ActCLR+, the actionlet precision against ground-truth actionlets when the
dataset has them (the synthetic one does); for every run, the collapse monitor's last-epoch figures. Prints one
table and writes OUT/results.json and OUT/summary.json.

Every method gets the same number of epochs; ActCLR and ActCLR+ spend the first `--warmup` of them in their
warm-up stage (MoCo v2, their shipped configs' default), so their budget is the others'.

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


def raw_coordinates_1nn(root: str, split: str) -> float:
    """No learning: the cosine 1-NN of the test sequences among the training ones on their prepared coordinates
    (every value of (C, T, V, M), flattened), as a fraction."""
    import numpy as np

    from skelssl.data.dataset import SkeletonDataset
    from skelssl.evaluation.knn import knn_evaluate

    train, test = SkeletonDataset(root, split, "train"), SkeletonDataset(root, split, "test")
    flat = [torch.as_tensor(np.asarray(part.array()), dtype=torch.float32).flatten(1) for part in (train, test)]
    labels = [torch.as_tensor(np.asarray(part.labels), dtype=torch.long) for part in (train, test)]
    return knn_evaluate(flat[0], labels[0], flat[1], labels[1], train.num_classes, ks=())["1nn_cosine"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="a shipped dataset-split config, e.g. nwucla-xview")
    parser.add_argument("--root", required=True, help="prepared dataset")
    parser.add_argument("--methods", nargs="+", default=["skeletonclr", "aimclr", "actclr", "actclr_plus"])
    parser.add_argument("--stream", default="joint")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--queue", type=int, default=1024)
    parser.add_argument("--momentum", type=float, default=None, help="key-encoder momentum (default: config's)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="ActCLR / ActCLR+ warm-up epochs within --epochs (default: a third of them)")
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
        if name in ("actclr", "actclr_plus"):  # the warm-up stage inside the same budget
            budget.append(f"method.warmup.epochs={args.epochs // 3 if args.warmup is None else args.warmup}")
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
        if name in ("actclr", "actclr_plus"):
            from skelssl.analyze import analyze_actionlets

            method = method_from_checkpoint(run_dir / LAST_CHECKPOINT)
            actionlet_records, _ = analyze_actionlets(method, run_dir / "analysis", device)
            method_records += actionlet_records
        records += method_records
        summary[name] = {"pretrain_seconds": round(seconds), "collapse": last_collapse_figures(run_dir)}
        print(f"[compare] {name}: pretraining {seconds:.0f} s, collapse monitor {summary[name]['collapse']}",
              flush=True)
        write_results(out, records)

    from skelssl.evaluation import ResultRecord

    dataset_name, split = cfg.data.dataset, cfg.data.split
    records.append(ResultRecord.from_fraction(dataset_name, split, "raw_coordinates", "joint", "knn",
                                              "1nn_cosine", raw_coordinates_1nn(args.root, split)))
    write_results(out, records)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(format_table(records))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
