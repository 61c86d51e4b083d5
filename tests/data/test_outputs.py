"""--out replaces only what skelssl wrote (issue 21's data loss): a folder of the user's or a file is refused and
left as it was; an earlier prepared dataset is replaced; nothing of the user's beside it is touched."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from skelssl.cli import main
from skelssl.data.prepared import load_meta, prepared_owner_problem
from skelssl.errors import UserError
from skelssl.outputs import move_into_place, staging_dir
from tests.conftest import snapshot, staging_left, write_earlier_dataset


def _arrays(tmp_path, n=4):
    rng = np.random.default_rng(0)
    path = tmp_path / "rec.npz"
    np.savez(path, data=rng.normal(size=(n, 6, 25, 3)).astype(np.float32), labels=np.arange(n) % 2)
    return path


def _prepare(capsys, arrays, out):
    code = main(["prepare", "custom", "--arrays", str(arrays), "--layout", "ntu25", "--out", str(out),
                 "--normalize", "off", "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_folder_of_the_users_is_refused_and_kept(tmp_path, capsys):
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "notes.txt").write_text("my notes\n")
    code, _, err = _prepare(capsys, _arrays(tmp_path), user)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"'{user}' is a folder that skelssl did not write (it holds notes.txt" in err
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"] and (user / "notes.txt").read_text() == "my notes\n"
    assert not staging_left(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.npz", "userdir"]  # no OUT.old, no half dataset


def test_an_existing_file_is_refused_and_kept(tmp_path, capsys):
    (tmp_path / "cust").mkdir()
    target = tmp_path / "cust" / "good.npz"
    target.write_bytes(b"user data")
    code, _, err = _prepare(capsys, _arrays(tmp_path), target)
    assert code == 2 and f"--out '{target}' is an existing file" in err
    assert target.read_bytes() == b"user data" and sorted(p.name for p in (tmp_path / "cust").iterdir()) == ["good.npz"]
    code, _, err = _prepare(capsys, _arrays(tmp_path), target / "inside")  # a path under the file
    assert code == 2 and f"'{target}' is a file, not a folder" in err and target.read_bytes() == b"user data"


def test_an_earlier_dataset_is_replaced_and_the_users_old_folder_beside_it_kept(tmp_path, capsys):
    out = tmp_path / "out"
    write_earlier_dataset(out)
    old = tmp_path / "out.old"  # the name the earlier code renamed --out to, then deleted
    old.mkdir()
    (old / "keep.txt").write_text("the user's\n")
    partial = tmp_path / "out.partial"
    partial.mkdir()
    (partial / "keep.txt").write_text("also the user's\n")
    code, stdout, err = _prepare(capsys, _arrays(tmp_path), out)
    assert code == 0, err
    assert load_meta(out).dataset == "custom" and len(load_meta(out).labels) == 4  # the new dataset
    assert (old / "keep.txt").read_text() == "the user's\n"
    assert (partial / "keep.txt").read_text() == "also the user's\n"
    assert not staging_left(tmp_path)


def test_a_prepared_dataset_holding_a_users_file_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    write_earlier_dataset(out)
    (out / "my_labels.csv").write_text("mine\n")
    before = snapshot(out)
    code, _, err = _prepare(capsys, _arrays(tmp_path), out)
    assert code == 2 and "beside a prepared dataset it holds my_labels.csv" in err and snapshot(out) == before


def test_what_counts_as_skelssls_own_output(tmp_path):
    write_earlier_dataset(tmp_path / "pku" / "trimmed")
    write_earlier_dataset(tmp_path / "pku" / "untrimmed")
    assert prepared_owner_problem(tmp_path / "pku") is None  # PKU-MMD's two datasets under one --out
    (tmp_path / "pku" / "readme.txt").write_text("x")
    assert "readme.txt" in prepared_owner_problem(tmp_path / "pku")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "meta.json").write_text(json.dumps({"format": "something-else"}))
    (fake / "data.npy").write_bytes(b"")
    assert "not a skelssl dataset's" in prepared_owner_problem(fake)


def test_an_earlier_output_is_swapped_in_one_step_where_the_system_can(tmp_path):
    from skelssl.outputs import exchange

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "new").write_text("new")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "old").write_text("old")
    swapped = exchange(tmp_path / "a", tmp_path / "b")
    if not swapped:  # an old C library, another system or file system: move_into_place renames twice
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here")
    assert (tmp_path / "b" / "new").read_text() == "new" and (tmp_path / "a" / "old").read_text() == "old"


def test_a_failed_rename_puts_the_earlier_output_back(tmp_path, monkeypatch):
    import skelssl.outputs as outputs

    monkeypatch.setattr(outputs, "exchange", lambda a, b: False)  # the two-rename path, where no swap exists
    out = tmp_path / "out"
    write_earlier_dataset(out)
    before = snapshot(out)
    staged = staging_dir(out)
    (staged / "meta.json").write_text("{}")
    real_replace = os.replace
    calls = []

    def failing_second_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new output into place
            raise OSError("disk gone")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_second_rename)
    with pytest.raises(OSError, match="disk gone"):
        move_into_place(staged, out, prepared_owner_problem, "prepared dataset")
    monkeypatch.setattr(os, "replace", real_replace)
    assert snapshot(out) == before


def test_the_check_runs_before_any_work(tmp_path, monkeypatch):
    """A refused --out costs nothing: no input file is read (a long NTU prepare fails at once)."""
    from skelssl.data import prepared

    user = tmp_path / "userdir"
    user.mkdir()
    (user / "notes.txt").write_text("x")

    def no_staging(*args, **kwargs):
        raise AssertionError("staging started for a refused --out")

    monkeypatch.setattr(prepared, "staging_dir", no_staging)
    with pytest.raises(UserError, match="did not write"):
        prepared.PreparedWriter(user, (1, 3, 2, 25, 1))
