"""NW-UCLA and MSR Action3D readers on the real files: counts, splits, joint order, degenerate sequences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skelssl.data.msr import MSR_TO_KINECT20, prepare_msr_action3d, read_msr_file
from skelssl.data.prepared import BadInputError, load_meta, open_data
from skelssl.data.ucla import prepare_nw_ucla, read_ucla_json
from skelssl.errors import UserError
from skelssl.skeleton.layouts import KINECT20

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
UCLA = SHARED / "nw_ucla" / "all_sqe"
MSR = SHARED / "msraction3d" / "real_world_coordinates"
needs_ucla = pytest.mark.skipif(not UCLA.is_dir(), reason=f"NW-UCLA data not found at {UCLA}")
needs_msr = pytest.mark.skipif(not MSR.is_dir(), reason=f"MSR Action3D data not found at {MSR}")


def check_kinect20_anatomy(data: np.ndarray) -> None:
    """data (N, 3, T, 20, M) in KINECT20 order: head highest, feet lowest, left joints at smaller x."""
    mean = data.mean(axis=(0, 2, 4))  # (3, 20)
    names = KINECT20.joint_names
    assert names[int(np.argmax(mean[1]))] == "head"
    assert {names[j] for j in np.argsort(mean[1])[:2]} <= {"left_foot", "right_foot", "left_ankle",
                                                             "right_ankle"}
    for left, right in KINECT20.left_right:
        assert mean[0, left] < mean[0, right], (names[left], names[right])


@pytest.fixture(scope="module")
def ucla_prepared(tmp_path_factory):
    if not UCLA.is_dir():
        pytest.skip(f"NW-UCLA data not found at {UCLA}")
    out = tmp_path_factory.mktemp("ucla") / "prepared"
    prepare_nw_ucla(UCLA, out, frames=20, workers=2, progress=False)
    return out


def test_ucla_cross_view_counts(ucla_prepared):
    meta = load_meta(ucla_prepared)
    assert len(meta.splits["xview"]["train"]) == 1020 and len(meta.splits["xview"]["test"]) == 464
    test_names = [meta.sample_names[i] for i in meta.splits["xview"]["test"]]
    assert all(n.endswith("_v03") for n in test_names)
    assert open_data(ucla_prepared).shape == (1484, 3, 20, 20, 1)
    assert meta.num_classes == 10 and meta.layout.name == "kinect20"


def test_ucla_values_and_degenerate(ucla_prepared):
    meta = load_meta(ucla_prepared)
    data = open_data(ucla_prepared)
    check_kinect20_anatomy(data[::7])
    i = meta.sample_names.index("a02_s09_e04_v02")  # a single frame: repeated
    raw = json.loads((UCLA / "a02_s09_e04_v02.json").read_text())
    single = np.asarray(raw["skeletons"][0])
    # centred on the first frame's spine joint (index 1)
    np.testing.assert_allclose(data[i, :, 5, :, 0].T, single - single[1], atol=1e-6)
    assert meta.labels[i] == raw["label"] - 1
    degenerate = {d["sample"] for d in meta.provenance["degenerate"]}
    assert degenerate == {"a01_s10_e00_v03", "a02_s09_e04_v02", "a02_s09_e04_v03", "a03_s09_e01_v01"}
    assert open_data(ucla_prepared, "source_frames")[i] == 1
    # resampling by hand: output frame i samples source position (i + 0.5) * L / 20 - 0.5
    j = 0
    raw0 = np.asarray(json.loads((UCLA / f"{meta.sample_names[j]}.json").read_text())["skeletons"])
    for i in (0, 7, 19):
        pos = min(max((i + 0.5) * len(raw0) / 20 - 0.5, 0), len(raw0) - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, len(raw0) - 1)
        expected = (1 - (pos - lo)) * raw0[lo] + (pos - lo) * raw0[hi] - raw0[0, 1]
        np.testing.assert_allclose(data[j, :, i, :, 0].T, expected, atol=1e-5)


def test_ucla_bad_json(tmp_path):
    path = tmp_path / "a01_s01_e00_v01.json"
    path.write_text(json.dumps({"file_name": "a01_s01_e00_v01", "skeletons": [[[0, 0, 0]] * 19], "label": 1}))
    with pytest.raises(BadInputError, match="expected \\(T, 20, 3\\)"):
        read_ucla_json(path)


@needs_msr
def test_msr_joint_order_remapped():
    raw = np.loadtxt(MSR / "a01_s01_e01_skeleton3D.txt").reshape(-1, 20, 4)
    joints = read_msr_file(MSR / "a01_s01_e01_skeleton3D.txt")
    np.testing.assert_allclose(joints[:, 3], raw[:, 19, :3], atol=1e-6)  # head is MSR joint 20
    np.testing.assert_allclose(joints[:, 0], raw[:, 6, :3], atol=1e-6)  # hip centre is MSR joint 7
    assert sorted(MSR_TO_KINECT20.tolist()) == list(range(20))
    # "high arm wave" is done with the right arm: the right hand rises above the head
    head_y = joints[:, 3, 1].mean()
    assert joints[:, 11, 1].max() > head_y > joints[:, 7, 1].max()


@needs_msr
def test_msr_cross_subject(tmp_path):
    prepare_msr_action3d(MSR, tmp_path / "msr", frames=10, workers=2, progress=False)
    meta = load_meta(tmp_path / "msr")
    data = open_data(tmp_path / "msr")
    assert data.shape == (557, 3, 10, 20, 1)
    train = [meta.sample_names[i] for i in meta.splits["xsub"]["train"]]
    test = [meta.sample_names[i] for i in meta.splits["xsub"]["test"]]
    assert len(train) + len(test) == 557
    assert all(int(n[5:7]) % 2 == 1 for n in train) and all(int(n[5:7]) % 2 == 0 for n in test)
    assert "a13_s09_e02" not in meta.sample_names  # the all-zero file is not in the paper's list
    check_kinect20_anatomy(data)
    assert meta.labels.max() == 19 and (meta.lengths == 10).all()


def test_msr_degenerate_and_bad_files(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a01_s01_e01_skeleton3D.txt").write_text("0 0 0 0\n" * 20 * 3)  # all zeros
    rng = np.random.default_rng(0)
    np.savetxt(raw / "a02_s02_e01_skeleton3D.txt", rng.normal(size=(20 * 8, 4)))
    (raw / "a03_s03_e01_skeleton3D.txt").write_text("0 0 0 0\n" * 19)  # truncated
    report = prepare_msr_action3d(raw, tmp_path / "out", frames=4, skip_bad=True, workers=1, progress=False)
    assert [s["file"] for s in report.skipped] == ["a03_s03_e01_skeleton3D.txt"]
    meta = load_meta(tmp_path / "out")
    assert meta.provenance["degenerate"][0]["all_zero"] is True
    assert meta.splits["xsub"]["train"].tolist() == [0] and meta.splits["xsub"]["test"].tolist() == [1]
    report = prepare_msr_action3d(raw, tmp_path / "out2", frames=4, skip_bad=True, workers=1, progress=False,
                                  drop_degenerate=True)
    assert report.samples == 1


def test_msr_file_list_by_stem_or_by_whole_file_name(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a01_s01_e01", "a02_s02_e01", "a03_s03_e01"):
        np.savetxt(raw / f"{name}_skeleton3D.txt", rng.normal(size=(20 * 5, 4)))
    (tmp_path / "stems.txt").write_text("a01_s01_e01\na03_s03_e01\n")
    (tmp_path / "names.txt").write_text("a01_s01_e01_skeleton3D.txt\na03_s03_e01_skeleton3D.txt\n")
    for listing in ("stems.txt", "names.txt"):
        out = tmp_path / f"out_{listing}"
        prepare_msr_action3d(raw, out, frames=4, file_list=tmp_path / listing, workers=1, progress=False)
        assert load_meta(out).sample_names == ["a01_s01_e01", "a03_s03_e01"]
    (tmp_path / "gone.txt").write_text("a09_s09_e01_skeleton3D.txt\n")
    with pytest.raises(UserError, match=r"e\.g\. a09_s09_e01_skeleton3D\.txt$"):  # once, not ..._skeleton3D.txt twice
        prepare_msr_action3d(raw, tmp_path / "gone", frames=4, file_list=tmp_path / "gone.txt", workers=1,
                             progress=False)
