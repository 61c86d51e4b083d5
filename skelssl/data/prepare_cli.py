"""`skelssl prepare ...`: one sub-command per dataset, plus `convert` for other projects' files.

The lead's skelssl/cli.py calls `add_prepare_parser(subparsers)`; each sub-command sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import time
import json

from skelssl.data.custom import prepare_custom
from skelssl.data.formats import convert
from skelssl.data.msr import prepare_msr_action3d
from skelssl.data.sbu import prepare_sbu
from skelssl.data.utkinect import prepare_utkinect
from skelssl.data.normalize import OFF, NormalizeOptions, steps_with
from skelssl.data.ntu_prepare import prepare_ntu
from skelssl.data.ntu_preprocess import NtuRecipe, recipe_from_preset
from skelssl.data.pkummd import prepare_pkummd
from skelssl.data.synthetic import prepare_synthetic
from skelssl.data.synthetic_untrimmed import prepare_synthetic_untrimmed
from skelssl.data.ucla import prepare_nw_ucla
from skelssl.errors import UserError


def _common(parser: argparse.ArgumentParser, out_required: bool = True) -> None:
    parser.add_argument("--out", required=out_required, help="output directory (replaced only on success)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip malformed input files (listed in the summary and in OUT/skipped.json) "
                             "instead of stopping at the first one")
    parser.add_argument("--workers", type=int, default=0, help="parallel processes (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS, help="no progress bar")


def _finish(report) -> int:
    print(report.table())
    for item in report.skipped[:50]:
        detail = f" line {item['line']}: {item['problem']}" if "problem" in item else ""
        print(f"  skipped {item['file']}: {item['reason']}{detail}")
    if len(report.skipped) > 50:
        print(f"  ... {len(report.skipped) - 50} more in {report.out_dir}/skipped.json")
    return 0


def _bool_option(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"'{text}' is not a yes/no value")


def _recipe(args: argparse.Namespace) -> NtuRecipe:
    return recipe_from_preset(args.preset, read_bodies=args.read_bodies, bodies=args.bodies,
                              body_order=args.body_order, denoise=args.denoise, max_frames=args.max_frames,
                              fill_null=args.fill_null, center_joint=args.center_joint,
                              center_mode=args.center_mode, center_trajectory=args.center_trajectory,
                              frames=args.frames, align=args.align)


def _run_ntu(args: argparse.Namespace) -> int:
    report = prepare_ntu(args.raw, args.out, args.dataset, _recipe(args), exclude_list=args.exclude_list,
                         skip_bad=args.skip_bad, workers=args.workers, progress=not args.no_progress)
    return _finish(report)


PRESETS_HELP = ("Presets: aimclr (CrosSCLR/AimCLR/ActCLR: first 2 bodies, centre joint 21 per frame, resample to 50, "
                "per-frame shoulder alignment) and agcn (2s-AGCN/HiCo/CMD: 2 most active of 4 bodies, null frames "
                "filled, centre joint 2, one rotation from the first frame, 300 frames). Any option below overrides "
                "the preset's value.")


def _add_recipe_options(p: argparse.ArgumentParser, presets: list[str]) -> None:
    p.add_argument("--preset", default="aimclr", choices=presets)
    p.add_argument("--read-bodies", type=int, help="bodies read per frame (aimclr 2, agcn 4)")
    p.add_argument("--bodies", type=int, help="bodies kept (2)")
    p.add_argument("--body-order", choices=["file", "motion"], help="keep the first bodies or the most active")
    p.add_argument("--denoise", type=_bool_option, metavar="yes|no",
                   help="drop spurious bodies by tracking id (short or wider-than-tall); default no")
    p.add_argument("--max-frames", type=int, help="frames read from a file (300)")
    p.add_argument("--fill-null", type=_bool_option, metavar="yes|no",
                   help="fill empty frames by repeating the sequence (agcn yes)")
    p.add_argument("--center-joint", type=int, help="1-based joint to centre on, 0 = none (aimclr 21, agcn 2)")
    p.add_argument("--center-mode", choices=["each_body", "body0"], help="centre each body on its own joint "
                                                                        "or all on body 0's")
    p.add_argument("--center-trajectory", type=_bool_option, metavar="yes|no",
                   help="keep the centre joint's displacement from the first frame (aimclr yes)")
    p.add_argument("--frames", type=int, help="resample the valid frames to this many, 0 = no (aimclr 50)")
    p.add_argument("--align", choices=["none", "shoulders_per_frame", "first_frame"],
                   help="view alignment (aimclr shoulders_per_frame, agcn first_frame)")


def _add_ntu(sub: argparse._SubParsersAction, dataset: str) -> None:
    p = sub.add_parser(dataset, help=f"NTU RGB+D {dataset[3:]} from the raw .skeleton files",
                       description=PRESETS_HELP)
    p.add_argument("--raw", required=True, help="directory holding the .skeleton files (searched recursively)")
    p.add_argument("--exclude-list", help="official list of samples with missing skeletons to skip")
    _add_recipe_options(p, ["aimclr", "agcn"])
    _common(p)
    p.set_defaults(func=_run_ntu, dataset=dataset)


def _run_ucla(args: argparse.Namespace) -> int:
    return _finish(prepare_nw_ucla(args.raw, args.out, frames=args.frames, skip_bad=args.skip_bad,
                                   workers=args.workers, progress=not args.no_progress))


def _run_msr(args: argparse.Namespace) -> int:
    return _finish(prepare_msr_action3d(args.raw, args.out, frames=args.frames, file_list=args.file_list,
                                        skip_bad=args.skip_bad, workers=args.workers,
                                        progress=not args.no_progress))


def _run_utkinect(args: argparse.Namespace) -> int:
    return _finish(prepare_utkinect(args.raw, args.out, frames=args.frames, skip_bad=args.skip_bad,
                                    workers=args.workers, progress=not args.no_progress))


def _run_sbu(args: argparse.Namespace) -> int:
    return _finish(prepare_sbu(args.raw, args.out, frames=args.frames, skip_bad=args.skip_bad, workers=args.workers,
                               progress=not args.no_progress))


def _run_custom(args: argparse.Namespace) -> int:
    base = NormalizeOptions() if args.normalize else OFF
    body = tuple(j.strip() for j in args.body_joints.split(",")) if args.body_joints else None
    options = steps_with(base, trim=args.trim, center=args.center, center_joint=args.center_joint,
                         align=args.align, scale=args.scale, body_joints=body, temporal=args.temporal,
                         frames=args.frames)
    return _finish(prepare_custom(args.arrays, args.layout, args.out, labels=args.labels, split=args.split,
                                  class_names=args.class_names, name=args.name, data_key=args.data_key,
                                  lengths=args.lengths, channels=args.channels, normalization=options,
                                  skip_bad=args.skip_bad))


def _add_custom(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("custom", help="your own recordings: npy/npz arrays or a folder of .npy + a layout",
                       description="Your own recordings, normalised as the dataset preparers do (see "
                                   "docs/data.md): valid frames found, centred on the layout's centre joint, "
                                   "3D views aligned (spine -> y, hips -> x), 2D keypoints scaled to unit "
                                   "torso, resampled to 50 frames. Every step can be changed or turned off; "
                                   "--normalize off stores the coordinates as given.")
    p.add_argument("--arrays", required=True, help=".npy or .npz with (N,T,V,C) or (N,C,T,V,M) skeletons, or a "
                                                   "folder of .npy recordings (T,V,C) or (T,M,V,C) of any length")
    p.add_argument("--layout", required=True, help="ntu25, kinect20, coco17 or a layout YAML (joints, edges, "
                                                   "centre, parts, left_right)")
    p.add_argument("--labels", help="labels .npy (N,) of class indices or names (default: key 'labels' of "
                                    "the .npz); for a folder: a CSV 'file,label[,split]'")
    p.add_argument("--split", help="split .npy (N,) of 'train'/'test' or 1/0 (default: key 'split' of the "
                                   ".npz; none: everything is train)")
    p.add_argument("--lengths", help="lengths .npy (N,): the valid frames of each padded recording (default: "
                                     "key 'lengths' of the .npz, else found from the all-zero frames)")
    p.add_argument("--class-names", help="text file, one class name a line")
    p.add_argument("--channels", choices=["xyz", "xy", "xy-score"],
                   help="what the C channels hold (default: xyz for C=3, xy for C=2); xy-score = 2D keypoints "
                        "with a confidence, which is never centred or scaled")
    p.add_argument("--data-key", default="data", help="array name inside the .npz (default 'data')")
    p.add_argument("--name", default="custom", help="dataset name stored in meta.json")
    p.add_argument("--normalize", type=_bool_option, default=True, metavar="on|off",
                   help="off: store the coordinates as given (every step below off unless given)")
    p.add_argument("--trim", type=_bool_option, metavar="yes|no",
                   help="drop leading and trailing all-zero frames (default yes)")
    p.add_argument("--center", choices=["first_frame", "every_frame", "none"],
                   help="subtract the centre joint of person 0's first frame from everything (default), or "
                        "each person's in every frame")
    p.add_argument("--center-joint", help="joint name or 0-based index (default: the layout's centre)")
    p.add_argument("--align", choices=["auto", "first_frame", "none"],
                   help="rotate the spine onto y and the hips onto x, from the first frame (default auto: "
                        "3D data whose layout names its hips and shoulders)")
    p.add_argument("--scale", choices=["auto", "body", "none"],
                   help="divide by the mean torso length (default auto: 2D data)")
    p.add_argument("--body-joints", metavar="LHIP,RHIP,LSHOULDER,RSHOULDER",
                   help="the joints alignment and scaling use, when the layout's names do not say")
    p.add_argument("--temporal", choices=["resample", "pad"],
                   help="resample the valid frames to --frames (default), or crop/zero-pad to --frames")
    p.add_argument("--frames", type=int, help="output frames (default 50; with --temporal pad 0 = the longest)")
    _common(p)
    p.set_defaults(func=_run_custom)


def _run_pkummd(args: argparse.Namespace) -> int:
    raw = args.preset == "raw"
    if raw and any(getattr(args, k) is not None for k in ("read_bodies", "bodies", "body_order", "denoise",
                                                           "max_frames", "fill_null", "center_joint", "center_mode",
                                                           "center_trajectory", "align")):
        raise UserError("--preset raw keeps the camera coordinates: only --frames applies to it")
    reports = prepare_pkummd(args.raw, args.labels, args.out, part=args.part, split_dir=args.splits,
                             frames=int(args.frames or 0), skip_bad=args.skip_bad, progress=not args.no_progress,
                             workers=args.workers, recipe=None if raw else _recipe(args))
    for report in reports:
        _finish(report)
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    return _finish(convert(args.format, args.input, args.out, labels=args.labels,
                           trust_pickle=args.trust_pickle, test_input=args.test_input,
                           test_labels=args.test_labels, layout=args.layout))


def _run_synthetic(args: argparse.Namespace) -> int:
    started = time.time()
    if args.untrimmed:
        out = prepare_synthetic_untrimmed(args.out, seed=args.seed, clip_frames=args.frames,
                                          num_sequences_per_subject=args.per_subject or 4)
    else:
        out = prepare_synthetic(args.out, seed=args.seed, frames=args.frames,
                                num_samples_per_class_per_subject=args.per_subject or 20)
    print(f"written: {out} ({time.time() - started:.1f} s); `skelssl info {out}` shows what it holds")
    return 0


def add_prepare_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `prepare` and its sub-commands to the skelssl command line."""
    prepare = subparsers.add_parser("prepare", help="turn raw dataset files into a prepared dataset",
                                    description="Write a prepared dataset (data.npy (N,C,T,V,M) + meta.json) "
                                                "from raw files; see docs/data.md.")
    sub = prepare.add_subparsers(dest="prepare_command", metavar="DATASET", required=True)
    _add_ntu(sub, "ntu60")
    _add_ntu(sub, "ntu120")

    p = sub.add_parser("synthetic", help="the built-in synthetic dataset (NTU-25 layout, ground-truth actionlets)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--per-subject", type=int, default=None,
                   help="sequences per class per subject (10 subjects; default 20), with --untrimmed: untrimmed "
                        "sequences per subject (default 4)")
    p.add_argument("--untrimmed", action="store_true",
                   help="untrimmed sequences for segmentation: several actions in a row, idle between, per-frame "
                        "labels (--frames: the trimmed clip length the actions' speed follows)")
    p.set_defaults(func=_run_synthetic)

    p = sub.add_parser("nw-ucla", help="Northwestern-UCLA Multiview Action3D (JSON per sequence)")
    p.add_argument("--raw", required=True, help="the all_sqe directory of JSON files")
    p.add_argument("--frames", type=int, default=50, help="resample every sequence to this many frames")
    _common(p)
    p.set_defaults(func=_run_ucla)

    p = sub.add_parser("msr-action3d", help="MSR Action3D (aXX_sYY_eZZ_skeleton3D.txt files)")
    p.add_argument("--raw", required=True, help="directory of the *_skeleton3D.txt files")
    p.add_argument("--file-list", help="files to use (default: RAW/files_used_in_cvpr12_paper.txt if present)")
    p.add_argument("--frames", type=int, default=50, help="resample every sequence to this many frames")
    _common(p)
    p.set_defaults(func=_run_msr)

    p = sub.add_parser("utkinect", help="UTKinect-Action3D (joints_sXX_eYY.txt + actionLabel.txt)")
    p.add_argument("--raw", required=True, help="the dataset's joints folder (actionLabel.txt and the joints files)")
    p.add_argument("--frames", type=int, default=50, help="resample every action instance to this many frames")
    _common(p)
    p.set_defaults(func=_run_utkinect)

    p = sub.add_parser("sbu", help="SBU Kinect Interaction (sAAsBB/CC/DDD/skeleton_pos.txt, two people)")
    p.add_argument("--raw", required=True, help="the folder holding the sAAsBB set folders")
    p.add_argument("--frames", type=int, default=50, help="resample every sequence to this many frames")
    _common(p)
    p.set_defaults(func=_run_sbu)

    _add_custom(sub)

    p = sub.add_parser("pkummd", help="PKU-MMD part I or II: trimmed instances + untrimmed sequences",
                       description="The trimmed instances go through the NTU recipe, as the authors prepare "
                                   "PKU-MMD (their NTU pipeline). " + PRESETS_HELP + " raw: the camera "
                                   "coordinates, zero-padded to the longest instance (or resampled to "
                                   "--frames). The untrimmed sequences keep the camera coordinates.")
    p.add_argument("--raw", required=True, help="directory of skeleton .txt files (150 floats a line)")
    p.add_argument("--labels", required=True, help="directory of label .txt files (class,start,end,confidence)")
    p.add_argument("--part", type=int, choices=[1, 2], required=True)
    p.add_argument("--splits", help="directory with the official split lists (see docs/data.md)")
    _add_recipe_options(p, ["aimclr", "agcn", "raw"])
    _common(p)
    p.set_defaults(func=_run_pkummd)

    p = sub.add_parser("convert", help="read another project's preprocessed files")
    p.add_argument("--format", required=True, choices=["aimclr", "ctrgcn", "pyskl"])
    p.add_argument("--input", required=True, help="aimclr: train_position.npy; ctrgcn: the .npz; pyskl: "
                                                  "the annotation .pkl")
    p.add_argument("--labels", help="aimclr: the train label .pkl")
    p.add_argument("--test-input", help="aimclr: val_position.npy (optional)")
    p.add_argument("--test-labels", help="aimclr: the val label .pkl")
    p.add_argument("--layout", help="skeleton layout name or YAML (default ntu25)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow reading pickle files (pickle runs code: only for files you trust)")
    _common(p)
    p.set_defaults(func=_run_convert)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m skelssl.data.prepare_cli ...`), used by tests."""
    parser = argparse.ArgumentParser(prog="skelssl")
    add_prepare_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"error: {err}")
        return 2


def report_json(report) -> str:
    return json.dumps({"samples": report.samples, "splits": report.splits, "skipped": report.skipped})


if __name__ == "__main__":
    raise SystemExit(main())
