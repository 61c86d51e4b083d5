"""What a user reads (issue 14 §5): progress lines with an ETA that suit a terminal or a file, skelssl's warnings
on one line, library chatter hidden unless --verbose, `| head` ending quietly, benchmark errors on one line."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import skelssl
from skelssl import console
from skelssl.cli import main
from skelssl.lightning_progress import epoch_line
from tests.conftest import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    """Advances one second per reading after the first."""

    def __init__(self) -> None:
        self.now = -1.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture(autouse=True)
def _restore_output_settings():
    saved = (warnings.showwarning, dict(console._state))
    yield
    warnings.showwarning = saved[0]
    console._state.update(saved[1])


def test_progress_to_a_file_prints_a_line_per_tenth_with_the_eta():
    stream, clock = io.StringIO(), _Clock()
    bar = console.Progress(100, "features", "sequences", stream=stream, clock=clock)  # started at t = 0
    for _ in range(100):
        bar.update()  # the clock is read only when a line is printed
    bar.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 10  # 10 %, 20 %, ..., 90 % and the closing line
    # first line: 10 of 100 done; the clock has been read once at start and once now: 1 s elapsed,
    # so the rest (90) takes 9 s by the rate so far
    assert lines[0] == "features: 10/100 sequences (10 %) 0:01 elapsed, ETA 0:09"
    assert lines[1] == "features: 20/100 sequences (20 %) 0:02 elapsed, ETA 0:08"
    assert lines[-1] == "features: 100/100 sequences (100 %) in 0:10"


def test_progress_to_a_file_prints_one_line_for_an_update_that_crosses_several_tenths():
    stream = io.StringIO()
    with console.Progress(256, "key pass", "sequences", stream=stream, clock=_Clock()) as bar:
        for _ in range(4):
            bar.update(64)
    assert [line.split(":")[1].split("(")[0].strip() for line in stream.getvalue().splitlines()] == [
        "64/256 sequences", "128/256 sequences", "192/256 sequences", "256/256 sequences"]


def test_progress_on_a_terminal_redraws_one_line():
    stream = _Terminal()
    bar = console.Progress(3, "k-means", "iterations", stream=stream, clock=_Clock())
    for _ in range(3):
        bar.update()
    bar.close()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\r") == 4  # each update 1 s apart (> 0.2 s throttle) redraws, then the closing line
    assert "k-means: 1/3 iterations (33 %) 0:01 elapsed, ETA 0:02" in text


def test_progress_is_silent_when_turned_off():
    stream = io.StringIO()
    console.configure_output(progress=False)
    with console.Progress(10, "x", stream=stream) as bar:
        bar.update(10)
    assert stream.getvalue() == ""


def test_format_duration():
    assert [console.format_duration(s) for s in (0, 59.4, 61, 3600 + 62)] == ["0:00", "0:59", "1:01", "1:01:02"]


def test_epoch_line_for_logs():
    line = epoch_line(1, 10, 26, {"train/loss_epoch": 6.91234}, 48.0, [40.0, 48.0])
    assert line == "epoch 2/10: step 26, loss 6.9123, 0:48 (ETA 5:52)"  # mean 44 s x 8 epochs left = 352 s
    assert epoch_line(9, 10, 130, {}, 30.0, [30.0]) == "epoch 10/10: step 130, 0:30"


def test_skelssl_warnings_print_on_one_line_and_library_deprecations_are_hidden():
    ours = str(Path(skelssl.__file__).parent / "methods" / "core" / "monitor.py")
    library = "/somewhere/site-packages/lightning/pytorch/trainer/trainer.py"
    err = io.StringIO()
    console.configure_output(verbose=False)
    old = sys.stderr
    sys.stderr = err
    try:
        warnings.warn_explicit("collapsing:\n  mean cosine 0.999", UserWarning, ours, 71)
        warnings.warn_explicit("`LeafSpec` is deprecated", DeprecationWarning, "/x/torch/utils/_pytree.py", 3)
        warnings.warn_explicit("consider more workers", UserWarning, library, 9)
        warnings.warn_explicit("overflow in exp", RuntimeWarning, "/x/numpy/core/umath.py", 5)
    finally:
        sys.stderr = old
    assert err.getvalue().splitlines() == ["skelssl: warning: collapsing: mean cosine 0.999",
                                           "warning (RuntimeWarning, umath.py): overflow in exp"]


def test_pretrain_redirected_to_a_file_prints_a_line_per_epoch(capsys, tiny_dataset, tmp_path):
    code = main(["pretrain", *tiny_overrides(tiny_dataset, tmp_path / "run", **{"trainer.epochs": 3}),
                 "trainer.progress_bar=true"])
    out = capsys.readouterr().out
    assert code == 0 and "\r" not in out
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "ETA" in epoch_lines[0] and "loss" in epoch_lines[0]


def test_no_progress_turns_the_epoch_lines_off(capsys, tiny_dataset, tmp_path):
    code = main(["pretrain", *tiny_overrides(tiny_dataset, tmp_path / "run", **{"trainer.epochs": 2}),
                 "trainer.progress_bar=true", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and not [line for line in out.splitlines() if line.startswith("epoch ")]


def test_lightning_info_lines_stay_hidden_when_lightning_is_imported_after_the_setup():
    """The benchmarks set the output up before they import Lightning, whose import sets its logger to INFO."""
    code = ("from skelssl.console import configure_output; configure_output(); import logging, lightning.pytorch; "
            "print(logging.getLogger('lightning.pytorch').getEffectiveLevel())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.strip() == "30"  # logging.WARNING


def test_info_into_a_closed_pipe_ends_quietly(tiny_dataset):
    """`skelssl info DIR | head -0`: the reader has gone before skelssl writes."""
    proc = subprocess.Popen([sys.executable, "-m", "skelssl.cli", "info", str(tiny_dataset)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert err == "" and proc.returncode == 141


def test_a_benchmark_reports_a_user_error_on_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/compare_methods.py", "--dataset", "nwucla-xview", "--root",
                           str(tmp_path / "missing"), "--epochs", "1", "--out", str(tmp_path / "out"),
                           "--methods", "skeletonclr"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"compare_methods.py: error: no prepared dataset at data.root='{tmp_path / 'missing'}': run `skelssl "
        "prepare nw-ucla ...` first (see docs/data.md), or point data.root at a prepared dataset"]
