"""PKU-MMD (real sample + labels written here), custom arrays and the foreign-format readers."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from skelssl.data.custom import prepare_custom
from skelssl.data.normalize import OFF
from skelssl.data.formats import convert_aimclr, convert_ctrgcn, convert_pyskl
from skelssl.data.pkummd import prepare_pkummd, read_pku_labels
from skelssl.cli import main as cli_main
from skelssl.data.prepare_cli import main
from skelssl.data.prepared import BadInputError, load_meta, open_data
from skelssl.errors import UserError
from skelssl.skeleton.layouts import KINECT20

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
PKU = SHARED / "pkummd_sample" / "A10N08-L.txt"


@pytest.fixture
def pku_dirs(tmp_path):
    if not PKU.is_file():
        pytest.skip(f"PKU-MMD sample not found at {PKU}")
    raw, labels, split = tmp_path / "raw", tmp_path / "labels", tmp_path / "split"
    for d in (raw, labels, split):
        d.mkdir()
    (raw / PKU.name).symlink_to(PKU)
    (labels / PKU.name).write_text("3,10,59,1\n7,100,399,2\n")
    (split / "cross-subject.txt").write_text("Training videos:\nA10N08-L, A01N01-M\nValidataion videos:\n"
                                             "A10N08-M, A02N01-L\n")
    (split / "cross-view.txt").write_text("Training videos:\nA10N08-M\nValidataion videos:\nA10N08-L\n")
    return raw, labels, split


def test_pkummd_trimmed_and_untrimmed(pku_dirs, tmp_path):
    raw, labels, split = pku_dirs
    trimmed, untrimmed = prepare_pkummd(raw, labels, tmp_path / "out", part=2, split_dir=split,
                                        progress=False, recipe=None)  # camera coordinates, zero-padded
    text = PKU.read_text().splitlines()
    meta = load_meta(tmp_path / "out" / "trimmed")
    data = open_data(tmp_path / "out" / "trimmed")
    assert data.shape == (2, 3, 300, 25, 2) and meta.lengths.tolist() == [50, 300]
    assert meta.labels.tolist() == [2, 6] and meta.sample_names == ["A10N08-L_0", "A10N08-L_1"]
    # instance 0 starts at frame 10 (0-based): person 1, joint 4 = values 9..11 of line 11
    expected = [float(v) for v in text[10].split()[9:12]]
    np.testing.assert_allclose(data[0, :, 0, 3, 0], expected, atol=1e-6)
    expected = [float(v) for v in text[59].split()[75:78]]  # person 2, joint 1, last frame of instance 0
    np.testing.assert_allclose(data[0, :, 49, 0, 1], expected, atol=1e-6)
    assert np.abs(data[0, :, 50:]).sum() == 0
    assert meta.splits["xsub"]["train"].tolist() == [0, 1] and meta.splits["xview"]["test"].tolist() == [0, 1]
    full = load_meta(tmp_path / "out" / "untrimmed")
    frame_labels = open_data(tmp_path / "out" / "untrimmed", "frame_labels")
    assert full.lengths.tolist() == [len(text)] == [1040]
    assert frame_labels.shape == (1, 1040)
    assert (frame_labels[0, 10:60] == 3).all() and (frame_labels[0, 100:400] == 7).all()
    assert frame_labels[0, 9] == 0 and frame_labels[0, 60] == 0 and frame_labels[0, 400] == 0
    assert trimmed.samples == 2 and untrimmed.samples == 1


def test_pkummd_label_errors(pku_dirs, tmp_path):
    raw, labels, _ = pku_dirs
    (labels / PKU.name).write_text("3,10,59,1\n7,100,2000,2\n")
    with pytest.raises(BadInputError, match="ends at frame 2000"):
        prepare_pkummd(raw, labels, tmp_path / "out", part=2, progress=False)
    assert not (tmp_path / "out" / "trimmed").exists()
    bad = tmp_path / "bad.txt"
    bad.write_text("3,10,x,1\n")
    with pytest.raises(BadInputError) as info:
        read_pku_labels(bad)
    assert info.value.line == 1 and "non-numeric" in info.value.problem


# ---------------------------------------------------------------------------------------------- custom


def test_custom_ntvc_and_split(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(5, 8, 20, 3)).astype(np.float32)
    data[1, 6:] = 0  # sample 1 is 6 frames long
    np.savez(tmp_path / "mine.npz", data=data, labels=np.array([0, 1, 2, 1, 0]),
             split=np.array(["train", "train", "test", "train", "test"]))
    prepare_custom(tmp_path / "mine.npz", KINECT20, tmp_path / "out", normalization=OFF)  # as given
    meta = load_meta(tmp_path / "out")
    out = open_data(tmp_path / "out")
    assert out.shape == (5, 3, 8, 20, 1)
    np.testing.assert_allclose(out[3, :, 2, 7, 0], data[3, 2, 7])
    assert meta.lengths.tolist() == [8, 6, 8, 8, 8]
    assert meta.splits["default"]["test"].tolist() == [2, 4]
    with pytest.raises(UserError, match="21 joints per frame"):
        np.save(tmp_path / "bad.npy", np.zeros((2, 4, 21, 3), np.float32))
        np.save(tmp_path / "lab.npy", np.zeros(2, np.int64))
        prepare_custom(tmp_path / "bad.npy", KINECT20, tmp_path / "out2", labels=tmp_path / "lab.npy")


# ---------------------------------------------------------------------------------------------- formats


def test_aimclr_format_needs_trust(tmp_path):
    x = np.arange(2 * 3 * 4 * 25 * 2, dtype=np.float32).reshape(2, 3, 4, 25, 2)
    np.save(tmp_path / "train_position.npy", x)
    with open(tmp_path / "train_label.pkl", "wb") as f:
        pickle.dump((["S001C001P001R001A001.skeleton", "S001C001P001R001A002.skeleton"], [0, 1]), f)
    with pytest.raises(UserError, match="runs code"):
        convert_aimclr(tmp_path / "train_position.npy", tmp_path / "train_label.pkl", tmp_path / "out")
    assert main(["prepare", "convert", "--format", "aimclr", "--input", str(tmp_path / "train_position.npy"),
                 "--labels", str(tmp_path / "train_label.pkl"), "--out", str(tmp_path / "cli")]) == 2
    convert_aimclr(tmp_path / "train_position.npy", tmp_path / "train_label.pkl", tmp_path / "out",
                   trust_pickle=True)
    meta = load_meta(tmp_path / "out")
    np.testing.assert_array_equal(open_data(tmp_path / "out"), x)
    assert meta.sample_names == ["S001C001P001R001A001", "S001C001P001R001A002"]
    assert meta.labels.tolist() == [0, 1] and meta.lengths.tolist() == [4, 4]


def test_ctrgcn_npz(tmp_path):
    x_train = np.zeros((3, 6, 150), np.float32)
    x_train[0, :4] = np.arange(150)  # frame layout: person, joint, xyz
    y_train = np.eye(60)[[5, 0, 59]]
    np.savez(tmp_path / "NTU60_CS.npz", x_train=x_train, y_train=y_train, x_test=x_train[:1],
             y_test=np.eye(60)[[7]])
    convert_ctrgcn(tmp_path / "NTU60_CS.npz", tmp_path / "out")
    data = open_data(tmp_path / "out")
    meta = load_meta(tmp_path / "out")
    assert data.shape == (4, 3, 6, 25, 2) and meta.labels.tolist() == [5, 0, 59, 7]
    # person 2 (index 1), joint 3 (index 2), z = 75 + 2*3 + 2
    assert data[0, 2, 0, 2, 1] == 83 and data[0, 0, 0, 0, 0] == 0 and data[0, 1, 3, 0, 0] == 1
    assert meta.lengths.tolist()[:2] == [4, 0]
    assert meta.splits["default"]["test"].tolist() == [3]
    assert meta.class_names[5] == "pickup"


def test_pyskl_pickle(tmp_path):
    kp0 = np.random.default_rng(1).normal(size=(1, 5, 25, 3)).astype(np.float32)
    kp1 = np.random.default_rng(2).normal(size=(3, 7, 25, 3)).astype(np.float32)
    content = {"split": {"xsub_train": ["a"], "xsub_val": ["b"]},
               "annotations": [{"frame_dir": "a", "label": 1, "keypoint": kp0, "total_frames": 5},
                               {"frame_dir": "b", "label": 0, "keypoint": kp1, "total_frames": 7}]}
    with open(tmp_path / "ann.pkl", "wb") as f:
        pickle.dump(content, f)
    with pytest.raises(UserError, match="--trust-pickle"):
        convert_pyskl(tmp_path / "ann.pkl", tmp_path / "out")
    convert_pyskl(tmp_path / "ann.pkl", tmp_path / "out", trust_pickle=True)
    data = open_data(tmp_path / "out")
    meta = load_meta(tmp_path / "out")
    assert data.shape == (2, 3, 7, 25, 2)  # third person dropped
    np.testing.assert_allclose(data[1, :, 6, 4, 1], kp1[1, 6, 4])
    np.testing.assert_allclose(data[0, :, :5, :, 0], kp0[0].transpose(2, 0, 1))
    assert meta.splits == {"xsub": {"train": [0], "test": [1]}} or (
        meta.splits["xsub"]["train"].tolist() == [0] and meta.splits["xsub"]["test"].tolist() == [1])
    assert meta.lengths.tolist() == [5, 7]


def _static_pku_file(path: Path, frames: int = 40) -> np.ndarray:
    """A PKU-MMD skeleton file of one person standing still, shoulders along x (no rotation to apply): joint j
    at (j/10, 1 + j/20, 3 - j/50) metres; the second person absent (zeros). Returns the joints (25, 3)."""
    joints = np.stack([np.arange(25) / 10, 1 + np.arange(25) / 20, 3 - np.arange(25) / 50], axis=1)
    joints[8] = joints[4] + [0.4, 0.0, 0.0]  # right shoulder (9) - left shoulder (5): along +x, z = 0
    line = " ".join(f"{v:.6f}" for v in np.concatenate([joints.reshape(-1), np.zeros(75)]))
    path.write_text("\n".join([line] * frames) + "\n")
    return joints


def test_pkummd_is_prepared_with_the_ntu_aimclr_preset_by_default(tmp_path):
    """By hand: relative to the spine joint 21 (index 20), resampled to 50 frames, nothing to rotate: every frame
    holds joints - joints[20] for person 1 and zeros for the absent person 2; the recipe is recorded."""
    raw, labels = tmp_path / "raw", tmp_path / "labels"
    raw.mkdir(), labels.mkdir()
    joints = _static_pku_file(raw / "0001-L.txt")
    (labels / "0001-L.txt").write_text("5,3,22,1\n")  # a 20-frame instance
    prepare_pkummd(raw, labels, tmp_path / "out", part=1, progress=False)
    meta, data = load_meta(tmp_path / "out" / "trimmed"), open_data(tmp_path / "out" / "trimmed")
    assert data.shape == (1, 3, 50, 25, 2) and meta.lengths.tolist() == [50]
    expected = (joints - joints[20]).T  # (3, 25)
    for frame in (0, 17, 49):
        np.testing.assert_allclose(data[0, :, frame, :, 0], expected, atol=1e-5)
    assert np.abs(data[0, ..., 1]).max() == 0
    recipe = meta.provenance["recipe"]
    assert (recipe["center_joint"], recipe["frames"], recipe["align"]) == (21, 50, "shoulders_per_frame")
    untrimmed = open_data(tmp_path / "out" / "untrimmed")  # the segmentation input keeps camera coordinates
    np.testing.assert_allclose(untrimmed[0, :, 0, :, 0], joints.T, atol=1e-5)


def test_pkummd_preset_options_and_raw(tmp_path):
    raw, labels = tmp_path / "raw", tmp_path / "labels"
    raw.mkdir(), labels.mkdir()
    joints = _static_pku_file(raw / "0001-L.txt")
    (labels / "0001-L.txt").write_text("5,3,22,1\n")
    assert main(["prepare", "pkummd", "--raw", str(raw), "--labels", str(labels), "--part", "1", "--out",
                 str(tmp_path / "a"), "--center-joint", "2", "--frames", "30", "--no-progress"]) == 0
    data = open_data(tmp_path / "a" / "trimmed")
    assert data.shape[2] == 30
    np.testing.assert_allclose(data[0, :, 5, :, 0], (joints - joints[1]).T, atol=1e-5)
    assert main(["prepare", "pkummd", "--raw", str(raw), "--labels", str(labels), "--part", "1", "--out",
                 str(tmp_path / "r"), "--preset", "raw", "--no-progress"]) == 0
    data = open_data(tmp_path / "r" / "trimmed")
    assert data.shape == (1, 3, 20, 25, 2)
    np.testing.assert_allclose(data[0, :, 0, :, 0], joints.T, atol=1e-5)
    assert "recipe" not in load_meta(tmp_path / "r" / "trimmed").provenance


def test_the_real_pkummd_sample_prepared_as_ntu_is_centred_and_dense(tmp_path, capsys):
    """The real sample with three hand-written instances: camera coordinates zero-padded to the longest hold
    padding and un-centred skeletons (`info` warns); the aimclr preset gives 50 valid frames, centred."""
    if not PKU.is_file():
        pytest.skip(f"PKU-MMD sample not found at {PKU}")
    raw, labels = tmp_path / "raw", tmp_path / "labels"
    raw.mkdir(), labels.mkdir()
    (raw / PKU.name).symlink_to(PKU)
    (labels / PKU.name).write_text("3,10,59,1\n7,100,399,2\n12,500,619,1\n")
    for preset in ("raw", "aimclr"):
        assert main(["prepare", "pkummd", "--raw", str(raw), "--labels", str(labels), "--part", "1", "--out",
                     str(tmp_path / f"out-{preset}"), "--preset", preset, "--no-progress"]) == 0
    padded = load_meta(tmp_path / "out-raw" / "trimmed")
    padding = 1 - padded.lengths.sum() / (len(padded.lengths) * open_data(tmp_path / "out-raw" / "trimmed").shape[2])
    assert padding == pytest.approx(1 - (50 + 300 + 120) / 900)  # by hand: 430 of 900 frames are padding
    data = open_data(tmp_path / "out-aimclr" / "trimmed")
    assert load_meta(tmp_path / "out-aimclr" / "trimmed").lengths.tolist() == [50, 50, 50]
    # the 50-frame instance is not resampled: its spine joint at frame 0 is the origin; the resampled ones start
    # a fraction of a frame in (half-frame alignment), their spine joint within millimetres of it
    assert np.abs(data[0, :, 0, 20, 0]).max() < 1e-6 and np.abs(data[:, :, 0, 20, 0]).max() < 0.02
    capsys.readouterr()
    cli_main(["info", str(tmp_path / "out-raw" / "trimmed")])
    raw_info = capsys.readouterr().out
    cli_main(["info", str(tmp_path / "out-aimclr" / "trimmed")])
    prepared_info = capsys.readouterr().out
    assert "centre" in raw_info.lower() and "centre" not in prepared_info.lower(), (raw_info, prepared_info)
