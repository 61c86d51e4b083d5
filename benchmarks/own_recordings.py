"""Own recordings through `skelssl prepare custom`: defaults vs normalisation off (a quality benchmark).

Recording sets, each written as a user would hand it over (one zero-padded .npz with labels and split):
- sensor: the synthetic generator's sequences as a depth sensor records them (skelssl/data/sensor_like.py:
  camera coordinates 2-4 m away, any view, lengths 40-120 frames, zero-padded; NTU-25 joints);
- video: the same scenes as a 2D pose estimator gives them (COCO-17, (x, y, score) in pixels);
- ucla, msr: NW-UCLA and MSR Action3D read from their raw files and zero-padded to the longest sequence,
  as a user with those arrays would have them; their own preparers (`skelssl prepare nw-ucla` /
  `msr-action3d`) give the reference row "own".
For every variant: the no-learning 1-NN on the prepared coordinates and, with --epochs, SkeletonCLR
pretrained on it (KNN, linear probe, the collapse monitor's last projector cosine). One table at the end;
OUT/summary.json holds every figure.

    python benchmarks/own_recordings.py --out runs/own-recordings --epochs 10 --batch 64 --queue 1024
    python benchmarks/own_recordings.py --out runs/own-quick --sets sensor video --per-subject 2 \\
        --epochs 1 --batch 16 --queue 64 model.stgcn.hidden_channels=8 model.stgcn.out_channels=32
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.compare_methods import last_collapse_figures  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPLIT = {"sensor": "default", "video": "default", "ucla": "default", "msr": "default"}


def padded(seqs: list[np.ndarray]) -> np.ndarray:
    data = np.zeros((len(seqs), max(len(s) for s in seqs)) + seqs[0].shape[1:], np.float32)
    for i, seq in enumerate(seqs):
        data[i, :len(seq)] = seq
    return data


def raw_ucla(shared: Path, out: Path) -> Path:
    from skelssl.data.ucla import read_ucla_json

    files = sorted((shared / "nw_ucla" / "all_sqe").glob("*.json"))
    read = [read_ucla_json(f) for f in files]
    views = [int(re.search(r"_v(\d+)", f.stem).group(1)) for f in files]
    np.savez(out, data=padded([r[0] for r in read]), labels=np.array([r[1] for r in read]),
             split=np.where(np.isin(views, (1, 2)), "train", "test"))
    return out


def raw_msr(shared: Path, out: Path) -> Path:
    from skelssl.data.msr import FILE_LIST, read_msr_file

    raw = shared / "msraction3d" / "real_world_coordinates"
    stems = [line.split()[0] for line in (raw / FILE_LIST).read_text().splitlines() if line.strip()]
    ids = [tuple(int(g) for g in re.search(r"a(\d+)_s(\d+)_e(\d+)", s).groups()) for s in stems]
    np.savez(out, data=padded([read_msr_file(raw / f"{s}_skeleton3D.txt") for s in stems]),
             labels=np.array([a - 1 for a, _, _ in ids]), split=np.where(np.array([s for _, s, _ in ids]) % 2 == 1,
                                                                       "train", "test"))
    return out


def prepare_set(name: str, args: argparse.Namespace, work: Path) -> dict[str, tuple[Path, str]]:
    """{variant: (prepared dataset, split)} of one recording set."""
    from skelssl.data.custom import prepare_custom
    from skelssl.data.normalize import OFF
    from skelssl.data.sensor_like import keypoints_2d, save_recordings, sensor_recordings

    layout, channels = {"sensor": ("ntu25", None), "video": ("coco17", "xy-score"),
                        "ucla": ("kinect20", None), "msr": ("kinect20", None)}[name]
    if name == "sensor":
        arrays = save_recordings(sensor_recordings(seed=args.seed, per_subject=args.per_subject), work / name)
    elif name == "video":
        arrays = save_recordings(keypoints_2d(seed=args.seed, per_subject=args.per_subject), work / name)
    elif name == "ucla":
        arrays = raw_ucla(args.shared, work / "ucla.npz")
    else:
        arrays = raw_msr(args.shared, work / "msr.npz")
    variants = {}
    for variant, options in (("defaults", None), ("off", OFF)):
        root = work / f"{name}-{variant}"
        report = prepare_custom(arrays, layout, root, channels=channels, normalization=options, name=name)
        for note in report.notes:
            print(f"[own] {name} {variant}: {note}", flush=True)
        variants[variant] = (root, "default")
    if name == "ucla":
        from skelssl.data.ucla import prepare_nw_ucla

        prepare_nw_ucla(args.shared / "nw_ucla" / "all_sqe", work / "ucla-own", progress=False, workers=1)
        variants["own"] = (work / "ucla-own", "xview")
    if name == "msr":
        from skelssl.data.msr import prepare_msr_action3d

        prepare_msr_action3d(args.shared / "msraction3d" / "real_world_coordinates", work / "msr-own",
                             progress=False, workers=1)
        variants["own"] = (work / "msr-own", "xsub")
    return variants


def pretrain_and_evaluate(root: Path, split: str, run_dir: Path, args: argparse.Namespace) -> dict:
    from skelssl.checkpoints import LAST_CHECKPOINT
    from skelssl.config import load_config
    from skelssl.evaluation import evaluate_checkpoints
    from skelssl.train import pretrain

    overrides = [f"data.root={root}", f"data.split={split}", f"data.dataset={root.name}", f"run_dir={run_dir}",
                 f"trainer.epochs={args.epochs}", f"trainer.batch_size={args.batch}",
                 f"method.queue_size={args.queue}", f"trainer.seed={args.seed}", "trainer.progress_bar=false",
                 f"optim.milestones=[{max(1, round(args.epochs * 5 / 6))}]", *args.overrides]
    started = time.time()
    if not (run_dir / LAST_CHECKPOINT).is_file():
        pretrain(load_config(None, overrides, method="skeletonclr"), command=["own_recordings.py"])
    seconds = time.time() - started
    records = evaluate_checkpoints([run_dir / LAST_CHECKPOINT], ("knn", "linear"))
    values = {f"{r.protocol}/{r.metric}": r.value for r in records}
    collapse = last_collapse_figures(run_dir)
    return {"skeletonclr_1nn": values.get("knn/1nn_cosine"), "linear": values.get("linear/top1"),
            "projector_cosine": collapse.get("projector_mean_cosine"), "pretrain_seconds": round(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--sets", nargs="+", default=["sensor", "video", "ucla", "msr"],
                        choices=["sensor", "video", "ucla", "msr"])
    parser.add_argument("--per-subject", type=int, default=20, help="sensor/video: recordings per class and "
                                                                    "subject (10 subjects, 12 classes)")
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder (ucla, msr)")
    parser.add_argument("--epochs", type=int, default=0, help="SkeletonCLR epochs (0: raw 1-NN only)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--queue", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="extra key=value for every pretraining run")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from skelssl.evaluation.baseline import coordinate_1nn

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict] = {}
    for name in args.sets:
        for variant, (root, split) in prepare_set(name, args, out).items():
            row = {"raw_1nn": round(100 * coordinate_1nn(root, [split])[split]["accuracy"], 2)}
            if args.epochs:
                row.update(pretrain_and_evaluate(root, split, out / "runs" / f"{name}-{variant}", args))
            summary[f"{name}/{variant}"] = row
            print(f"[own] {name} {variant}: {row}", flush=True)
            (out / "summary.json").write_text(json.dumps(summary, indent=1))

    def pct(value: float | None) -> str:  # every accuracy is in percent
        return "" if value is None else f"{value:.1f}"

    print(f"\n{'set':<8} {'variant':<9} {'raw 1-NN':>9} {'SkCLR 1-NN':>11} {'linear':>7} {'proj cos':>9}")
    for key, row in summary.items():
        name, variant = key.split("/")
        cos = "" if row.get("projector_cosine") is None else f"{row['projector_cosine']:.3f}"
        print(f"{name:<8} {variant:<9} {pct(row['raw_1nn']):>9} {pct(row.get('skeletonclr_1nn')):>11} "
              f"{pct(row.get('linear')):>7} {cos:>9}")


if __name__ == "__main__":
    from skelssl.console import run_script

    run_script(main)  # skelssl's UserError as one line, not a traceback
