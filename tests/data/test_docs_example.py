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
    assert open_data(tmp_path / "stick_prepared").shape == (6, 3, 30, 5, 1)
    assert meta.layout.name == "stick5" and meta.layout.left_right == ((3, 4),)
    assert meta.splits["default"]["train"].tolist() == [0, 1, 2, 3]
    data = np.load(tmp_path / "stick.npz")["data"]
    np.testing.assert_allclose(open_data(tmp_path / "stick_prepared")[5, :, 29, 4, 0], data[5, 29, 4])
