"""Reading a YAML file a user wrote, with one error that names the file, the line and the column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from skelssl.errors import UserError

__all__ = ["load_yaml"]


def load_yaml(path: str | Path, what: str = "YAML file", error: type[UserError] = UserError) -> Any:
    """The plain contents (dicts, lists, values; interpolations left as written) of a YAML file. A syntax error,
    a duplicate key, an unreadable or binary file raises `error`: "FILE:LINE:COLUMN: not a readable WHAT
    (the parser's problem)"."""
    try:
        return OmegaConf.to_container(OmegaConf.load(str(path)), resolve=False)
    except Exception as err:  # noqa: BLE001 - yaml's errors, OmegaConf's, OSError, UnicodeDecodeError
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or (str(err).splitlines() or [type(err).__name__])[0]
        raise error(f"{where}: not a readable {what} ({problem})") from None
