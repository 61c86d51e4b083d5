"""Hand-made hostile inputs: each fault that issue 14 lists for the readers, as a user meets it, with the
outcome required now (skelssl's own one-line error naming the file and the line or key; --out untouched).
Each of these failed on the code before the fix (a traceback, a hang or a silently wrong dataset)."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.cli import main
from skelssl.data.formats import convert_aimclr, convert_ctrgcn, convert_pyskl
from skelssl.data.msr import read_msr_file
from skelssl.data.ntu import read_skeleton_file
from skelssl.data.pkummd import prepare_pkummd, read_pku_labels
from skelssl.data.prepared import BadInputError, PreparedDatasetError
from skelssl.data.ucla import prepare_nw_ucla, read_ucla_json
from skelssl.errors import UserError
from skelssl.skeleton.layouts import Layout, LayoutError, NTU25
from skelssl.transforms.streams import to_stream
from tests.conftest import snapshot, staging_left, tiny_overrides, write_earlier_dataset


def _one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err


# ---------------------------------------------------------------------------------------------- NW-UCLA


def _ucla(path: Path, label, skeletons=None) -> Path:
    skeletons = [[[0.1, 0.2, 3.0]] * 20] * 2 if skeletons is None else skeletons
    path.write_text(json.dumps({"file_name": path.stem, "skeletons": skeletons, "label": label}))
    return path


@pytest.mark.parametrize("label", [3.7, True, "3", None, 0, 11])
def test_ucla_label_that_is_not_a_class_is_refused(tmp_path, label):
    # 3.7 was stored as class 2, true as class 0; "3" and null gave a traceback
    path = _ucla(tmp_path / "a01_s01_e01_v01.json", label)
    with pytest.raises(BadInputError, match="key 'label' is .*expected a whole number 1..10"):
        read_ucla_json(path)
    assert read_ucla_json(_ucla(tmp_path / "a01_s01_e01_v02.json", 3.0))[1] == 2  # 3.0 is the whole number 3


def test_ucla_binary_file_and_text_coordinates(tmp_path):
    binary = tmp_path / "a01_s01_e01_v01.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(BadInputError, match="not a text file"):
        read_ucla_json(binary)
    text = _ucla(tmp_path / "a01_s01_e01_v02.json", 1, [[["0.1", "0.2", "3"]] * 20])
    with pytest.raises(BadInputError, match="does not hold only numbers"):  # was converted silently
        read_ucla_json(text)
    boolean = _ucla(tmp_path / "a01_s01_e01_v03.json", 1, [[[0.1, True, 3.0]] + [[0.1, 0.2, 3.0]] * 19])
    with pytest.raises(BadInputError, match="does not hold only numbers"):  # was read as 1.0
        read_ucla_json(boolean)


def test_ucla_prepare_failure_leaves_out_untouched(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    _ucla(raw / "a01_s01_e01_v01.json", 2)
    _ucla(raw / "a01_s01_e01_v03.json", 3.7)
    out = tmp_path / "out"
    write_earlier_dataset(out)
    earlier = snapshot(out)
    err = _one_line_error(capsys, ["prepare", "nw-ucla", "--raw", str(raw), "--out", str(out), "--workers", "1",
                                   "--no-progress"])
    assert "a01_s01_e01_v03.json" in err and "'label'" in err
    assert snapshot(out) == earlier
    prepare_nw_ucla(raw, out, skip_bad=True, workers=1, progress=False)  # --skip-bad keeps the good one
    assert json.loads((out / "meta.json").read_text())["labels"] == [1]


# ---------------------------------------------------------------------------------------------- MSR


def test_msr_value_beyond_float32_is_refused(tmp_path):
    path = tmp_path / "a01_s01_e01_skeleton3D.txt"
    rows = ["0.1 0.2 3.0 1"] * 20
    rows[7] = "1e39 0.2 3.0 1"  # was stored as inf
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(BadInputError) as info:
        read_msr_file(path)
    assert info.value.line == 8 and "out-of-range" in info.value.problem
    rows[7] = "0.1 0.2 3.0 high"  # the dropped confidence column is checked too
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(BadInputError, match="non-numeric"):
        read_msr_file(path)


# ---------------------------------------------------------------------------------------------- NTU


def test_ntu_huge_frame_count_is_refused_without_allocating(tmp_path):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text("1000000000000\n0\n")  # was a MemoryError traceback
    with pytest.raises(BadInputError) as info:
        read_skeleton_file(path)
    assert info.value.line == 1 and "frame count 1000000000000" in info.value.problem
    path.write_text("1\n" + "9" * 30 + "\n")  # a body count beyond int64: was an OverflowError (deep fuzz run)
    with pytest.raises(BadInputError, match="body count 9+ but the file has 2 lines"):
        read_skeleton_file(path)
    path.write_text("1\n1\n" + "1" * 30 + " 0 1 1 0 0 0 0.1 0.1 2\n25\n" + "0 0 3 1 2 3 4 5 6 7 8 2\n" * 25)
    with pytest.raises(BadInputError, match="tracking id .* is not a 64-bit integer"):  # was an OverflowError
        read_skeleton_file(path)


def test_ntu_prepare_refuses_file_names_outside_the_dataset(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "S001C001P001R001A000.skeleton").write_text("1\n0\n")  # action 0 would be label -1
    err = _one_line_error(capsys, ["prepare", "ntu120", "--raw", str(raw), "--out", str(tmp_path / "out")])
    assert "S001C001P001R001A000.skeleton" in err and "action 0" in err


# ---------------------------------------------------------------------------------------------- PKU-MMD


def _pku(tmp_path: Path, labels: str) -> tuple[Path, Path]:
    raw, lab = tmp_path / "raw", tmp_path / "labels"
    raw.mkdir(exist_ok=True)
    lab.mkdir(exist_ok=True)
    (raw / "0002-L.txt").write_text(("0.5 " * 150 + "\n") * 20)
    (lab / "0002-L.txt").write_text(labels)
    return raw, lab


def test_pku_action_id_outside_the_dataset_is_refused(tmp_path):
    raw, lab = _pku(tmp_path, "3,0,9,1\n999,10,19,1\n")  # 999 made a 999-class dataset
    with pytest.raises(BadInputError) as info:
        prepare_pkummd(raw, lab, tmp_path / "out", part=1, progress=False)
    assert info.value.line == 2 and "action id 999" in info.value.problem
    (lab / "0002-L.txt").write_text("12,0,9,1\n")  # an interaction: not one of part II's 41 actions
    with pytest.raises(BadInputError, match="giving something to other person"):
        read_pku_labels(lab / "0002-L.txt", part=2)


def test_pku_failure_leaves_out_untouched(tmp_path, capsys):
    raw, lab = _pku(tmp_path, "3,0,9,1\n3,10,99,1\n")  # ends beyond the 20 frames
    out = tmp_path / "out"
    err = _one_line_error(capsys, ["prepare", "pkummd", "--raw", str(raw), "--labels", str(lab), "--part", "1",
                                   "--out", str(out), "--no-progress"])
    assert "0002-L.txt:2" in err
    assert not out.exists() and not staging_left(tmp_path)  # was an empty --out
    (lab / "0002-L.txt").write_text("3,0,9,1\n")
    prepare_pkummd(raw, lab, out, part=1, progress=False)
    before = (out / "trimmed" / "meta.json").read_text()
    (lab / "0002-L.txt").write_text("3,0,9,x\n")
    with pytest.raises(BadInputError):
        prepare_pkummd(raw, lab, out, part=1, progress=False)
    assert (out / "trimmed" / "meta.json").read_text() == before  # the earlier dataset is kept whole


# ---------------------------------------------------------------------------------------------- layouts


def _stick(**change) -> dict:
    spec = {"name": "stick", "joint_names": ["pelvis", "neck", "head", "left_hand", "right_hand"],
            "edges": [[1, 0], [2, 1], [3, 1], [4, 1]], "center": 1,
            "parts": {"trunk": [0, 1, 2], "left_arm": [3], "right_arm": [4]}, "left_right": [[3, 4]]}
    spec.update(change)
    return spec


@pytest.mark.parametrize("change,words", [
    ({"edges": [[1, 0], [2, 1], [3, 1], [4, 1], [0, 2]]}, "cycle (neck -> pelvis -> head -> neck)"),
    ({"joint_names": ["pelvis", "neck", "head", "hand", "hand"]}, "joint_names[4] 'hand' repeats"),
    ({"edges": [[1, 0], [2.0, 1], [3, 1], [4, 1]]}, "edges[1] must be an integer joint index, found 2.0"),
    ({"left_rigth": [[3, 4]]}, "unknown key 'left_rigth' (did you mean 'left_right'?)"),
    ({"center": True}, "center must be an integer joint index, found True"),
    ({"left_right": [[3, 4], [4, 2]]}, "joint 4 is already in left_right[0]"),
])
def test_layout_mistakes_are_refused(tmp_path, change, words):
    # all were accepted; with the cycle, the bone stream trained on bones with no root
    import yaml

    path = tmp_path / "stick.yaml"
    path.write_text(yaml.safe_dump(_stick(**change)))
    with pytest.raises(LayoutError) as info:
        Layout.from_yaml(path)
    assert words in str(info.value) and str(path) in str(info.value)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


def test_valid_layout_bones_reach_a_root():
    layout = Layout.from_dict(_stick())
    import torch

    x = torch.arange(5 * 3, dtype=torch.float32).reshape(1, 3, 1, 5, 1)
    bones = to_stream(x, "bone", layout)
    assert torch.equal(bones[0, :, 0, 0, 0], torch.zeros(3))  # the root (pelvis) has no bone
    assert torch.equal(bones[0, :, 0, 2, 0], x[0, :, 0, 2, 0] - x[0, :, 0, 1, 0])  # head - neck


# ---------------------------------------------------------------------------------------------- formats


def test_foreign_files_that_used_to_give_tracebacks(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "object.npy").write_bytes(buf.getvalue())
    (tmp_path / "labels.pkl").write_bytes(pickle.dumps((["a"], [0])))
    with pytest.raises(UserError, match="object.npy: cannot read as a .npy array"):
        convert_aimclr(tmp_path / "object.npy", tmp_path / "labels.pkl", tmp_path / "out", trust_pickle=True)
    np.save(tmp_path / "complex.npy", np.ones((1, 3, 2, 25, 2), np.complex64))  # lost its imaginary part
    with pytest.raises(UserError, match="complex.npy: complex64 values"):
        convert_aimclr(tmp_path / "complex.npy", tmp_path / "labels.pkl", tmp_path / "out", trust_pickle=True)
    np.save(tmp_path / "ok.npy", np.ones((1, 3, 2, 25, 2), np.float32))
    (tmp_path / "huge.pkl").write_bytes(pickle.dumps((["a"], [10**12])))  # named 10^12 classes: a hang
    with pytest.raises(UserError, match=r"huge.pkl: label 1000000000000 of sample 0 is not a class index"):
        convert_aimclr(tmp_path / "ok.npy", tmp_path / "huge.pkl", tmp_path / "out", trust_pickle=True)
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(UserError, match="broken.npz: cannot read as a CTR-GCN .npz"):
        convert_ctrgcn(tmp_path / "broken.npz", tmp_path / "out")
    np.savez(tmp_path / "soft.npz", x_train=np.ones((2, 3, 150), np.float32), y_train=np.full((2, 4), 0.25))
    with pytest.raises(UserError, match="soft.npz y_train: row 0 is not one-hot"):  # was argmax -> class 0
        convert_ctrgcn(tmp_path / "soft.npz", tmp_path / "out")
    ann = {"frame_dir": "a", "label": 0, "keypoint": np.full((1, 2, 25, 3), np.nan, np.float32)}
    (tmp_path / "nan.pkl").write_bytes(pickle.dumps({"annotations": [ann]}))
    with pytest.raises(UserError, match=r"nan.pkl: annotation 0 \('a'\) keypoint: sample 0 holds NaN"):
        convert_pyskl(tmp_path / "nan.pkl", tmp_path / "out", trust_pickle=True)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- prepared


@pytest.fixture
def prepared_copy(tiny_dataset, tmp_path) -> Path:
    root = tmp_path / "prepared"
    shutil.copytree(tiny_dataset, root)
    return root


def test_info_on_meta_and_data_that_disagree(prepared_copy, capsys):
    meta = json.loads((prepared_copy / "meta.json").read_text())
    last = len(meta["labels"]) - 1
    for key in ("labels", "lengths", "sample_names"):
        meta[key] = meta[key][:-1]  # one sample fewer than data.npy holds: an IndexError or a wrong count
    for parts in meta["splits"].values():
        for part in parts:
            parts[part] = [i for i in parts[part] if i != last]
    (prepared_copy / "meta.json").write_text(json.dumps(meta))
    err = _one_line_error(capsys, ["info", str(prepared_copy)])
    assert f"meta.json: key 'labels': {last} entries for the {last + 1} samples of data.npy" in err
    meta["labels"], meta["lengths"] = meta["labels"] + [0], meta["lengths"] + [16]
    meta["sample_names"] += ["extra"]
    # a negative index read the last sample silently
    meta["splits"]["xsub"]["test"] = [-1] + meta["splits"]["xsub"]["test"]
    (prepared_copy / "meta.json").write_text(json.dumps(meta))
    err = _one_line_error(capsys, ["info", str(prepared_copy)])
    assert "key 'splits.xsub.test': entry 0 is -1" in err


def test_nan_in_data_is_named_by_info_and_refused_by_evaluate(prepared_copy, tiny_dataset, tmp_path, capsys):
    meta = json.loads((prepared_copy / "meta.json").read_text())
    victim = meta["splits"]["xsub"]["test"][1]
    data = np.load(prepared_copy / "data.npy", mmap_mode="r+")
    data[victim, 0, 3, 5, 0] = np.nan
    data.flush()
    del data
    assert main(["info", str(prepared_copy)]) == 0
    out = capsys.readouterr().out
    assert f"WARNING: 1 sample(s) hold NaN, infinite or unusably large values; the first, " \
           f"'{meta['sample_names'][victim]}', holds NaN or infinite values" in out
    run_dir = tmp_path / "run"
    assert main(["pretrain", *tiny_overrides(tiny_dataset, run_dir, **{"trainer.epochs": 1})]) == 0
    capsys.readouterr()
    err = _one_line_error(capsys, ["evaluate", "knn", "--checkpoint", str(run_dir / LAST_CHECKPOINT),
                                   f"data.root={prepared_copy}"])  # was evaluated without a word
    assert f"sample {victim} ('{meta['sample_names'][victim]}') holds NaN" in err


def test_dataset_written_by_a_preparer_must_read_back(tmp_path):
    from skelssl.data.prepared import PreparedMeta, write_prepared

    meta = PreparedMeta(dataset="x", layout=NTU25, class_names=["a"], labels=np.zeros(2, np.int64),
                        lengths=np.array([3, 9]), sample_names=["s0", "s1"],
                        splits={"all": {"train": np.arange(2), "test": np.zeros(0, np.int64)}})
    with pytest.raises(PreparedDatasetError, match="fails its own checks.*sample 1 \\('s1'\\) has 9 valid frames"):
        write_prepared(tmp_path / "out", np.zeros((2, 3, 4, 25, 1), np.float32), meta)
    assert not (tmp_path / "out").exists() and not staging_left(tmp_path)


def test_a_layout_error_in_meta_json_names_the_file_once(prepared_copy, capsys):
    meta = json.loads((prepared_copy / "meta.json").read_text())
    layout = NTU25.to_dict()
    layout["edges"] = [list(e) for e in layout["edges"]] + [[layout["edges"][0][1], layout["edges"][0][0]]]
    meta["layout"] = layout
    (prepared_copy / "meta.json").write_text(json.dumps(meta))
    err = _one_line_error(capsys, ["info", str(prepared_copy)])
    assert err.count(str(prepared_copy / "meta.json")) == 1 and "'layout'" in err, err
