"""The custom-data worked example of docs/data.md runs as written."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from skelssl.data.prepare_cli import main
from skelssl.data.prepared import load_meta, open_data

DOC = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def block(text: str, marker: str) -> str:
    match = re.search(rf"<!-- example: {marker} -->\s*```\w+\n(.*?)```", text, re.S)
    assert match, f"example block '{marker}' missing from {DOC}"
    return match.group(1)


def test_custom_worked_example(tmp_path):
    if not DOC.is_file():
        pytest.skip(f"{DOC} not found")
    text = DOC.read_text()
    (tmp_path / "stick5.yaml").write_text(block(text, "layout"))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(block(text, "arrays"), "docs/data.md", "exec"), {})
        argv = shlex.split(block(text, "command"))
        assert argv[0] == "skelssl"
        assert main(argv[1:]) == 0
    finally:
        os.chdir(cwd)
    meta = load_meta(tmp_path / "stick_prepared")
    out = open_data(tmp_path / "stick_prepared")
    assert out.shape == (6, 3, 50, 5, 1)
    assert meta.layout.name == "stick5" and meta.layout.left_right == ((3, 4),)
    assert meta.splits["default"]["train"].tolist() == [0, 1, 2, 3]
    data = np.load(tmp_path / "stick.npz")["data"]
    # As the text says: centred on the first frame's neck (joint 1), not rotated; resampling 30 -> 50 frames
    # keeps frame 0 where it is.
    np.testing.assert_allclose(out[5, :, 0, 4, 0], data[5, 0, 4] - data[5, 0, 1], atol=1e-6)
    assert meta.provenance["normalization"]["align"] == "none"


def test_own_recordings_walkthrough(tmp_path, capsys):
    """The sensor example, its prepare command and `info --baseline` run as written."""
    if not DOC.is_file():
        pytest.skip(f"{DOC} not found")
    from skelssl.cli import main as cli_main

    text = DOC.read_text()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(block(text, "sensor"), "docs/data.md", "exec"), {})
        for marker, run in (("prepare", main), ("info", cli_main)):
            argv = shlex.split(block(text, marker).replace("\\\n", " "))
            assert argv[0] == "skelssl" and run(argv[1:]) == 0
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "views aligned" in out and "baseline (no learning" in out and "warning" not in out
    assert load_meta(tmp_path / "data" / "my_sensor").class_names[0] == "wave_right"
