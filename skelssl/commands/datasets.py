"""`skelssl info`: what a prepared dataset holds (numpy only: no torch, no Lightning)."""

from __future__ import annotations

import argparse
import json

from skelssl.data.normalize import describe_steps
from skelssl.data.prepared import summarize
from skelssl.evaluation.baseline import coordinate_1nn

__all__ = ["info"]


def info(args: argparse.Namespace) -> int:
    found = summarize(args.dataset)
    if args.json:
        print(json.dumps(found, indent=1))
        return 0
    print(f"{found['dataset']} at {found['path']}")
    print(f"  {found['samples']} samples, {found['classes']} classes, layout {found['layout']}, "
          f"(C, T, V, M) = ({found['channels']}, {found['frames']}, {found['joints']}, {found['persons']}), "
          f"valid frames {found['length_min']}-{found['length_max']} (mean {found['length_mean']:.1f})")
    values = found.get("values") or {}
    if values.get("nonfinite_samples"):
        print(f"  WARNING: {values['nonfinite_samples']} sample(s) hold NaN, infinite or unusably large values; "
              f"the first, '{values['first_nonfinite']}', {values['first_problem']}. Pretrain and evaluate refuse "
              "them: prepare the dataset again")
    elif values and not values.get("scanned"):
        print("  values not scanned for NaN (large dataset); pretrain and evaluate check each sample they read")
    for split, parts in found["splits"].items():
        counts = ", ".join(f"{part} {p['samples']}" for part, p in parts.items())
        print(f"  split {split}: {counts}")
    first = next(iter(found["splits"].values()), {})
    if first:
        print(f"  {'class':<28} " + " ".join(f"{part:>7}" for part in first))
        for name in found["class_names"]:
            print(f"  {name[:28]:<28} " + " ".join(f"{p['per_class'].get(name, 0):>7}" for p in first.values()))
    prov = found.get("provenance") or {}
    if prov:
        shown = {k: v for k, v in prov.items() if isinstance(v, (str, int, float)) and len(str(v)) < 120}
        print("  provenance: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    _print_normalisation(found)
    if args.baseline:
        results = coordinate_1nn(args.dataset)
        if not results:
            print("  baseline: no split has both a train and a test part")
        for split, result in results.items():
            print(f"  baseline (no learning, 1-NN cosine on the prepared coordinates), split {split}: "
                  f"{100 * result['accuracy']:.1f} % ({result['train']} train, {result['test']} test); "
                  "a learned encoder must beat it")
    return 0


def _print_normalisation(found: dict) -> None:
    """What `prepare custom` did to the coordinates, and what looks un-normalised (with the fix)."""
    if found["channel_names"] != ["x", "y", "z"]:
        print(f"  channels: {', '.join(found['channel_names'])}")
    steps = found.get("normalization")
    if steps:
        print(f"  normalisation: {describe_steps(steps)}")
        for note in steps.get("notes", []):
            print(f"    {note}")
        for what, detail in (steps.get("not_applied") or {}).items():
            print(f"    {detail['count']} recording(s) {what} (samples {detail['samples'][:5]} ...)")
    for warning in found["warnings"]:
        print(f"  warning: {warning}")
