"""The one entry point: `skelssl demo|pretrain|evaluate|predict|import|export|fuse|report|analyze|prepare|info`.

This module parses the command line; what each command does is in skelssl.commands.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from skelssl.commands import datasets, evaluating, sharing, training
from skelssl.console import configure_output
from skelssl.data.prepare_cli import add_prepare_parser
from skelssl.defaults import piece_names
from skelssl.errors import UserError
from skelssl.evaluation.catalog import PROTOCOLS
from skelssl.interop import FORMATS
from skelssl.models.stgcn import keep_freed_memory_in_process


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skelssl", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    _add_output_options(parser, argparse_default=False)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="synthetic data -> SkeletonCLR -> KNN + linear vs random init")
    demo.add_argument("--run-dir", default=None, help="where to write the run (default: a new folder in runs/)")
    demo.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. trainer.epochs=5")
    demo.set_defaults(func=training.demo)

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
    pre.set_defaults(func=training.pretrain)

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
    ev.add_argument("--save-classifier", action="store_true",
                    help="keep each classifier a protocol trains (linear, finetune, semi, supervised, transfer) as a "
                         "run in OUT/classifiers/<model>-<protocol>, which `skelssl predict` takes")
    ev.add_argument("overrides", nargs="*", help="key=value overrides of data.* and eval.*")
    ev.set_defaults(func=evaluating.evaluate)

    fu = sub.add_parser("fuse", help="fuse the joint, motion and bone runs' test logits (weighted sum)",
                        description="Combine the saved test logits (RUN/scores/) of runs of different streams "
                                    "by a weighted sum, joint 0.6, bone 0.6, motion 0.4 by default (AimCLR); "
                                    "change one with eval.fusion_weights.motion=0.5. Prints per-stream and "
                                    "fused rows; the fused ones go to each run's results.json (or --out).")
    fu.add_argument("runs", nargs="+", metavar="RUN", help="run directories evaluated with a classifier protocol")
    fu.add_argument("--protocol", nargs="+", default=None, help="only these protocols (default: every one found)")
    fu.add_argument("--out", default=None, help="directory for results.json (default: each run)")
    fu.set_defaults(func=evaluating.fuse, overrides=[])

    rep = sub.add_parser("report", help="one markdown table of the results of several runs",
                         description="Rows: method and stream; columns: dataset, split, protocol, metric "
                                     "(--long: one row per record). Values in percent.")
    rep.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or results.json files)")
    rep.add_argument("--metric", nargs="+", default=None, help="only these metrics, e.g. top1 1nn_cosine")
    rep.add_argument("--protocol", nargs="+", default=None, help="only these protocols")
    rep.add_argument("--long", action="store_true", help="one row per record")
    rep.add_argument("--seeds", action="store_true",
                     help="the runs are pretraining seeds of the same methods: every cell mean ± sd, each method "
                          "marked against random_init (+ / − beyond both spreads, = within)")
    rep.add_argument("--out", default=None, help="also write the table to this file")
    rep.set_defaults(func=evaluating.report)

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
    an.set_defaults(func=training.analyze)

    info = sub.add_parser("info", help="what a prepared dataset holds")
    info.add_argument("dataset", help="prepared dataset directory")
    info.add_argument("--json", action="store_true")
    info.add_argument("--baseline", action="store_true",
                      help="also the no-learning 1-NN on the prepared coordinates (what an encoder must beat)")
    info.set_defaults(func=datasets.info)

    _add_sharing_parsers(sub)
    add_prepare_parser(sub)
    _add_output_options_below(parser)  # `skelssl pretrain ... --no-progress` as well as before the command
    return parser


def _add_sharing_parsers(sub: argparse._SubParsersAction) -> None:
    im = sub.add_parser("import", help="another project's checkpoint (CrosSCLR/AimCLR/ActCLR .pt, HiCo, a skelssl "
                                       ".safetensors export) as a skelssl run",
                        description="Read a checkpoint of another project into a run directory that evaluate, "
                                    "predict, analyze, export and the API take. The format is found from the "
                                    "tensor names; every tensor is placed (RUN/imported.json lists where) or the "
                                    "import fails naming it. Loaded with weights_only: nothing in the file runs.")
    im.add_argument("source", metavar="CKPT", help="the checkpoint file (.pt, .pth, .tar or .safetensors)")
    im.add_argument("--out", required=True, help="the run directory to write (one per stream for CrosSCLR's three: "
                                                 "OUT/joint, OUT/motion, OUT/bone)")
    im.add_argument("--format", default="auto", choices=FORMATS, help="the reader to use (default: from the keys)")
    im.add_argument("--head", default="auto", choices=["auto", "classifier", "projector"],
                    help="what encoder_q.fc is (default: a projector in a pretext file, else the classifier)")
    im.add_argument("--name", default=None, help="the model name results carry (default: the file name)")
    im.add_argument("--trained-on", default=None,
                    help="the dataset the weights learnt on (default: ntu60/ntu120 from a 60/120-class classifier)")
    im.set_defaults(func=sharing.import_weights)

    ex = sub.add_parser("export", help="a run's encoder (and classifier) as a .safetensors file, config as metadata")
    ex.add_argument("run", metavar="RUN", help="a run directory (or RUN/checkpoints/last.ckpt)")
    ex.add_argument("--out", required=True, help="the file to write, ending in .safetensors")
    ex.set_defaults(func=sharing.export)

    pr = sub.add_parser("predict", help="label sequences with a run's classifier: predictions.csv (top-5), and with "
                                        "labels results.json and confusion.png",
                        description="The test part of data.split (default: the run's split), or every sequence of a "
                                    "dataset without splits, through the run's encoder and classifier.")
    pr.add_argument("--checkpoint", required=True, help="a run with a classifier (RUN or RUN/checkpoints/last.ckpt)")
    pr.add_argument("--out", required=True, help="directory for predictions.csv, results.json, confusion.png")
    pr.add_argument("overrides", nargs="*", help="data.root=DIR data.split=SPLIT (and eval.batch_size=...)")
    pr.set_defaults(func=sharing.predict)


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
    configure_output(verbose=args.verbose, progress=not args.no_progress)
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
