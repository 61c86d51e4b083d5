"""Result records: RUN_DIR/results.json plus a printed table.

Unit: `value` is an accuracy in PERCENT (0-100), rounded to 2 decimals — what papers print. The protocol
functions return fractions in [0, 1]; convert with `to_percent` (or `ResultRecord.from_fraction`).
results.json is a JSON list of records; writing merges with what is already there, a record with the same
(dataset, split, model, stream, protocol, metric) replacing the old one in place, and is atomic.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable

from skelssl.errors import UserError
from skelssl.outputs import check_output_dir

RESULTS_FILE = "results.json"
COLUMNS = ("dataset", "split", "model", "stream", "protocol", "metric", "value")


def to_percent(fraction: float) -> float:
    """An accuracy fraction in [0, 1] as percent rounded to 2 decimals."""
    return round(100.0 * float(fraction), 2)


@dataclass
class ResultRecord:
    dataset: str      # e.g. "ntu60"
    split: str        # e.g. "xsub"
    model: str        # method or run name, e.g. "aimclr"
    stream: str       # "joint" | "motion" | "bone" | "fused" ...
    protocol: str     # "knn" | "linear" | "semi10" | "finetune" ...
    metric: str       # e.g. "top1", "best_top1", "weighted_k20"
    value: float      # percent, 2 decimals

    def __post_init__(self) -> None:
        self.value = round(float(self.value), 2)

    @classmethod
    def from_fraction(cls, dataset: str, split: str, model: str, stream: str, protocol: str, metric: str,
                      fraction: float) -> "ResultRecord":
        return cls(dataset, split, model, stream, protocol, metric, to_percent(fraction))

    @property
    def key(self) -> tuple[str, ...]:
        return (self.dataset, self.split, self.model, self.stream, self.protocol, self.metric)


def _results_path(path: str | Path) -> Path:
    path = Path(path)
    return path / RESULTS_FILE if path.is_dir() else path


def read_results(path: str | Path) -> list[ResultRecord]:
    """Records from a results.json file (or a run directory containing one)."""
    file = _results_path(path)
    if not file.is_file():
        raise UserError(f"{file}: no results file; run `skelssl evaluate` for this run first")
    try:
        payload = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{file}: not valid JSON ({error}); delete it or restore it from a backup") from None
    names = {f.name for f in fields(ResultRecord)}
    if not isinstance(payload, list):
        raise UserError(f"{file}: expected a JSON list of result records, found {type(payload).__name__}")
    records = []
    for position, item in enumerate(payload):
        if not isinstance(item, dict) or not names <= item.keys():
            missing = sorted(names - item.keys()) if isinstance(item, dict) else sorted(names)
            raise UserError(f"{file}: record {position} lacks {', '.join(missing)}; fix or delete that record")
        records.append(ResultRecord(**{name: item[name] for name in names}))
    return records


def write_results(run_dir: str | Path, records: Iterable[ResultRecord]) -> Path:
    """Merge `records` into RUN_DIR/results.json (atomically) and return its path."""
    records = list(records)
    bad = next((record for record in records if not math.isfinite(record.value)), None)
    if bad is not None:  # JSON has no NaN: results.json stays valid JSON, and a NaN accuracy is a bug to report
        raise UserError(f"the result {'/'.join(bad.key)} is {bad.value}, not a number; nothing was written to "
                        f"{Path(run_dir) / RESULTS_FILE}")
    run_dir = check_output_dir(run_dir)
    file = run_dir / RESULTS_FILE
    merged = {record.key: record for record in (read_results(file) if file.exists() else [])}
    for record in records:
        merged[record.key] = record  # a dict keeps the first position of a key: replaced in place
    handle, tmp_name = tempfile.mkstemp(prefix=RESULTS_FILE + ".", suffix=".tmp", dir=run_dir)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump([asdict(record) for record in merged.values()], stream, indent=1, allow_nan=False)
        os.replace(tmp_name, file)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return file


def format_table(records: Iterable[ResultRecord]) -> str:
    """An aligned text table, one row per record; values in percent with 2 decimals."""
    rows = [[*record.key, f"{record.value:.2f}"] for record in records]
    if not rows:
        return "(no results)"
    header = list(COLUMNS[:-1]) + ["value (%)"]
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        text = [str(c).ljust(w) for c, w in zip(cells[:-1], widths[:-1])] + [cells[-1].rjust(widths[-1])]
        return "  ".join(text)

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule] + [line(row) for row in rows])


def print_table(records: Iterable[ResultRecord]) -> None:
    print(format_table(records))
