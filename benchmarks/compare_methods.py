"""Pretrain several methods with one budget on one dataset, then compare them (a quality benchmark).

For each method (and each of `--seeds` pretraining seeds): pretrain from its shipped config with the budget's
overrides, then the `--protocols` (KNN, the papers' SGD linear probe, the deterministic logistic probe) on the
frozen backbone; once per encoder, the same protocols on a random-init encoder ("random_init@<encoder>"); once,
the no-learning baseline (1-NN, cosine, on the flattened prepared coordinates of the stream); for ActCLR, the
actionlet precision against ground-truth actionlets when the dataset has them (the synthetic one does); for every
run, the collapse monitor's last-epoch figures. Prints one table and writes OUT/results.json and OUT/summary.json;
with --seeds N > 1 also OUT/spread.md: every cell mean ± sd over the N seeds, each method marked against the
random-init encoder of its architecture (+ / − beyond both spreads, = within; skelssl.evaluation.spread).

A method is a method piece, optionally `@encoder` (a2mc@bigru, a2mc@stgcn, hico, prosl-hico, prosl-skeletonclr,
skeletonclr@bilstm); its records carry that name. Every schedule of the piece keeps its place in the budget:
the step decays, ProSL's start epoch and AimCLR's NNM start are scaled from the piece's epochs to --epochs.

Every method gets the same number of epochs; ActCLR and ActCLR+ spend the first `--warmup` of them in their
warm-up stage (MoCo v2, their shipped configs' default), so their budget is the others'.

    python benchmarks/compare_methods.py --dataset nwucla-xview --root data/nw-ucla \\
        --epochs 10 --batch 64 --queue 1024 --out runs/compare-nwucla
    python benchmarks/compare_methods.py --dataset nwucla-xview --root data/nw-ucla --epochs 10 --batch 64 \\
        --queue 1024 --out runs/compare-issue13 --methods skeletonclr a2mc@bigru a2mc@stgcn hico \\
        prosl-skeletonclr prosl-hico
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


def scaled_schedule(name: str, encoder: str | None, epochs: int) -> list[str]:
    """The piece's step decays and start epochs at the same fractions of an `epochs` budget."""
    from skelssl.config import load_config

    piece = load_config(None, [], method=name, encoder=encoder)
    scale = epochs / int(piece.trainer.epochs)
    milestones = ",".join(str(max(1, round(m * scale))) for m in piece.optim.milestones)
    out = [f"optim.milestones=[{milestones}]"]
    if piece.plugins.prosl.enabled:
        out.append(f"plugins.prosl.start_epoch={min(epochs - 1, round(int(piece.plugins.prosl.start_epoch) * scale))}")
    if piece.method.name == "aimclr":  # NNM from half the budget, as epoch 150 of 300
        out.append(f"method.nnm_start_epoch={int(int(piece.method.nnm_start_epoch) * scale)}")
    return out


def no_learning_records(cfg, dataset_name: str):
    """1-NN (cosine) on the flattened prepared coordinates of the stream: what the data gives without learning."""
    from skelssl.data.dataset import SkeletonDataset
    from skelssl.evaluation.knn import knn_evaluate
    from skelssl.evaluation.results import ResultRecord
    from skelssl.skeleton.layouts import get_layout
    from skelssl.transforms.streams import to_stream

    parts = [SkeletonDataset(cfg.data.root, cfg.data.split, part) for part in ("train", "test")]
    layout = get_layout(parts[0].layout)
    feats = [to_stream(torch.from_numpy(p.array().astype("float32")), cfg.data.stream, layout).flatten(1)
             for p in parts]
    acc = knn_evaluate(feats[0], parts[0].labels, feats[1], parts[1].labels, parts[0].num_classes, ks=())
    return [ResultRecord.from_fraction(dataset_name, cfg.data.split, "no_learning", cfg.data.stream, "knn",
                                       "1nn_cosine", acc["1nn_cosine"])]


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
    parser.add_argument("--seeds", type=int, default=1,
                        help="pretraining seeds --seed, --seed+1, ...: every cell as mean ± sd (runs in SPEC-seedS/)")
    parser.add_argument("--protocols", nargs="+", default=["knn", "linear", "logistic"],
                        help="evaluation protocols on each frozen encoder (logistic: the deterministic probe)")
    parser.add_argument("overrides", nargs="*", help="extra key=value for every method")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from skelssl.models.stgcn import keep_freed_memory_in_process

    keep_freed_memory_in_process()  # as the skelssl command does

    from skelssl.checkpoints import LAST_CHECKPOINT
    from skelssl.methods import method_from_checkpoint
    from skelssl.config import load_config
    from skelssl.evaluation import evaluate_checkpoints, format_table, pick_device, write_results
    from skelssl.train import pretrain

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device("auto")
    records, summary = [], {}
    encoder_of: dict[str, str] = {}
    for seed in range(args.seed, args.seed + args.seeds):
        encoders_seen: set[str] = set()
        for spec in args.methods:
            name, _, encoder = spec.partition("@")
            encoder = encoder or None
            run_name = spec.replace("@", "-") + (f"-seed{seed}" if args.seeds > 1 else "")
            run_dir = out / run_name
            budget = [f"data.root={args.root}", f"run_dir={run_dir}", f"trainer.epochs={args.epochs}",
                      f"trainer.batch_size={args.batch}", f"method.queue_size={args.queue}",
                      f"trainer.seed={seed}", "trainer.progress_bar=false", "trainer.checkpoint_every_n_epochs=1000"]
            budget += scaled_schedule(name, encoder, args.epochs)
            if name in ("actclr", "actclr_plus"):  # the warm-up stage inside the same budget
                budget.append(f"method.warmup.epochs={args.epochs // 3 if args.warmup is None else args.warmup}")
            if args.momentum is not None:
                budget.append(f"method.momentum={args.momentum}")
            cfg = load_config(None, budget + [f"data.stream={args.stream}"] + list(args.overrides),
                              dataset=args.dataset, method=name, encoder=encoder)
            started = time.time()
            if not (run_dir / LAST_CHECKPOINT).is_file():
                pretrain(cfg, command=["compare_methods.py", spec])
            seconds = time.time() - started
            # the random-init baseline once per encoder and seed: runs on one encoder share architecture, seed
            # and data
            first_on_encoder = cfg.model.encoder not in encoders_seen
            encoders_seen.add(cfg.model.encoder)
            encoder_of[spec] = f"random_init@{cfg.model.encoder}"
            method_records = evaluate_checkpoints([run_dir / LAST_CHECKPOINT], tuple(args.protocols),
                                                  with_random_init=first_on_encoder, device=device)
            for record in method_records:  # name the rows by the spec: two A2MC or SkeletonCLR runs stay apart
                record.model = encoder_of[spec] if record.model == "random_init" else spec
            if spec == args.methods[0] and seed == args.seed:  # no seed in it: once
                method_records += no_learning_records(cfg, method_records[0].dataset)
            if name in ("actclr", "actclr_plus"):
                from skelssl.analyze import analyze_actionlets

                method = method_from_checkpoint(run_dir / LAST_CHECKPOINT)
                actionlet_records, _ = analyze_actionlets(method, run_dir / "analysis", device)
                method_records += actionlet_records
            records += method_records
            summary[run_name] = {"pretrain_seconds": round(seconds), "collapse": last_collapse_figures(run_dir)}
            print(f"[compare] {run_name}: pretraining {seconds:.0f} s, collapse monitor "
                  f"{summary[run_name]['collapse']}", flush=True)
            write_results(out, records)

    write_results(out, records)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(format_table(records))
    print(json.dumps(summary, indent=1))
    if args.seeds > 1:
        from skelssl.evaluation.spread import spread_table, summarize_seeds

        columns = [c for c in ("knn 1nn_cosine", "logistic top1", "linear best_top1", "actionlet precision",
                               "actionlet auc") if any(f"{r.protocol} {r.metric}" == c for r in records)]
        table = spread_table(summarize_seeds(records), columns, reference=lambda model: encoder_of.get(model))
        (out / "spread.md").write_text(table + "\n")
        print(table)


if __name__ == "__main__":
    from skelssl.console import run_script

    run_script(main)  # skelssl's UserError as one line, not a traceback
