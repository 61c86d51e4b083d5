"""`skelssl import`, `skelssl export` and `skelssl predict`: weights in from other projects, out as safetensors,
and a classifier's labels for new sequences."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from skelssl.checkpoints import checkpoint_file, read_checkpoint
from skelssl.defaults import parse_overrides
from skelssl.evaluation import pick_device, print_table
from skelssl.evaluation.loading import backbone_from_checkpoint, checkpoint_config
from skelssl.evaluation.predict import predict_dataset, write_predictions
from skelssl.evaluation.runner import warn_on_normalisation
from skelssl.interop import export_run, import_checkpoint
from skelssl.interop.runs import IMPORTED_FILE
from skelssl.outputs import check_output_dir

__all__ = ["import_weights", "export", "predict"]


def import_weights(args: argparse.Namespace) -> int:
    runs = import_checkpoint(args.source, args.out, fmt=args.format, head=args.head, name=args.name,
                             trained_on=args.trained_on)
    for run in runs:
        info = json.loads((run / IMPORTED_FILE).read_text())
        head = info.get("head")
        kinds: dict[str, int] = {}
        for target in info["key_map"].values():
            part = target.split(".", 1)[0]
            kinds[part] = kinds.get(part, 0) + 1
        placed = ", ".join(f"{count} {part}" for part, count in sorted(kinds.items()))
        print(f"imported {info['family']} {info['role']} weights ({info['stream']} stream) into {run}")
        print(f"  source: {info['source']} (sha256 {info['sha256'][:16]}...)")
        print(f"  every one of its {len(info['key_map'])} tensors placed: {placed}")
        if head:
            print(f"  classifier: {head['num_classes']} classes")
        expects = info.get("expects")
        if expects:
            recipe = ", ".join(f"{k}={v}" for k, v in expects["recipe"].items())
            print(f"  expects data prepared with the '{expects['preset']}' preset ({recipe})")
        for note in info.get("notes", []):
            print(f"  {note}")
    return 0


def export(args: argparse.Namespace) -> int:
    path = export_run(args.run, args.out)
    print(f"exported {checkpoint_file(args.run)} to {path} (safetensors: tensors and JSON metadata, no pickle)")
    return 0


def predict(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.overrides)
    out = check_output_dir(args.out)
    ckpt = read_checkpoint(args.checkpoint)
    cfg = checkpoint_config(ckpt, args.checkpoint, overrides)
    backbone = backbone_from_checkpoint(ckpt, cfg, args.checkpoint)
    warn_on_normalisation(backbone, cfg.data.root)
    result = predict_dataset(backbone, cfg, pick_device(str(cfg.trainer.accelerator)), progress=True)
    records, written = write_predictions(result, out, backbone.name, backbone.stream)
    if result.note:
        print(result.note)
    for path in written:
        print(f"wrote {Path(path)}")
    if records:
        print_table(records)
    return 0
