"""What every reader fuzz test shares: run a reader on one input, classify the outcome, count the outcomes.

The only acceptable outcomes are a result (which each test then compares with an independent reference) or
skelssl's own one-line error (a UserError) that names the input file. A traceback (any other exception), a
hang (the call still running after TIMEOUT seconds) or an error that does not name the file fails the test.

Example counts are modest so that the suite stays fast; SKELSSL_FUZZ_EXAMPLES=N runs N random examples per
test instead (not derandomized), for a deeper search. Outcome counts per reader are printed at the end of the
pytest run (tests/fuzz/conftest.py) and written as JSON to $SKELSSL_FUZZ_REPORT when that is set.
"""

from __future__ import annotations

import os
import re
import signal
import traceback
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, settings

from skelssl.errors import UserError

TIMEOUT = 30.0  # seconds: generous for a busy 2-core machine; every input here parses in milliseconds
OUTCOMES: dict[str, Counter] = defaultdict(Counter)
FLOAT32_MAX = 3.4028234663852886e38
COORDINATE_LIMIT = 1e15  # the largest |coordinate| a prepared dataset may hold (docs/data.md), written independently


def fuzz_settings(examples: int) -> settings:
    deep = os.environ.get("SKELSSL_FUZZ_EXAMPLES")
    return settings(max_examples=int(deep) if deep else examples, derandomize=not deep, deadline=None,
                    database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                          HealthCheck.filter_too_much])


class Hang(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise Hang()


def outcome(reader: str, call: Callable[[], Any], named: Path | str | list, lines: int | None = None
            ) -> tuple[str, Any]:
    """("result", value) or ("error", message) of call(); fails the test for anything else.

    named: the file (or directory) the error must name, or a list of files of which it must name one.
    lines: the input's line count when the reader is line-based: an error giving a line must give one in
    1..lines + 1 (0 stands for the whole file).
    """
    candidates = [Path(n) for n in named] if isinstance(named, list) else [Path(named)]
    named = candidates[0]
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    try:
        value = call()
    except Hang:
        OUTCOMES[reader]["hang"] += 1
        raise AssertionError(f"{reader}: still running after {TIMEOUT} s on {named}") from None
    except UserError as err:
        message = str(err)
        assert "\n" not in message, f"{reader}: error message over several lines: {message!r}"
        assert any(n.name in message for n in candidates), \
            f"{reader}: error names none of {[n.name for n in candidates]}: {message}"
        named = next(n for n in candidates if n.name in message)
        line = re.search(re.escape(named.name) + r":(\d+):", message)
        if line and lines is not None:
            assert 1 <= int(line.group(1)) <= lines + 1, f"{reader}: line {line.group(1)} of {lines}: {message}"
        kind = "error naming file:line" if line else (
            "error naming file and key/sample" if re.search(r"key|'[\w.]+'|\w\[\d+\]|sample \d|entry \d|"
                                                             r"annotation \d|row \d|frame \d|label", message)
            else "error naming file")
        OUTCOMES[reader][kind] += 1
        return "error", message
    except Exception as err:
        OUTCOMES[reader]["traceback"] += 1
        raise AssertionError(f"{reader}: traceback on {named}:\n{traceback.format_exc()}") from err
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    OUTCOMES[reader]["result"] += 1
    return "result", value


class Reject(Exception):
    """Raised by the reference parsers of the tests: the input is not valid by the format's rules."""


def ref_float(token: str, limit: float = COORDINATE_LIMIT) -> float:
    """A coordinate as the formats define it: a decimal number (Python's float syntax) within ±COORDINATE_LIMIT
    (other values, e.g. a confidence: within `limit`, float32's range)."""
    try:
        value = float(token)
    except ValueError:
        raise Reject(f"not a number: {token!r}") from None
    if not abs(value) <= limit:
        raise Reject(f"beyond ±{limit:g}: {token!r}")
    return value


def ref_int(token: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise Reject(f"not an integer: {token!r}") from None


def ref_lines(data: bytes) -> list[str]:
    """Text lines as Python reads a text file (UTF-8, universal newlines)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject("not UTF-8 text") from None
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


# Tokens a careless or hostile file puts where a number belongs.
HOSTILE_TOKENS = ["nan", "NaN", "inf", "-inf", "1e39", "-1e39", "3.4e38", "1e-50", "-0", "abc", "", "1,5", "0x1F",
                  "1_0", "1e", "--1", "9" * 30, "1000000000000", "-1", "0", "2.5", "1e308", "\x00", "٣", "25", "3",
                  "1"]
HOSTILE_LINES = ["", " ", "0", "-1", "1000000000000", "25", "2", "1 2 3", "abc def", "\t", "1e39 0 0 0",
                 "nan nan nan 1", "0 " * 149 + "0", "0 " * 151]


MUTATIONS = ["none", "targeted", "targeted", "targeted", "targeted", "replace_token", "replace_line",
             "delete_line", "duplicate_line", "insert_line", "swap_lines", "truncate", "flip_byte", "crlf",
             "blank_lines_end", "blank_line_start", "tabs", "bom"]


def mutate(draw: Callable, lines: list[str], targets: list[tuple[int, int | None]] | None = None,
           sep: str = " ") -> tuple[str, bytes]:
    """(mutation name, file bytes) from the lines of a valid file and one random mutation (possibly none).

    draw: the hypothesis `draw` of a composite strategy. targets: (line, token index or None for the whole
    line) of the places a reader must check (counts, headers, ids, coordinates), which random positions in a
    long file rarely hit; "targeted" mutations put a hostile token or line there. sep: what separates tokens.
    """
    from hypothesis import strategies as st

    kind = draw(st.sampled_from(MUTATIONS))
    lines = list(lines)
    n = len(lines)
    pick = draw(st.integers(0, max(n - 1, 0)))
    if kind == "targeted" and targets:
        line, token = draw(st.sampled_from(targets))
        if token is None:
            lines[line] = draw(st.sampled_from(HOSTILE_TOKENS + HOSTILE_LINES))
        else:
            tokens = lines[line].split(sep)
            tokens[min(token, len(tokens) - 1)] = draw(st.sampled_from(HOSTILE_TOKENS))
            lines[line] = sep.join(tokens)
    elif kind == "replace_token" and n:
        tokens = lines[pick].split(sep)
        tokens[draw(st.integers(0, len(tokens) - 1))] = draw(st.sampled_from(HOSTILE_TOKENS))
        lines[pick] = sep.join(tokens)
    elif kind == "replace_line" and n:
        lines[pick] = draw(st.sampled_from(HOSTILE_LINES))
    elif kind == "delete_line" and n:
        del lines[pick]
    elif kind == "duplicate_line" and n:
        lines.insert(pick, lines[pick])
    elif kind == "insert_line":
        lines.insert(pick, draw(st.sampled_from(HOSTILE_LINES)))
    elif kind == "swap_lines" and n > 1:
        other = draw(st.integers(0, n - 1))
        lines[pick], lines[other] = lines[other], lines[pick]
    elif kind == "tabs" and n:
        lines[pick] = lines[pick].replace(" ", "\t")
    elif kind == "blank_lines_end":
        lines += ["", "  ", ""]
    elif kind == "blank_line_start":
        lines.insert(0, "")
    data = ("\r\n" if kind == "crlf" else "\n").join(lines).encode("utf-8") + b"\n"
    if kind == "bom":
        data = "\ufeff".encode("utf-8") + data
    elif kind == "truncate":
        data = data[:draw(st.integers(0, max(len(data) - 1, 0)))]
    elif kind == "flip_byte" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    return kind, data


def against_reference(reader: str, file_name: str, data: bytes, read: Callable[[Path], Any],
                      reference: Callable[[bytes], Any], what: str) -> tuple[Any, Any] | None:
    """Write `data` as `file_name` in a fresh directory, read it with read(path) and the reference with
    reference(data). Both must reject it (the reader with its one-line error naming the file and a line within
    it), or both accept it: then (value, expected) is returned for the caller to compare; None otherwise."""
    import tempfile

    try:
        expected = reference(data)
    except Reject:
        expected = Reject
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / file_name
        path.write_bytes(data)
        kind, value = outcome(reader, lambda: read(path), path, lines=data.count(b"\n") + data.count(b"\r") + 1)
    if expected is Reject:
        assert kind == "error", f"{what}: accepted a file that the format rejects"
        return None
    assert kind == "result", f"{what}: refused a valid file: {value}"
    return value, expected
