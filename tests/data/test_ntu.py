"""NTU RGB+D parser, recipes, splits and prepare pipeline, on the real sample files and on broken files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skelssl.data.ntu import NTU60_XSUB_TRAIN_PERFORMERS, ntu_splits, parse_sample_name, read_skeleton_file
from skelssl.data.ntu_prepare import prepare_ntu
from skelssl.data.ntu_preprocess import (PRESETS, NtuRecipe, align_shoulders_per_frame, preprocess_skeleton,
                                         recipe_from_preset, resample_linear)
from skelssl.data.prepared import BadInputError, load_meta, open_data
from tests.conftest import staging_left

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
RAW = SHARED / "ntu_raw_samples"
META = SHARED / "ntu_meta"

needs_raw = pytest.mark.skipif(not RAW.is_dir(), reason=f"NTU sample files not found at {RAW}")
needs_meta = pytest.mark.skipif(not META.is_dir(), reason=f"NTU metadata not found at {META}")


def sample(action: int) -> Path:
    return RAW / f"S001C001P001R001A{action:03d}.skeleton"


# ---------------------------------------------------------------------------------------------- real files


@needs_raw
@pytest.mark.parametrize("action", [1, 24, 50, 60])
def test_frame_count_matches_first_line(action):
    path = sample(action)
    expected = int(path.read_text().split("\n", 1)[0])
    assert read_skeleton_file(path).num_frames == expected


@needs_raw
def test_body_counts_single_and_interaction_classes():
    for action in (1, 10, 23, 30, 49):
        assert read_skeleton_file(sample(action)).bodies_per_frame.max() == 1
    for action in range(50, 61):
        skel = read_skeleton_file(sample(action))
        assert (skel.bodies_per_frame == 2).all(), action
        assert (np.abs(skel.joints[:, 1]).sum(axis=(1, 2)) > 0).all()


@needs_raw
def test_joint_coordinates_of_a_known_frame_read_from_the_text():
    path = sample(1)  # one body every frame: 1 count + 1 body line + 1 joint count + 25 joints per frame
    lines = path.read_text().split("\n")
    frame, joint = 10, 7  # 0-based
    line = 1 + frame * 28 + 3 + joint
    expected = [float(v) for v in lines[line].split()[:3]]
    skel = read_skeleton_file(path)
    np.testing.assert_allclose(skel.joints[frame, 0, joint], expected, rtol=0, atol=1e-6)
    assert skel.body_ids[frame, 0] == int(lines[1 + frame * 28 + 1].split()[0])


@needs_raw
@pytest.mark.parametrize("action", range(24, 30))
def test_spurious_second_body_dropped_by_denoise(action):
    skel = read_skeleton_file(sample(action))
    plain, _ = preprocess_skeleton(skel, recipe_from_preset("aimclr"))
    assert np.abs(plain[..., 1]).sum() > 0  # the official recipe keeps it
    clean, _ = preprocess_skeleton(skel, recipe_from_preset("aimclr", denoise=True, center_joint=0,
                                                            align="none", frames=0))
    assert np.abs(clean[..., 1]).sum() == 0
    # the body kept is the performer (about 1.2 m tall, near x = 0.2), not the flat noise body at x ~ 2
    body = clean[:, : skel.num_frames, :, 0]
    height = body[1].max(axis=1) - body[1].min(axis=1)
    assert height.mean() > 1.0 and abs(body[0].mean()) < 1.0


@needs_raw
def test_denoise_keeps_both_real_bodies_of_interactions():
    for action in (50, 55, 60):
        out, _ = preprocess_skeleton(read_skeleton_file(sample(action)),
                                     recipe_from_preset("agcn", denoise=True))
        assert np.abs(out[..., 0]).sum() > 0 and np.abs(out[..., 1]).sum() > 0


@needs_raw
def test_aimclr_recipe_geometry():
    skel = read_skeleton_file(sample(50))
    out, length = preprocess_skeleton(skel, PRESETS["aimclr"])
    assert out.shape == (3, 50, 25, 2) and length == 50
    shoulders = out[:, :, 8] - out[:, :, 4]
    np.testing.assert_allclose(shoulders[2], 0, atol=1e-5)  # on the x axis
    assert (shoulders[0] > 0).all()
    # joint 21 holds its displacement from the first frame: zero at frame 0 of the raw data, and the other
    # joints are relative to it. First output frame = raw frame 0 (half-frame alignment, clamped).
    raw = skel.joints[:, :2]
    scale = skel.num_frames / 50
    pos = 0.5 * scale - 0.5
    lo, w = int(np.floor(pos)), pos - np.floor(pos)
    rel = (1 - w) * (raw[lo] - raw[lo, :, 20:21]) + w * (raw[lo + 1] - raw[lo + 1, :, 20:21])  # (2,25,3)
    rel[:, 20] = (1 - w) * (raw[lo, :, 20] - raw[0, :, 20]) + w * (raw[lo + 1, :, 20] - raw[0, :, 20])
    # rotation about y keeps y and the in-plane norm
    np.testing.assert_allclose(out[1, 0, :, 0], rel[0, :, 1], atol=1e-5)
    np.testing.assert_allclose(np.hypot(out[0, 0, :, 0], out[2, 0, :, 0]),
                               np.hypot(rel[0, :, 0], rel[0, :, 2]), atol=1e-5)


@needs_raw
def test_agcn_recipe_geometry():
    skel = read_skeleton_file(sample(1))
    out, length = preprocess_skeleton(skel, PRESETS["agcn"])
    assert out.shape == (3, 300, 25, 2) and length == skel.num_frames
    np.testing.assert_allclose(out[:, :, 1, 0], 0, atol=1e-6)  # centred on joint 2 of body 0
    # null frames filled: frame T repeats frame 0 (before centring/rotation they were equal too)
    np.testing.assert_allclose(out[:, skel.num_frames], out[:, 0], atol=1e-6)
    shoulders = out[:, 0, 8, 0] - out[:, 0, 4, 0]
    np.testing.assert_allclose(shoulders / np.linalg.norm(shoulders), [1, 0, 0], atol=1e-5)
    assert np.abs(out[..., 1]).sum() == 0  # one performer


# ---------------------------------------------------------------------------------------------- geometry


def test_resample_linear_hand_values():
    seq = np.array([0.0, 10.0, 20.0, 30.0])
    # length 2: positions (i + 0.5) * 2 - 0.5 = 0.5, 2.5
    np.testing.assert_allclose(resample_linear(seq, 2), [5.0, 25.0])
    # length 8: positions (i + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, ..., 3.25 (clamped to 3)
    np.testing.assert_allclose(resample_linear(seq, 8), [0, 2.5, 7.5, 12.5, 17.5, 22.5, 27.5, 30])


def test_align_shoulders_per_frame_hand_case():
    body = np.zeros((1, 1, 25, 3), dtype=np.float32)
    body[0, 0, 4] = [0, 0, 0]
    body[0, 0, 8] = [0, 1, 1]  # right shoulder straight behind (z): a 90-degree turn about y
    body[0, 0, 0] = [1, 2, 0]
    out = align_shoulders_per_frame(body)
    np.testing.assert_allclose(out[0, 0, 8], [1, 1, 0], atol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0], [0, 2, -1], atol=1e-6)


# ---------------------------------------------------------------------------------------------- splits


def test_split_rules_on_names():
    names = ["S001C001P001R001A001", "S002C002P003R001A002", "S003C003P038R002A003"]
    splits = ntu_splits(names, "ntu60")
    assert splits["xsub"]["train"].tolist() == [0, 2]
    assert splits["xview"]["train"].tolist() == [1, 2]
    splits = ntu_splits(["S018C001P045R001A061", "S019C001P044R001A100"], "ntu120")
    assert splits["xsub"]["train"].tolist() == [0] and splits["xset"]["train"].tolist() == [0]


@needs_meta
@pytest.mark.parametrize("dataset,counts", [
    ("ntu60", {"xsub": (40091, 16487), "xview": (37646, 18932)}),
    ("ntu120", {"xsub": (63026, 50919), "xset": (54468, 59477)}),
])
def test_splits_match_official_statistics(dataset, counts):
    stats = META / f"{dataset}_statistics"
    names = (stats / "skes_available_name.txt").read_text().split()
    performer = np.loadtxt(stats / "performer.txt", dtype=np.int64)
    camera = np.loadtxt(stats / "camera.txt", dtype=np.int64)
    setup = np.loadtxt(stats / "setup.txt", dtype=np.int64)
    label = np.loadtxt(stats / "label.txt", dtype=np.int64)
    ids = [parse_sample_name(n) for n in names[:2000]]
    assert [i.performer for i in ids] == performer[:2000].tolist()
    assert [i.action for i in ids] == label[:2000].tolist()
    splits = ntu_splits(names, dataset)
    for split, (n_train, n_test) in counts.items():
        assert (len(splits[split]["train"]), len(splits[split]["test"])) == (n_train, n_test)
    train = np.zeros(len(names), bool)
    train[splits["xsub"]["train"]] = True
    if dataset == "ntu60":
        np.testing.assert_array_equal(train, np.isin(performer, list(NTU60_XSUB_TRAIN_PERFORMERS)))
        view = np.zeros(len(names), bool)
        view[splits["xview"]["train"]] = True
        np.testing.assert_array_equal(view, camera != 1)
    else:
        xset = np.zeros(len(names), bool)
        xset[splits["xset"]["train"]] = True
        np.testing.assert_array_equal(xset, setup % 2 == 0)


# ---------------------------------------------------------------------------------------------- pipeline


@needs_raw
def test_prepare_ntu60_end_to_end(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for action in (1, 24, 50):
        (raw / sample(action).name).symlink_to(sample(action))
    exclude = tmp_path / "missing.txt"
    exclude.write_text("header line\nS001C001P001R001A024\n")
    report = prepare_ntu(raw, tmp_path / "out", "ntu60", PRESETS["aimclr"], exclude_list=exclude,
                         workers=2, progress=False)
    meta = load_meta(tmp_path / "out")
    assert meta.sample_names == ["S001C001P001R001A001", "S001C001P001R001A050"]
    assert meta.labels.tolist() == [0, 49] and meta.class_names[49] == "punching/slapping other person"
    assert open_data(tmp_path / "out").shape == (2, 3, 50, 25, 2)
    assert open_data(tmp_path / "out", "source_frames").tolist() == [103, 74]
    assert report.skipped == [{"file": "S001C001P001R001A024.skeleton", "reason": "in the exclude list"}]
    assert meta.splits["xview"]["test"].tolist() == [0, 1]
    assert meta.provenance["recipe"]["frames"] == 50


# ---------------------------------------------------------------------------------------------- bad input


def _body(values: str = "0.1 0.2 3.0", joints: int = 25) -> list[str]:
    return ["72057594037931768 0 1 1 0 0 0 0.1 0.1 2", str(joints)] + \
           [f"{values} 1 2 3 4 0 0 0 0 2"] * joints


def _write(path: Path, frames: list[list[list[str]]], count: int | None = None) -> Path:
    lines = [str(len(frames) if count is None else count)]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body in bodies:
            lines.extend(body)
    path.write_text("\n".join(lines) + "\n")
    return path


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, int, str]]:
    good = [[_body()]] * 3
    cases = {}
    p = _write(tmp_path / "S001C001P001R001A001.skeleton", good)
    p.write_text("\n".join(p.read_text().split("\n")[:40]))  # cut inside frame 2
    cases["truncated"] = (p, 41, "truncated")
    cases["joints"] = (_write(tmp_path / "S001C001P001R001A002.skeleton", [[_body()], [_body(joints=20)]]),
                       32, "wrong joint count 20")
    cases["text"] = (_write(tmp_path / "S001C001P001R001A003.skeleton", [[_body()], [_body("0.1 abc 3")]]),
                     33, "non-numeric")
    cases["empty"] = (_write(tmp_path / "S001C001P001R001A004.skeleton", [], count=0), 1, "empty sequence")
    cases["nan"] = (_write(tmp_path / "S001C001P001R001A005.skeleton", [[_body()], [_body("nan 0 1")]]),
                    33, "NaN")
    return cases


@pytest.mark.parametrize("case", ["truncated", "joints", "text", "empty", "nan"])
def test_bad_input_names_file_line_problem(tmp_path, case):
    path, line, words = bad_files(tmp_path)[case]
    with pytest.raises(BadInputError) as info:
        read_skeleton_file(path)
    assert info.value.line == line and words in info.value.problem
    assert path.name in str(info.value) and f":{line}:" in str(info.value)


def test_prepare_stops_on_bad_input_and_leaves_nothing(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    bad_files(raw)
    with pytest.raises(BadInputError):
        prepare_ntu(raw, tmp_path / "out", "ntu60", PRESETS["aimclr"], workers=1, progress=False)
    assert not (tmp_path / "out").exists() and not staging_left(tmp_path)


def test_skip_bad_reports_every_file_and_missing_skeletons(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    cases = bad_files(raw)
    _write(raw / "S001C001P001R001A006.skeleton", [[], []])  # frames without a body: missing skeleton
    _write(raw / "S001C002P001R001A007.skeleton", [[_body()]] * 4)
    stale = tmp_path / ".out.k1ll3d.partial"  # left over by an interrupted run: the rerun finishes, removes it
    stale.mkdir()
    (stale / "data.npy").write_bytes(b"half")
    (tmp_path / "out.partial").mkdir()  # a folder of the user's with that name is not skelssl's to touch
    report = prepare_ntu(raw, tmp_path / "out", "ntu60", PRESETS["aimclr"], skip_bad=True, workers=2,
                         progress=False)
    assert report.samples == 1
    skipped = json.loads((tmp_path / "out" / "skipped.json").read_text())
    assert skipped == report.skipped
    by_file = {item["file"]: item for item in skipped}
    assert set(by_file) == {p.name for p, _, _ in cases.values()} | {"S001C001P001R001A006.skeleton"}
    assert by_file["S001C001P001R001A006.skeleton"]["reason"].startswith("missing skeleton")
    assert by_file[cases["joints"][0].name]["line"] == 32
    assert load_meta(tmp_path / "out").sample_names == ["S001C002P001R001A007"]
    assert open_data(tmp_path / "out").shape[0] == 1
    assert not staging_left(tmp_path) and (tmp_path / "out.partial").is_dir()


def test_recipe_rejects_bad_options():
    with pytest.raises(Exception):
        NtuRecipe(bodies=3, read_bodies=2)
    with pytest.raises(Exception):
        recipe_from_preset("nope")
