"""Print (and optionally save) the outcome counts of the reader fuzz tests at the end of the run."""

from __future__ import annotations

import json
import os

from tests.fuzz.harness import OUTCOMES


def pytest_terminal_summary(terminalreporter) -> None:
    if not OUTCOMES:
        return
    terminalreporter.section("reader fuzzing: inputs tried and outcomes")
    for reader in sorted(OUTCOMES):
        counts = OUTCOMES[reader]
        detail = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
        terminalreporter.write_line(f"{reader:<34} {sum(counts.values()):>5}  ({detail})")
    path = os.environ.get("SKELSSL_FUZZ_REPORT")
    if path:
        with open(path, "w") as handle:
            json.dump({reader: dict(counts) for reader, counts in OUTCOMES.items()}, handle, indent=1)
