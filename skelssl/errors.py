"""Errors that the command line reports as one plain line (no traceback): the user can fix them."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class UserError(Exception):
    """Something the user asked for or gave is wrong; the message says what and what to do."""


class NonFiniteError(UserError):
    """Training produced a non-finite loss or gradient; the message names epoch, step and the loss terms."""


class BadInputError(UserError):
    """A raw input file is malformed; names the file, the 1-based line (0: the whole file) and the problem."""

    def __init__(self, path: str | Path, line: int, problem: str):
        self.path = str(path)
        self.line = int(line)
        self.problem = problem
        where = f"{self.path}:{self.line}" if self.line > 0 else self.path
        super().__init__(f"{where}: {problem} (fix or remove the file, or pass --skip-bad to skip bad files)")

    def to_json(self) -> dict[str, Any]:
        return {"file": self.path, "line": self.line, "problem": self.problem}
