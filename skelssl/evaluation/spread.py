"""Results over several pretraining seeds: every cell as mean ± sd, and which differences exceed the spread.

One pretraining run is one draw: the same method and budget with another seed moves a probe by several points
on small data, so a single-run difference of a few points says nothing. `summarize_seeds` groups records that
differ only by seed (same dataset, split, model, stream, protocol and metric); `spread_table` prints them and
marks each method's cell against a reference row (by default the random-init encoder of the same
architecture): `+` above it by more than the two spreads together (|Δ mean| > sd₁ + sd₂), `−` below it by
more, `=` within. With one seed the spread is 0 and any difference counts: the table says how many seeds each
cell has.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from skelssl.errors import UserError
from skelssl.evaluation.report import markdown_table
from skelssl.evaluation.results import ResultRecord, read_results

__all__ = ["SeedSummary", "summarize_seeds", "differs", "spread_table", "seeds_report"]


@dataclass(frozen=True)
class SeedSummary:
    """One cell over seeds: mean and sample standard deviation (ddof 1; 0 for one seed), in percent."""

    dataset: str
    split: str
    model: str
    stream: str
    protocol: str
    metric: str
    mean: float
    sd: float
    seeds: int

    @property
    def column(self) -> str:
        return f"{self.protocol} {self.metric}"


def summarize_seeds(records: Iterable[ResultRecord]) -> list[SeedSummary]:
    """Records of several seeds, grouped by everything but the seed, in first-seen order."""
    groups: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for record in records:
        groups[record.key].append(float(record.value))
    out = []
    for key, values in groups.items():
        array = np.asarray(values, dtype=np.float64)
        sd = float(array.std(ddof=1)) if len(array) > 1 else 0.0
        out.append(SeedSummary(*key, mean=float(array.mean()), sd=sd, seeds=len(array)))
    return out


def differs(a: SeedSummary, b: SeedSummary) -> int:
    """+1 / −1 when a's mean is above / below b's by more than their spreads together, else 0."""
    gap = a.mean - b.mean
    if abs(gap) <= a.sd + b.sd:
        return 0
    return 1 if gap > 0 else -1


MARKS = {1: "+", -1: "−", 0: "="}


def spread_table(summaries: Sequence[SeedSummary], columns: Sequence[str] | None = None,
                 reference: Callable[[str], str | None] | None = None) -> str:
    """A markdown table: one row per model, one column per "protocol metric" (default: all, first-seen order),
    cells "mean ± sd (n)"; with `reference(model) -> model`, a mark against that row's cell in the same column
    (module docstring). The legend follows the table."""
    columns = list(columns or dict.fromkeys(s.column for s in summaries))
    cells = {(s.model, s.column): s for s in summaries}
    models = list(dict.fromkeys(s.model for s in summaries))
    rows = []
    for model in models:
        row = [model]
        other = reference(model) if reference else None
        for column in columns:
            cell = cells.get((model, column))
            if cell is None:
                row.append("")
                continue
            text = f"{cell.mean:.1f} ± {cell.sd:.1f} ({cell.seeds})"
            base = cells.get((other, column)) if other and other != model else None
            row.append(text + (f" {MARKS[differs(cell, base)]}" if base else ""))
        rows.append(row)
    table = markdown_table(["model", *columns], rows, 1)
    if reference:
        table += ("\n\nmean ± sd over pretraining seeds (n); + / − : above / below the reference row (the "
                  "random-init encoder of the same architecture) by more than the two spreads together, "
                  "= : within them")
    return table


def seeds_report(runs: Iterable[str | Path], metrics: Sequence[str] | None = None,
                 protocols: Sequence[str] | None = None) -> str:
    """`skelssl report --seeds RUN...`: the runs' records (one run per pretraining seed; the same method name in
    each) as one spread_table, each model marked against the `random_init` rows when the runs hold them
    (`evaluate --with-random-init`). The runs must be of one dataset, split and stream."""
    records = [r for run in runs for r in read_results(run)
               if (not metrics or r.metric in metrics) and (not protocols or r.protocol in protocols)]
    if not records:
        return "(no results)"
    settings = sorted({(r.dataset, r.split, r.stream) for r in records})
    if len(settings) > 1:
        raise UserError("report --seeds pools runs of one dataset, split and stream; these hold "
                        + ", ".join(" ".join(s) for s in settings))
    summaries = summarize_seeds(records)
    has_random = any(s.model == "random_init" for s in summaries)
    return spread_table(summaries, reference=(lambda model: "random_init") if has_random else None)
