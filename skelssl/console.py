"""What a user reads on the terminal: progress that suits where the output goes, warnings as one line, and the
libraries' own chatter (tips, adverts, deprecations) hidden unless asked for.

- `configure_output(verbose, progress)`: called once by the CLI (and `run_script` for the benchmarks).
- `Progress`: a progress line with an ETA. On a terminal it redraws itself in place (carriage return); when
  the output is a file or a pipe it prints a plain line at most every tenth of the work (and at the end), so a
  log holds a few readable lines instead of thousands of redraws.
- `LineProgressBar`: Lightning's progress for non-terminals: one line per epoch with the loss and an ETA.
- `run_script(main)`: a benchmark script's entry point: skelssl's UserError prints one line, not a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TextIO, TypeVar

from skelssl.errors import UserError

_PACKAGE_DIR = str(Path(__file__).resolve().parent)
_state = {"progress": True, "verbose": False}
_T = TypeVar("_T")

# Loggers whose INFO lines are Lightning's tips and adverts ("GPU available", "💡 Tip: ... litmodels", "weights_only
# was not set" when it writes a full checkpoint): shown only with --verbose.
CHATTY_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning")
LIGHTNING_PACKAGES = ("lightning", "lightning_fabric", "pytorch_lightning")


def progress_enabled() -> bool:
    """False after `--no-progress` (or configure_output(progress=False)): no bars, no per-epoch lines."""
    return _state["progress"]


def interactive(stream: TextIO | None = None) -> bool:
    """Whether `stream` (default stderr, where progress goes) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def format_duration(seconds: float) -> str:
    """`h:mm:ss` or `m:ss`, as a user reads an ETA."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _is_ours(filename: str) -> bool:
    try:
        return str(Path(filename).resolve()).startswith(_PACKAGE_DIR)
    except (OSError, ValueError):
        return False


def format_warning(message: Warning | str, category: type[Warning], filename: str) -> str:
    """One line: skelssl's own warnings as `skelssl: warning: ...`, others with the library they come from."""
    text = " ".join(str(message).split())
    if _is_ours(filename):
        return f"skelssl: warning: {text}"
    return f"warning ({category.__name__}, {Path(filename).name}): {text}"


def _hidden(category: type[Warning], filename: str) -> bool:
    """Library noise a user cannot act on: deprecations, Lightning's performance tips."""
    if _is_ours(filename):
        return False
    if issubclass(category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
        return True
    return any(part in LIGHTNING_PACKAGES for part in Path(filename).parts)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    if not _state["verbose"] and _hidden(category, filename):
        return
    stream = sys.stderr if file is None else file
    try:
        print(format_warning(message, category, filename), file=stream, flush=True)
    except (OSError, ValueError):  # a closed or broken stream: the warning is lost, not the run
        pass


def configure_output(verbose: bool = False, progress: bool = True) -> None:
    """Set how much the process prints: `verbose` shows the libraries' tips and deprecation warnings in their own
    format; `progress=False` turns every progress bar and per-epoch line off."""
    _state["verbose"], _state["progress"] = bool(verbose), bool(progress)
    try:  # Lightning sets its logger to INFO when it is imported: import it first so that our level stays
        import lightning.pytorch  # noqa: F401
    except ImportError:  # pragma: no cover - a dependency; without it there is nothing to quiet
        pass
    level = logging.INFO if verbose else logging.WARNING
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if verbose:
        warnings.showwarning = _ORIGINAL_SHOWWARNING
        warnings.simplefilter("default")
    else:
        warnings.showwarning = _show_warning
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


_ORIGINAL_SHOWWARNING = warnings.showwarning


class Progress:
    """Progress of `total` units of work with an ETA, on stderr.

    On a terminal: one line redrawn in place, at most five times a second. Elsewhere (a file, a pipe, CI): a
    plain line at each tenth of the work and at the end. Silent when disabled or after `--no-progress`.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "", enabled: bool = True,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = None if total is None else int(total)
        self.desc, self.unit = desc, unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(enabled) and progress_enabled()
        self.tty = interactive(self.stream)
        self.clock = clock
        self.done = 0
        self.started = clock()
        self._last_draw = -1.0
        self._next_tenth = 1
        self._closed = False

    def line(self, now: float | None = None) -> str:
        elapsed = (self.clock() if now is None else now) - self.started
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            text = f"{self.desc}: {self.done}/{self.total}{unit} ({100 * self.done / self.total:.0f} %)"
            if 0 < self.done < self.total:
                eta = elapsed * (self.total - self.done) / self.done
                return f"{text} {format_duration(elapsed)} elapsed, ETA {format_duration(eta)}"
            return f"{text} in {format_duration(elapsed)}"
        return f"{self.desc}: {self.done}{unit} in {format_duration(elapsed)}"

    def _write(self, text: str, end: str) -> None:
        try:
            self.stream.write(text + end)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False

    def update(self, count: int = 1) -> None:
        self.done += int(count)
        if not self.enabled:
            return
        if self.tty:
            now = self.clock()
            if now - self._last_draw >= 0.2 or (self.total and self.done >= self.total):
                self._last_draw = now
                self._write("\r" + self.line(now) + "\033[K", "")
        elif self.total and self._next_tenth < 10 and self.done * 10 >= self._next_tenth * self.total:
            # one line however many tenths this update crossed; the last tenth is the closing line
            self._next_tenth = min(10, self.done * 10 // self.total + 1)
            if self.done < self.total:
                self._write(self.line(), "\n")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._write(("\r" if self.tty else "") + self.line() + ("\033[K" if self.tty else ""), "\n")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def track(iterable: Iterable[_T], total: int | None = None, desc: str = "", unit: str = "",
          enabled: bool = True) -> Iterator[_T]:
    """Iterate with a Progress line (total from len() when it has one)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, unit, enabled) as bar:
        for item in iterable:
            yield item
            bar.update()


def run_script(main: Callable[[], Any]) -> None:
    """Entry point of a benchmark script: quiet libraries, and skelssl's UserError (bad data, a missing file, a
    wrong option) as one line `<script>: error: ...` with exit status 2."""
    configure_output(verbose="--verbose" in sys.argv)
    script = Path(sys.argv[0]).name
    try:
        code = main()
    except UserError as err:
        print(f"{script}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{script}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(int(code or 0))
