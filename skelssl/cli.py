"""The one entry point: `skelssl demo|pretrain|evaluate|fuse|report|analyze|prepare|info`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from skelssl.errors import UserError
from skelssl.outputs import REPORT_MARK, check_output_dir, check_report_file


def _cmd_demo(args: argparse.Namespace) -> int:
    from skelssl.demo import run_demo

    run_demo(args.run_dir, args.overrides)
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from skelssl.config import load_config, parse_overrides
    from skelssl.train import pretrain, saved_run_config

    requested = parse_overrides(args.overrides)
    saved = None
    if requested.get("resume") is True and requested.get("run_dir"):
        # resume: the run's own settings are the starting point; what the command adds is checked against them
        saved = saved_run_config(requested["run_dir"])
    cfg = load_config(args.config, args.overrides, dataset=args.dataset, method=args.method, encoder=args.encoder,
                      start_from=saved)
    if args.show_config:
        print(OmegaConf.to_yaml(cfg))
        return 0
    run_dir = pretrain(cfg, command=["skelssl", *sys.argv[1:]])
    print(f"pretraining finished: {run_dir / 'checkpoints' / 'last.ckpt'}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from skelssl.checkpoints import run_dir_of
    from skelssl.config import parse_overrides
    from skelssl.evaluation import evaluate_checkpoints, print_table, write_results
    from skelssl.evaluation.fusion import fuse_scores, save_scores

    if args.out:
        check_output_dir(args.out, create=False)
    # `evaluate linear data.root=DIR --checkpoint C`: the protocol list took the override
    protocols = list(dict.fromkeys(p for p in args.protocol if "=" not in p))
    overrides = parse_overrides([p for p in args.protocol if "=" in p] + list(args.overrides))
    per_checkpoint: dict[Path, list] = {}
    per_checkpoint_scores: dict[Path, list] = {}
    records = evaluate_checkpoints(args.checkpoint, protocols, overrides,
                                   with_random_init=args.with_random_init, progress=True,
                                   per_checkpoint=per_checkpoint, out_dir=args.out,
                                   per_checkpoint_scores=per_checkpoint_scores)
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
        from skelssl.tracking import log_results

        for path, found in per_checkpoint.items():
            extra = fused if args.fuse else []
            print(f"results written to {write_results(run_dir_of(path), found + extra)}")
            save_scores(run_dir_of(path), per_checkpoint_scores.get(path, []))
            log_results(run_dir_of(path), found + extra)  # to the run's MLflow / W&B / TensorBoard, if it used any
    print_table(records)
    return 0


def _fusion_weights(overrides: dict) -> dict[str, float]:
    from skelssl.evaluation.fusion import DEFAULT_FUSION_WEIGHTS

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


def _cmd_fuse(args: argparse.Namespace) -> int:
    from skelssl.config import parse_overrides
    from skelssl.evaluation import print_table, write_results
    from skelssl.evaluation.fusion import fuse_scores, load_scores

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


def _cmd_report(args: argparse.Namespace) -> int:
    from skelssl.evaluation.report import markdown_report

    out = check_report_file(args.out) if args.out else None
    table = markdown_report(args.runs, metrics=args.metric, protocols=args.protocol, long=args.long)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(f"{REPORT_MARK}\n{table}\n")
        os.replace(tmp, out)
        print(f"written to {out}")
    print(table)
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from skelssl.analyze import analyze_actionlets, analyze_tsne
    from skelssl.checkpoints import method_from_checkpoint, run_dir_of
    from skelssl.config import model_label, parse_overrides
    from skelssl.evaluation import pick_device

    overrides = parse_overrides(args.overrides)
    out_dir = check_output_dir(args.out, create=False) if args.out else run_dir_of(args.checkpoint) / "analysis"
    results_dir = run_dir_of(args.checkpoint) if not args.out else out_dir
    if args.what == "strength":
        from skelssl.analyze import analyze_strength

        if not args.vary:
            raise UserError("analyze strength needs --vary KEY=V1,V2,... (e.g. augment.shear_amplitude=0.1,0.5,1)")
        records, paths = analyze_strength(args.checkpoint, args.vary, Path(args.out or out_dir / "strength"),
                                          args.epochs, init_from_checkpoint=args.init_from_checkpoint,
                                          epsilon=args.epsilon, max_nodes=args.max_nodes, overrides=overrides)
        _finish_analysis(results_dir, records, paths)
        return 0
    method = method_from_checkpoint(args.checkpoint, overrides)
    device = pick_device(method.cfg.trainer.accelerator)
    models = [(method, model_label(method.cfg))]
    if args.with_random_init:
        from skelssl.evaluation.runner import prepare_random_init

        random_init = method_from_checkpoint(args.checkpoint, overrides, load_weights=False)
        prepare_random_init(random_init, device)
        models.append((random_init, "random_init"))
    records, paths = [], []
    if args.what == "actionlets":
        records, paths = analyze_actionlets(method, out_dir, device, limit=args.limit)
        if not records:
            print("this dataset has no ground-truth actionlets: pictures only")
    elif args.what == "tsne":
        for model, name in models:
            found, path = analyze_tsne(model, out_dir, device, name)
            records, paths = records + found, paths + [path]
    elif args.what == "spectrum":
        from skelssl.analyze import analyze_spectrum

        for model, name in models:
            found, drawn = analyze_spectrum(model, out_dir, device, name, epsilon=args.epsilon,
                                            max_nodes=args.max_nodes)
            records, paths = records + found, paths + drawn
    else:  # segmentation
        from skelssl.analyze import analyze_segmentation

        for model, name in models:
            found, drawn = analyze_segmentation(model, out_dir, device, name, sequences=args.sequence)
            records, paths = records + found, paths + drawn
    _finish_analysis(results_dir, records, paths)
    return 0


def _finish_analysis(results_dir: Path, records: list, paths: list) -> None:
    from skelssl.evaluation import print_table, write_results

    if records:
        write_results(results_dir, records)
        print_table(records)
    for path in paths:
        print(f"wrote {path}")


def _cmd_info(args: argparse.Namespace) -> int:
    from skelssl.data.prepared import summarize

    info = summarize(args.dataset)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"{info['dataset']} at {info['path']}")
    print(f"  {info['samples']} samples, {info['classes']} classes, layout {info['layout']}, "
          f"(C, T, V, M) = ({info['channels']}, {info['frames']}, {info['joints']}, {info['persons']}), "
          f"valid frames {info['length_min']}-{info['length_max']} (mean {info['length_mean']:.1f})")
    values = info.get("values") or {}
    if values.get("nonfinite_samples"):
        print(f"  WARNING: {values['nonfinite_samples']} sample(s) hold NaN, infinite or unusably large values; "
              f"the first, '{values['first_nonfinite']}', {values['first_problem']}. Pretrain and evaluate refuse "
              "them: prepare the dataset again")
    elif values and not values.get("scanned"):
        print("  values not scanned for NaN (large dataset); pretrain and evaluate check each sample they read")
    for split, parts in info["splits"].items():
        counts = ", ".join(f"{part} {p['samples']}" for part, p in parts.items())
        print(f"  split {split}: {counts}")
    first = next(iter(info["splits"].values()), {})
    if first:
        print(f"  {'class':<28} " + " ".join(f"{part:>7}" for part in first))
        for name in info["class_names"]:
            print(f"  {name[:28]:<28} " + " ".join(f"{p['per_class'].get(name, 0):>7}" for p in first.values()))
    prov = info.get("provenance") or {}
    if prov:
        shown = {k: v for k, v in prov.items() if isinstance(v, (str, int, float)) and len(str(v)) < 120}
        print("  provenance: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    _print_normalisation(info)
    if args.baseline:
        from skelssl.evaluation.baseline import coordinate_1nn

        results = coordinate_1nn(args.dataset)
        if not results:
            print("  baseline: no split has both a train and a test part")
        for split, result in results.items():
            print(f"  baseline (no learning, 1-NN cosine on the prepared coordinates), split {split}: "
                  f"{100 * result['accuracy']:.1f} % ({result['train']} train, {result['test']} test); "
                  "a learned encoder must beat it")
    return 0


def _print_normalisation(info: dict) -> None:
    """What `prepare custom` did to the coordinates, and what looks un-normalised (with the fix)."""
    from skelssl.data.normalize import describe_steps

    if info["channel_names"] != ["x", "y", "z"]:
        print(f"  channels: {', '.join(info['channel_names'])}")
    steps = info.get("normalization")
    if steps:
        print(f"  normalisation: {describe_steps(steps)}")
        for note in steps.get("notes", []):
            print(f"    {note}")
        for what, detail in (steps.get("not_applied") or {}).items():
            print(f"    {detail['count']} recording(s) {what} (samples {detail['samples'][:5]} ...)")
    for warning in info["warnings"]:
        print(f"  warning: {warning}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skelssl", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    _add_output_options(parser, argparse_default=False)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="synthetic data -> SkeletonCLR -> KNN + linear vs random init")
    demo.add_argument("--run-dir", default=None, help="where to write the run (default: a new folder in runs/)")
    demo.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. trainer.epochs=5")
    demo.set_defaults(func=_cmd_demo)

    from skelssl.config import piece_names

    pre = sub.add_parser("pretrain", help="self-supervised pretraining from composed configs",
                         description="Compose a run from shipped pieces (dataset, method, encoder), your own "
                                     "YAML file and key=value overrides, e.g. `skelssl pretrain --dataset "
                                     "ntu60-xsub --method aimclr data.stream=bone`.")
    pre.add_argument("--dataset", default=None, choices=piece_names("datasets"), metavar="DATASET-SPLIT",
                     help=f"dataset and split: {', '.join(piece_names('datasets'))}")
    pre.add_argument("--method", default=None, choices=piece_names("methods"),
                     help="method with its paper's schedule")
    pre.add_argument("--encoder", default=None, choices=piece_names("encoders"), help="encoder (default stgcn)")
    pre.add_argument("--config", default=None, help="your own YAML file (may list pieces under `defaults:`)")
    pre.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    pre.add_argument("overrides", nargs="*", help="key=value overrides, e.g. trainer.epochs=10 resume=true")
    pre.set_defaults(func=_cmd_pretrain)

    from skelssl.evaluation.protocols import PROTOCOLS

    ev = sub.add_parser("evaluate", help="evaluate pretrained encoders: " + ", ".join(PROTOCOLS),
                        description="; ".join(f"{name}: {p.help}" for name, p in PROTOCOLS.items()))
    ev.add_argument("protocol", nargs="+", metavar="PROTOCOL",
                    help=f"one or more of: {', '.join(PROTOCOLS)}")
    ev.add_argument("--checkpoint", required=True, nargs="+", help="one or more RUN/checkpoints/last.ckpt")
    ev.add_argument("--with-random-init", action="store_true",
                    help="also evaluate a randomly initialised encoder of the same architecture")
    ev.add_argument("--fuse", action="store_true",
                    help="add fused rows: the checkpoints' streams combined by eval.fusion_weights")
    ev.add_argument("--out", default=None, help="directory for results.json, scores/ and subsets/ "
                                                "(default: each checkpoint's run)")
    ev.add_argument("overrides", nargs="*", help="key=value overrides of data.* and eval.*")
    ev.set_defaults(func=_cmd_evaluate)

    fu = sub.add_parser("fuse", help="fuse the joint, motion and bone runs' test logits (weighted sum)",
                        description="Combine the saved test logits (RUN/scores/) of runs of different streams "
                                    "by a weighted sum, joint 0.6, bone 0.6, motion 0.4 by default (AimCLR); "
                                    "change one with eval.fusion_weights.motion=0.5. Prints per-stream and "
                                    "fused rows; the fused ones go to each run's results.json (or --out).")
    fu.add_argument("runs", nargs="+", metavar="RUN", help="run directories evaluated with a classifier protocol")
    fu.add_argument("--protocol", nargs="+", default=None, help="only these protocols (default: every one found)")
    fu.add_argument("--out", default=None, help="directory for results.json (default: each run)")
    fu.set_defaults(func=_cmd_fuse, overrides=[])

    rep = sub.add_parser("report", help="one markdown table of the results of several runs",
                         description="Rows: method and stream; columns: dataset, split, protocol, metric "
                                     "(--long: one row per record). Values in percent.")
    rep.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or results.json files)")
    rep.add_argument("--metric", nargs="+", default=None, help="only these metrics, e.g. top1 1nn_cosine")
    rep.add_argument("--protocol", nargs="+", default=None, help="only these protocols")
    rep.add_argument("--long", action="store_true", help="one row per record")
    rep.add_argument("--out", default=None, help="also write the table to this file")
    rep.set_defaults(func=_cmd_report)

    an = sub.add_parser("analyze", help="actionlets, t-SNE with k-means NMI/Davies-Bouldin, the spectrum (kappa, "
                                        "diameter), its sweep over augmentation strength, segmentation (PNG + "
                                        "results.json)", description="See docs/analysis.md.")
    an.add_argument("what", choices=["actionlets", "tsne", "spectrum", "strength", "segmentation"])
    an.add_argument("--checkpoint", required=True, help="RUN/checkpoints/last.ckpt")
    an.add_argument("--out", default=None, help="directory for the PNGs (default: RUN/analysis)")
    an.add_argument("--limit", type=int, default=None, help="actionlets: analyse only the first N test sequences")
    an.add_argument("--with-random-init", action="store_true",
                    help="tsne, spectrum, segmentation: also a random-init encoder")
    an.add_argument("--vary", default=None, help="strength: KEY=V1,V2,... one pretraining run per value, e.g. "
                                                 "augment.shear_amplitude=0.1,0.5,1.0")
    an.add_argument("--epochs", type=int, default=10, help="strength: pretraining epochs per value (default 10)")
    an.add_argument("--init-from-checkpoint", action="store_true",
                    help="strength: start each run from the checkpoint's weights instead of from scratch")
    an.add_argument("--epsilon", type=float, default=0.1, help="spectrum, strength: eigenvalue threshold of kappa")
    an.add_argument("--max-nodes", type=int, default=1000,
                    help="spectrum, strength: test sequences in the graph (evenly spaced)")
    an.add_argument("--sequence", nargs="*", default=None,
                    help="segmentation: raw PKU-MMD skeleton files to label frame by frame (no score)")
    an.add_argument("overrides", nargs="*", help="key=value overrides of data.*")
    an.set_defaults(func=_cmd_analyze)

    info = sub.add_parser("info", help="what a prepared dataset holds")
    info.add_argument("dataset", help="prepared dataset directory")
    info.add_argument("--json", action="store_true")
    info.add_argument("--baseline", action="store_true",
                      help="also the no-learning 1-NN on the prepared coordinates (what an encoder must beat)")
    info.set_defaults(func=_cmd_info)

    try:
        from skelssl.data.prepare_cli import add_prepare_parser
    except ImportError:
        pass
    else:
        add_prepare_parser(sub)
    _add_output_options_below(parser)  # `skelssl pretrain ... --no-progress` as well as before the command
    return parser


def _add_output_options_below(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _add_output_options(subparser, argparse_default=argparse.SUPPRESS)
                _add_output_options_below(subparser)


def _add_output_options(parser: argparse.ArgumentParser, argparse_default: object) -> None:
    known = {option for action in parser._actions for option in action.option_strings}
    if "--verbose" not in known:
        parser.add_argument("--verbose", action="store_true", default=argparse_default,
                            help="also show the libraries' tips, info lines and deprecation warnings")
    if "--no-progress" not in known:
        parser.add_argument("--no-progress", action="store_true", default=argparse_default,
                            help="no progress bars or per-epoch progress lines")


def main(argv: list[str] | None = None) -> int:
    """The `skelssl` command. Output cut short by the reader (`skelssl info ... | head`) ends it quietly."""
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader has gone: point stdout at /dev/null so that the interpreter's final flush cannot fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # as a shell reports a command ended by SIGPIPE


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options (argparse stops filling a positional list at an option).
    stray = [item for item in extra if "=" not in item or item.startswith("-")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if isinstance(getattr(args, "checkpoint", None), list):  # `--checkpoint A B key=value`: nargs took the override
        given = list(args.checkpoint)
        args.checkpoint = [c for c in given if "=" not in c or Path(c).exists()]
        extra = [c for c in given if c not in args.checkpoint] + extra
        if not args.checkpoint:
            parser.error("--checkpoint needs at least one checkpoint file")
    if getattr(args, "sequence", None):  # `--sequence FILE key=value`: nargs took the override
        extra = [c for c in args.sequence if "=" in c and not Path(c).exists()] + extra
        args.sequence = [c for c in args.sequence if "=" not in c or Path(c).exists()]
    if extra:
        if not hasattr(args, "overrides"):
            parser.error(f"'{args.command}' takes no key=value overrides: {' '.join(extra)}")
        args.overrides = list(args.overrides) + extra
    from skelssl.console import configure_output

    configure_output(verbose=args.verbose, progress=not args.no_progress)
    from skelssl.models.stgcn import keep_freed_memory_in_process

    keep_freed_memory_in_process()  # large feature maps are reused instead of page-faulted anew every step
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        if args.debug:
            raise
        print(f"skelssl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"skelssl {args.command}: interrupted; a pretraining run continues with resume=true run_dir=...",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
