"""Where skelssl writes: it replaces only what it wrote itself, and puts a result in place only when complete.

Every `--out` and `run_dir` goes through here. A folder skelssl is about to replace must be absent, empty, or
recognised as its own output by the caller's `owner_problem` (a prepared dataset by its meta.json format
marker, a run by its files); anything else - a folder holding other files, a file - is refused before any
work starts, with an error naming the path and what is in the way, and is left untouched. Results are built
in a hidden staging folder beside the target (`.NAME.<random>.partial`, never a name a user could have
chosen) and renamed into place; an earlier output is swapped with the new one in one atomic step on Linux
(renameat2), elsewhere renamed aside under another such name first, and deleted once the new one is in place.

A leaf module (it imports only skelssl.errors).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

from skelssl.errors import UserError

__all__ = ["OwnerProblem", "check_replaceable", "check_output_dir", "staging_dir", "move_into_place",
           "list_entries", "is_staging_name", "remove_entries", "check_report_file", "exchange",
           "REPORT_MARK"]

# (folder) -> None when the folder is skelssl's own output, else what shows it is not (e.g. "it holds notes.txt")
OwnerProblem = Callable[[Path], "str | None"]
STAGING_SUFFIXES = (".partial", ".replaced")


def is_staging_name(name: str) -> bool:
    """A hidden staging or set-aside folder of this module's (left behind only by a kill)."""
    return name.startswith(".") and name.endswith(STAGING_SUFFIXES)


def list_entries(folder: Path) -> list[str]:
    """The names in a folder, sorted, without this module's own hidden staging folders."""
    return sorted(name for name in os.listdir(folder) if not is_staging_name(name))


def _check_parents(path: Path, flag: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} '{path}': '{parent}' is a file, not a folder; nothing was written")
            return


def _shown(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_replaceable(path: str | Path, owner_problem: OwnerProblem, what: str, flag: str = "--out") -> None:
    """Refuse (UserError) to replace `path` unless it is absent, an empty folder, or a folder `owner_problem`
    recognises as a `what` skelssl wrote. Nothing is touched."""
    path = Path(path)
    _check_parents(path, flag)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        kind = "a link" if path.is_symlink() else "an existing file"
        raise UserError(f"{flag} '{path}' is {kind}; skelssl replaces only a {what} it wrote itself. Give a new "
                        "folder name; the file was left as it is and nothing was written")
    if not list_entries(path):
        return
    problem = owner_problem(path)
    if problem is not None:
        raise UserError(f"{flag} '{path}' is a folder that skelssl did not write ({problem}); skelssl replaces "
                        f"only a {what} it wrote itself. Give a new or empty folder; '{path}' was left as it is "
                        "and nothing was written")


def check_output_dir(path: str | Path, flag: str = "--out", create: bool = True) -> Path:
    """A folder that results are added to (evaluate, analyze: named files, merged results.json; nothing of
    the folder is deleted): refused if it is a file (or below one); created if absent, when `create`."""
    path = Path(path)
    _check_parents(path, flag)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} '{path}' is an existing file, not a folder; give a folder for the results (the "
                        "file was left as it is)")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


REPORT_MARK = "<!-- written by skelssl report -->"


def check_report_file(path: str | Path) -> Path:
    """A report's --out: a new file, or a report skelssl wrote before (its first line is REPORT_MARK)."""
    path = Path(path)
    _check_parents(path, "--out")
    if path.is_dir():
        raise UserError(f"--out '{path}' is a folder; give the report a file name, e.g. {path / 'report.md'}")
    if path.exists():
        try:
            first = path.read_text().split("\n", 1)[0]
        except (OSError, UnicodeDecodeError):
            first = ""
        if first.strip() != REPORT_MARK:
            raise UserError(f"--out '{path}' is a file that skelssl report did not write; skelssl replaces only its "
                            "own reports. Give a new file name (the file was left as it is)")
    return path


def staging_dir(target: str | Path) -> Path:
    """A new, empty, hidden folder beside `target` (same file system: the final rename cannot copy)."""
    target = Path(target)
    _check_parents(target, "--out")
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))


def move_into_place(staged: Path, target: str | Path, owner_problem: OwnerProblem, what: str) -> Path:
    """Rename the complete `staged` folder to `target`, replacing an earlier output of skelssl's there
    (checked again: the folder may have changed while the output was built)."""
    target = Path(target)
    check_replaceable(target, owner_problem, what)
    if not target.exists():
        os.replace(staged, target)
        return target
    if exchange(staged, target):  # one atomic step: no moment without an output at `target`
        shutil.rmtree(staged, ignore_errors=True)  # now the earlier output
        return target
    # elsewhere two renames; a crash between them leaves both folders, hidden, beside `target`
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".replaced", dir=target.parent))
    os.replace(target, aside)  # onto the empty folder mkdtemp made: POSIX rename replaces an empty directory
    try:
        os.replace(staged, target)
    except BaseException:
        os.replace(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return target


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system or the file system
    cannot, and nothing was changed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # glibc before 2.28, or another C library
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def remove_entries(folder: Path, names: list[str]) -> None:
    """Delete these entries of a folder (files or folders)."""
    for name in names:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
