"""`skelssl report RUN...`: the results of several runs as one markdown table, ready to paste.

Default (pivot): one row per method and stream, one column per dataset, split, protocol and metric — the
shape of the papers' tables. `long=True`: one row per record (method, dataset, split, stream, protocol,
metric, value). When two runs give different values for the same cell (two runs of one method and stream),
a `run` column (the run directory's name) tells the rows apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from skelssl.evaluation.results import ResultRecord, read_results

__all__ = ["collect_results", "markdown_table", "markdown_report"]

STREAM_ORDER = {"joint": 0, "motion": 1, "bone": 2, "fused": 3}


def collect_results(runs: Iterable[str | Path], metrics: Sequence[str] | None = None,
                    protocols: Sequence[str] | None = None) -> list[tuple[str, ResultRecord]]:
    """(run name, record) for every record of every run's results.json, filtered by metric and protocol;
    a record repeated with the same value in several runs (a fused row written to each stream's run) once."""
    found: list[tuple[str, ResultRecord]] = []
    seen: set[tuple] = set()
    for run in runs:
        for record in read_results(run):
            if metrics and record.metric not in metrics or protocols and record.protocol not in protocols:
                continue
            if (record.key, record.value) in seen:
                continue
            seen.add((record.key, record.value))
            found.append((Path(run).resolve().name if Path(run).is_dir() else Path(run).resolve().parent.name,
                          record))
    return found


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int) -> str:
    """A markdown table; columns from `right_from` on are right-aligned (numbers)."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).rjust(w) if i >= right_from else str(c).ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if i >= right_from else "-" * w
                             for i, w in enumerate(widths)) + " |"
    return "\n".join([line(header), rule] + [line(row) for row in rows])


def markdown_report(runs: Iterable[str | Path], metrics: Sequence[str] | None = None,
                    protocols: Sequence[str] | None = None, long: bool = False) -> str:
    """The markdown table of the module docstring (values in percent, 2 decimals)."""
    found = collect_results(runs, metrics, protocols)
    if not found:
        return "(no results)"
    if long:
        rows = [[r.model, r.dataset, r.split, r.stream, r.protocol, r.metric, f"{r.value:.2f}"] for _, r in found]
        return markdown_table(["method", "dataset", "split", "stream", "protocol", "metric", "value (%)"], rows, 6)
    columns: list[tuple[str, str, str, str]] = []
    cells: dict[tuple[str, str], dict[tuple, dict[str, float]]] = {}
    for run, r in found:
        column = (r.dataset, r.split, r.protocol, r.metric)
        if column not in columns:
            columns.append(column)
        cells.setdefault((r.model, r.stream), {}).setdefault(column, {})[run] = r.value
    by_run = any(len(set(values.values())) > 1 for row in cells.values() for values in row.values())
    rows = []
    for (model, stream), row in cells.items():
        runs_here = sorted({run for values in row.values() for run in values}) if by_run else [""]
        for run in runs_here:
            values = [row.get(column, {}) for column in columns]
            shown = [f"{v[run]:.2f}" if run in v else (f"{next(iter(v.values())):.2f}" if v and not by_run else "")
                     for v in values]
            rows.append(([run] if by_run else []) + [model, stream] + shown)
    order = {model: i for i, model in enumerate(dict.fromkeys(model for model, _ in cells))}
    first = 1 if by_run else 0
    rows.sort(key=lambda row: (order[row[first]], STREAM_ORDER.get(row[first + 1], 9), row[0]))
    header = (["run"] if by_run else []) + ["method", "stream"] + [" ".join(c) for c in columns]
    return markdown_table(header, rows, first + 2)
