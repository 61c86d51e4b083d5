"""Benchmark `prepare ntu60` on ../shared/data/ntu_raw_samples: files per second and peak memory.

    python benchmarks/bench_prepare.py [--workers N] [--repeat K]

The 60 sample files are listed K times (symlinks) so the pool has work to share.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from skelssl.data.ntu_prepare import prepare_ntu
from skelssl.data.ntu_preprocess import PRESETS

RAW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ntu_raw_samples"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    files = sorted(RAW.glob("*.skeleton"))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        raw.mkdir()
        for k in range(args.repeat):  # distinct names: replication id k+1
            for f in files:
                (raw / f.name.replace("R001", f"R{k + 1:03d}")).symlink_to(f.resolve())
        n = len(files) * args.repeat
        print(f"{n} files, workers={args.workers or os.cpu_count()}")
        for preset in ("aimclr", "agcn"):
            start = time.perf_counter()
            prepare_ntu(raw, Path(tmp) / preset, "ntu60", PRESETS[preset], workers=args.workers,
                        progress=False)
            seconds = time.perf_counter() - start
            print(f"{preset:7s} {n / seconds:7.1f} files/s  ({seconds:.2f} s)")
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak RSS: parent {own:.0f} MB, largest worker {child:.0f} MB")


if __name__ == "__main__":
    from skelssl.console import run_script

    run_script(main)  # skelssl's UserError as one line, not a traceback
