"""`skelssl evaluate`, `skelssl fuse` and `skelssl report`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from skelssl.checkpoints import run_dir_of
from skelssl.defaults import parse_overrides
from skelssl.errors import UserError
from skelssl.evaluation import evaluate_checkpoints, print_table, write_results
from skelssl.evaluation.fusion import DEFAULT_FUSION_WEIGHTS, fuse_scores, load_scores, save_scores
from skelssl.evaluation.report import markdown_report
from skelssl.evaluation.spread import seeds_report
from skelssl.interop.runs import write_classifier_run
from skelssl.outputs import REPORT_MARK, check_output_dir, check_report_file
from skelssl.tracking import log_results

__all__ = ["evaluate", "fuse", "report"]


def evaluate(args: argparse.Namespace) -> int:
    if args.out:
        check_output_dir(args.out, create=False)
    # `evaluate linear data.root=DIR --checkpoint C`: the protocol list took the override
    protocols = list(dict.fromkeys(p for p in args.protocol if "=" not in p))
    overrides = parse_overrides([p for p in args.protocol if "=" in p] + list(args.overrides))
    per_checkpoint: dict[Path, list] = {}
    per_checkpoint_scores: dict[Path, list] = {}
    classifiers: dict[Path, list] | None = {} if args.save_classifier else None
    records = evaluate_checkpoints(args.checkpoint, protocols, overrides,
                                   with_random_init=args.with_random_init, progress=True,
                                   per_checkpoint=per_checkpoint, out_dir=args.out,
                                   per_checkpoint_scores=per_checkpoint_scores,
                                   per_checkpoint_classifiers=classifiers)
    for path, found in (classifiers or {}).items():
        for backbone, cfg, trained in found:
            target = Path(args.out or run_dir_of(path)) / "classifiers" / f"{backbone.name}-{trained.protocol}"
            print(f"classifier of {trained.protocol} saved as the run {write_classifier_run(backbone, cfg, trained, path, target)}"
                  " (skelssl predict --checkpoint RUN)")
    if args.save_classifier and not classifiers:
        print("--save-classifier: none of these protocols trains a classifier (linear, finetune, semi, supervised and "
              "the transfer protocols do)")
    if args.fuse:
        fused, _ = fuse_scores([s for found in per_checkpoint_scores.values() for s in found],
                               _fusion_weights(overrides))
        if not fused:
            print("nothing to fuse: fusion needs two or more streams of one method under one protocol")
        fused = [r for r in fused if r.stream == "fused"]
        records += fused
    if args.out:
        print(f"results written to {write_results(Path(args.out), records)}")
        save_scores(args.out, [s for found in per_checkpoint_scores.values() for s in found])
    else:  # each run directory gets its own checkpoint's records (and the fused ones)
        for path, found in per_checkpoint.items():
            extra = fused if args.fuse else []
            print(f"results written to {write_results(run_dir_of(path), found + extra)}")
            save_scores(run_dir_of(path), per_checkpoint_scores.get(path, []))
            log_results(run_dir_of(path), found + extra)  # to the run's MLflow / W&B / TensorBoard, if it used any
    print_table(records)
    return 0


def _fusion_weights(overrides: dict) -> dict[str, float]:
    given = (overrides.get("eval") or {}).get("fusion_weights") or {}
    unknown = sorted(set(given) - set(DEFAULT_FUSION_WEIGHTS))
    if unknown:
        raise UserError(f"eval.fusion_weights: unknown stream(s) {', '.join(unknown)}; streams: "
                        f"{', '.join(DEFAULT_FUSION_WEIGHTS)}")
    return {**DEFAULT_FUSION_WEIGHTS, **{k: float(v) for k, v in given.items()}}


def _split_runs(items: list[str]) -> tuple[list[str], list[str]]:
    """RUN directories and key=value overrides given in one positional list."""
    overrides = [item for item in items if "=" in item and not Path(item).exists()]
    return [item for item in items if item not in overrides], overrides


def fuse(args: argparse.Namespace) -> int:
    runs, overrides = _split_runs(list(args.runs) + list(args.overrides))
    protocols, more = _split_runs(list(args.protocol or []))
    overrides += more
    stray = [k for k in parse_overrides(overrides) if k != "eval"]
    if stray or any(set(v) - {"fusion_weights"} for k, v in parse_overrides(overrides).items() if k == "eval"):
        raise UserError(f"'fuse' takes only eval.fusion_weights.<stream>=W overrides, got {' '.join(overrides)}")
    if not runs:
        raise UserError("fuse needs run directories (each with scores/ from `skelssl evaluate`)")
    scores = [s for run in runs for s in load_scores(run)]
    if protocols:
        scores = [s for s in scores if s.protocol in protocols]
    weights = _fusion_weights(parse_overrides(overrides))
    records, _ = fuse_scores(scores, weights)
    if not records:
        found = sorted({f"{s.model}/{s.stream}/{s.protocol}" for s in scores})
        raise UserError(f"nothing to fuse: every (dataset, split, model, protocol) has one stream only "
                        f"(found {', '.join(found) or 'no scores'}); give runs of different streams")
    fused = [r for r in records if r.stream == "fused"]
    for target in ([Path(args.out)] if args.out else [Path(run) for run in runs]):
        print(f"results written to {write_results(target, fused)}")
    print(f"weights: {', '.join(f'{k} {v:g}' for k, v in weights.items())}")
    print_table(records)
    return 0


def report(args: argparse.Namespace) -> int:
    out = check_report_file(args.out) if args.out else None
    if args.seeds:
        table = seeds_report(args.runs, metrics=args.metric, protocols=args.protocol)
    else:
        table = markdown_report(args.runs, metrics=args.metric, protocols=args.protocol, long=args.long)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(f"{REPORT_MARK}\n{table}\n")
        os.replace(tmp, out)
        print(f"written to {out}")
    print(table)
    return 0
