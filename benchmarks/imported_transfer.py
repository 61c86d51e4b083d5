"""The authors' NTU-60 encoders (ActCLR, AimCLR; ../shared/data/official_checkpoints) on small real datasets:
frozen (linear probe, 1-NN) and finetuned, beside the random-init encoder with the data's BatchNorm statistics and
the no-learning 1-NN on the prepared coordinates.

    python benchmarks/imported_transfer.py --shared ../shared/data --work /tmp/imported [--finetune-epochs 20]

NW-UCLA (cross-view) and MSR Action3D (cross-subject) are Kinect-20 recordings: they reach the NTU-25 encoders
through the joint map (skelssl.skeleton.joint_maps), one person, zero-padded to the NTU model's two. Both are
prepared by skelssl's own readers (centred, resampled to 50 frames), which is not the authors' NTU recipe: the
evaluation warns so, and the figures measure what the NTU weights give on such data. Prints one table; writes
WORK/results.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from skelssl.cli import main as skelssl
from skelssl.console import run_script
from skelssl.evaluation import (evaluate_backbone, evaluate_checkpoints, format_table, load_backbone,
                                prepare_random_init, write_results)
from skelssl.evaluation.baseline import coordinate_1nn
from skelssl.evaluation.results import ResultRecord
from skelssl.interop import import_checkpoint

DATASETS = {  # name: (prepare command, raw folder under --shared, split)
    "nw-ucla": (["prepare", "nw-ucla", "--frames", "50"], "nw_ucla/all_sqe", "xview"),
    "msr": (["prepare", "msr-action3d", "--frames", "50"], "msraction3d/real_world_coordinates", "xsub"),
}
MODELS = ("actclr", "aimclr")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--linear-epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name in MODELS:
        runs[name] = work / f"{name}_ntu60"
        if not (runs[name] / "imported.json").is_file():
            import_checkpoint(args.shared / "official_checkpoints" / f"{name}_ntu60_xview_joint_linear.pt", runs[name],
                              name=f"{name}-ntu60")
    records: list[ResultRecord] = []
    milestone = max(1, int(0.8 * args.finetune_epochs))
    for dataset in args.datasets:
        command, raw, split = DATASETS[dataset]
        root = work / dataset
        if not (root / "meta.json").is_file():
            assert skelssl([*command, "--raw", str(args.shared / raw), "--out", str(root), "--no-progress"]) == 0
        found = coordinate_1nn(root).get(split)
        if found:
            records.append(ResultRecord.from_fraction(dataset, split, "raw_coordinates", "joint", "knn", "1nn_cosine",
                                                      found["accuracy"]))
        overrides = {"data": {"root": str(root), "split": split},
                     "trainer": {"seed": args.seed},
                     "eval": {"linear": {"epochs": args.linear_epochs},
                              "finetune": {"epochs": args.finetune_epochs, "milestones": [milestone]}}}
        # the random-init encoder of the same architecture, BatchNorm statistics of the train part: frozen only
        baseline, cfg = load_backbone(runs[MODELS[0]], overrides, load_weights=False)
        prepare_random_init(baseline, cfg, torch.device("cpu"))
        found = evaluate_backbone(baseline, cfg, ["knn", "linear"], "cpu")
        for i, name in enumerate(MODELS):
            started = time.perf_counter()
            found += evaluate_checkpoints([runs[name]], ["knn", "linear", "finetune"] + (["supervised"] if i == 0 else []),
                                          overrides, out_dir=work / f"{dataset}-{name}", progress=False)
            for record in found:
                record.dataset = dataset
            records, found = records + found, []
            print(f"[imported] {name} on {dataset}: {time.perf_counter() - started:.0f} s", flush=True)
            write_results(work, records)
    print(format_table(records))
    return 0


if __name__ == "__main__":
    run_script(main)
