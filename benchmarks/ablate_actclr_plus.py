"""ActCLR+'s ablations, one command each, printed in the paper's shape: Table IX (Intra-SD, Inter-SD, SAM³) and
Table XI (T_act, T_non, adversarial noise, skeleton mask), KNN and linear on the frozen encoder.

Every row pretrains ActCLR+ from its shipped config with the budget's overrides and its switches. The
warm-up stage (MoCo v2, the same for every row: it does not depend on the switches) is trained once, as a
SkeletonCLR run with ActCLR+'s optimiser, and every row starts from it (`model.init_from`, in-run warm-up
off); `--warmup 0` starts every row from scratch. The step decay keeps its place (5/6 of the budget).
KNN is the cosine 1-NN (and the weighted k = 20 vote in results.json); linear is the final top-1 of the
default probe. Writes OUT/results.json and OUT/table_<ix|xi>.txt.

    python benchmarks/ablate_actclr_plus.py --table ix --dataset synthetic-xsub --root data/synthetic32 \\
        --epochs 10 --warmup 5 --batch 64 --out runs/ablate-ix
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

# (row label, switches); the column order of each table
TABLES: dict[str, tuple[list[str], list[dict[str, bool]]]] = {
    "ix": (["intra_sd", "inter_sd", "sam"], [
        {"intra_sd": True, "inter_sd": False, "sam": False},
        {"intra_sd": True, "inter_sd": True, "sam": False},
        {"intra_sd": True, "inter_sd": False, "sam": True},
        {"intra_sd": True, "inter_sd": True, "sam": True},
    ]),
    "xi": (["t_act", "t_non", "adversarial", "skeleton_mask"], [
        {"t_act": False, "t_non": False, "adversarial": False, "skeleton_mask": False},
        {"t_act": True, "t_non": False, "adversarial": False, "skeleton_mask": False},
        {"t_act": True, "t_non": True, "adversarial": False, "skeleton_mask": False},
        {"t_act": True, "t_non": True, "adversarial": True, "skeleton_mask": False},
        {"t_act": True, "t_non": True, "adversarial": False, "skeleton_mask": True},
        {"t_act": True, "t_non": True, "adversarial": True, "skeleton_mask": True},
    ]),
}
HEADERS = {"intra_sd": "Intra-SD", "inter_sd": "Inter-SD", "sam": "SAM³", "t_act": "T_act", "t_non": "T_non",
           "adversarial": "Adversarial Noise", "skeleton_mask": "Skeleton Mask"}
TITLES = {"ix": "Table IX: module combinations", "xi": "Table XI: data transformation combinations"}


def row_name(switches: dict[str, bool]) -> str:
    on = [key for key, value in switches.items() if value]
    return "+".join(on) if on else "none"


def format_ablation(table: str, rows: list[tuple[dict[str, bool], float, float]], caption: str = "") -> str:
    """The table in the paper's shape: one column per module (✓ when on), then KNN and Linear (%)."""
    columns = TABLES[table][0]
    widths = [max(len(HEADERS[c]), 3) for c in columns]
    header = "  ".join(HEADERS[c].center(w) for c, w in zip(columns, widths)) + "     KNN  Linear"
    lines = [TITLES[table] + (f" ({caption})" if caption else ""), header, "-" * len(header)]
    for switches, knn, linear in rows:
        marks = "  ".join(("✓" if switches[c] else "").center(w) for c, w in zip(columns, widths))
        lines.append(f"{marks}  {knn:6.1f}  {linear:6.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", choices=sorted(TABLES), required=True)
    parser.add_argument("--dataset", required=True, help="a shipped dataset-split config, e.g. synthetic-xsub")
    parser.add_argument("--root", required=True, help="prepared dataset")
    parser.add_argument("--stream", default="joint")
    parser.add_argument("--epochs", type=int, required=True, help="ActCLR+ epochs of every row")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up epochs (default: half of --epochs)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--queue", type=int, default=1024)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="extra key=value for every row")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from skelssl.models.stgcn import keep_freed_memory_in_process

    keep_freed_memory_in_process()

    from skelssl.checkpoints import LAST_CHECKPOINT
    from skelssl.config import load_config
    from skelssl.evaluation import evaluate_checkpoints, pick_device, write_results
    from skelssl.train import pretrain

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device("auto")
    warmup = args.epochs // 2 if args.warmup is None else args.warmup
    common = [f"data.root={args.root}", f"trainer.batch_size={args.batch}", f"method.queue_size={args.queue}",
              f"trainer.seed={args.seed}", "trainer.progress_bar=false", "trainer.checkpoint_every_n_epochs=1000",
              f"data.stream={args.stream}", "optim.name=adam", "optim.lr=1e-3", "optim.weight_decay=1e-4"]
    start_from = []
    if warmup > 0:  # the shared warm-up: MoCo v2 (SkeletonCLR's loss) with ActCLR+'s optimiser
        warm_dir = out / "warmup"
        if not (warm_dir / LAST_CHECKPOINT).is_file():
            cfg = load_config(None, common + [f"run_dir={warm_dir}", f"trainer.epochs={warmup}",
                                              f"optim.milestones=[{warmup + 1}]"],
                              dataset=args.dataset, method="skeletonclr")
            pretrain(cfg, command=["ablate_actclr_plus.py", "warmup"])
        start_from = [f"model.init_from={warm_dir / LAST_CHECKPOINT}"]
    rows, records = [], []
    for switches in TABLES[args.table][1]:
        name = row_name(switches)
        run_dir = out / name
        budget = common + start_from + [
            f"run_dir={run_dir}", f"trainer.epochs={args.epochs}", "method.warmup.epochs=0",
            f"optim.milestones=[{max(1, round(args.epochs * 5 / 6))}]",
            *[f"method.{key}={str(value).lower()}" for key, value in switches.items()], *args.overrides]
        cfg = load_config(None, budget, dataset=args.dataset, method="actclr_plus")
        started = time.time()
        if not (run_dir / LAST_CHECKPOINT).is_file():
            pretrain(cfg, command=["ablate_actclr_plus.py", name])
        row_records = evaluate_checkpoints([run_dir / LAST_CHECKPOINT], ("knn", "linear"), device=device)
        for record in row_records:
            record.model = f"actclr_plus[{name}]"
        records += row_records
        value = {(r.protocol, r.metric): r.value for r in row_records}
        rows.append((switches, value[("knn", "1nn_cosine")], value[("linear", "top1")]))
        print(f"[ablate] {name}: {time.time() - started:.0f} s, KNN {rows[-1][1]:.1f}, linear {rows[-1][2]:.1f}",
              flush=True)
        write_results(out, records)
    caption = f"{args.dataset} {args.stream}, {warmup} warm-up + {args.epochs} epochs, batch {args.batch}"
    text = format_ablation(args.table, rows, caption)
    (out / f"table_{args.table}.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    from skelssl.console import run_script

    run_script(main)  # skelssl's UserError as one line, not a traceback
