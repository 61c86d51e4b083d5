"""`skelssl prepare custom` end to end: normalised by default, every input problem a UserError naming the
file, `skelssl info` showing what was done, warning on un-normalised data and printing the raw 1-NN."""

from __future__ import annotations

import contextlib
import json
import signal

import numpy as np
import pytest

from skelssl.cli import main as cli_main
from skelssl.data.custom import prepare_custom
from skelssl.data.normalize import OFF, NormalizeOptions
from skelssl.data.prepared import load_meta, open_data
from skelssl.data.sensor_like import keypoints_2d, save_recordings, sensor_recordings
from skelssl.errors import UserError
from skelssl.skeleton.layouts import COCO17, KINECT20, NTU25

from tests.data.test_custom_normalize import upright_body
from tests.conftest import snapshot, staging_left, write_earlier_dataset


@pytest.fixture(scope="module")
def sensor(tmp_path_factory):
    """24 sensor-like recordings (2 per class, 2 subjects), saved as a user would."""
    rec = sensor_recordings(per_subject=1, num_subjects=2, num_train_subjects=1)
    return rec, save_recordings(rec, tmp_path_factory.mktemp("rec") / "sensor")


def test_sensor_like_recordings_look_like_a_sensor(sensor):
    rec, _ = sensor
    data, lengths = rec["data"], rec["lengths"]
    spine_base_z = data[:, 2, :, 0, 0]
    first = np.array([np.flatnonzero(np.abs(data[i, :, :, :, 0]).sum((0, 2)) > 0)[0] for i in range(len(data))])
    depth = spine_base_z[np.arange(len(data)), first]
    assert 1.9 < depth.min() and depth.max() < 4.1  # 2-4 m away
    for i in range(len(data)):  # zero after the recording's length
        assert np.abs(data[i, :, lengths[i]:]).sum() == 0 and np.abs(data[i, :, lengths[i] - 1]).sum() > 0
    assert len(set(lengths.tolist())) > 10 and data.shape[2] == lengths.max()


def test_defaults_normalise_sensor_recordings(sensor, tmp_path):
    rec, path = sensor
    report = prepare_custom(path, "ntu25", tmp_path / "out", class_names=path.with_name("sensor_classes.txt"))
    data, meta = open_data(tmp_path / "out"), load_meta(tmp_path / "out")
    assert data.shape == (24, 3, 50, 25, 2) and meta.lengths.tolist() == [50] * 24
    steps = meta.provenance["normalization"]
    assert steps["center"] == "first_frame" and steps["center_joint"] == "spine_shoulder"
    assert steps["align"] == "first_frame" and steps["temporal"] == "resample" and steps["frames"] == 50
    assert any("views aligned" in note for note in report.notes)
    # The geometry on the first valid frame, kept as it is (resampling moves frame 0 a little).
    prepare_custom(path, "ntu25", tmp_path / "pad", normalization=NormalizeOptions(temporal="pad", frames=130))
    first = open_data(tmp_path / "pad")[:, :, 0, :, 0]  # (N, 3, V) first valid frame of person 0
    np.testing.assert_allclose(first[:, :, 20], 0, atol=1e-5)  # centre joint at the origin
    spine = (first[:, :, 4] + first[:, :, 8]) / 2 - (first[:, :, 12] + first[:, :, 16]) / 2
    hips = first[:, :, 16] - first[:, :, 12]
    np.testing.assert_allclose(spine[:, [0, 2]], 0, atol=1e-5)  # spine along +y
    assert (spine[:, 1] > 0).all()
    np.testing.assert_allclose(hips[:, 2], 0, atol=1e-5)  # hip line in the x-y plane, towards +x
    assert (hips[:, 0] > 0).all()
    lead = np.array([np.flatnonzero(np.abs(rec["data"][i]).sum((0, 2, 3)) > 0)[0] for i in range(24)])
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "source_frames.npy"), rec["lengths"] - lead)
    assert meta.class_names[:2] == ["wave_right", "wave_left"]
    assert meta.splits["default"]["train"].tolist() == list(range(12))


def test_off_stores_the_arrays_as_given(sensor, tmp_path):
    rec, path = sensor
    prepare_custom(path, NTU25, tmp_path / "raw", normalization=OFF)
    np.testing.assert_array_equal(open_data(tmp_path / "raw"), rec["data"])
    assert load_meta(tmp_path / "raw").lengths.tolist() == rec["lengths"].tolist()


def test_given_lengths_cut_the_recordings(tmp_path):
    data = np.zeros((2, 6, 20, 3), np.float32)
    data[:, :, :, 1] = 1.0
    data[:, :, 0] = [0.0, 0.0, 3.0]  # a non-zero tail the user says is not part of the recording
    np.savez(tmp_path / "a.npz", data=data, labels=[0, 1], lengths=[4, 6])
    prepare_custom(tmp_path / "a.npz", KINECT20, tmp_path / "out", normalization=OFF)
    assert load_meta(tmp_path / "out").lengths.tolist() == [4, 6]
    out = open_data(tmp_path / "out")
    assert out.shape[2] == 6 and np.abs(out[0, :, 4:]).sum() == 0 and np.abs(out[1, :, 5]).sum() > 0
    np.savez(tmp_path / "b.npz", data=data, labels=[0, 1], lengths=[4, 7])
    with pytest.raises(UserError, match=r"b.npz \(array 'lengths'\): length of sample 1 is 7; lengths must be 1..6"):
        prepare_custom(tmp_path / "b.npz", KINECT20, tmp_path / "out2")


def test_2d_keypoints_with_score(tmp_path):
    # One COCO-17 recording in pixels: the torso (mid-hips to mid-shoulders) is 80 px; the nose (centre) at
    # (300, 100) in frame 0; the score must come through untouched.
    body = np.column_stack([np.arange(17) + 290.0, np.arange(17) + 150.0])
    body[[11, 12, 5, 6]] = [[280, 280], [320, 280], [270, 200], [330, 200]]
    body[0] = [300, 100]
    frames = np.stack([body, body + [8, 0], body + [16, 0]])
    score = np.linspace(0.1, 0.9, 3 * 17).reshape(3, 17)
    seq = np.concatenate([frames, score[..., None]], axis=-1)  # (3, 17, 3)
    data = np.stack([seq, seq * 0.5])  # (2, 3, 17, 3)
    np.savez(tmp_path / "video.npz", data=data, labels=["walk", "jump"])
    prepare_custom(tmp_path / "video.npz", "coco17", tmp_path / "out", channels="xy-score",
                   normalization=NormalizeOptions(frames=3))
    out, meta = open_data(tmp_path / "out"), load_meta(tmp_path / "out")
    assert meta.channel_names == ["x", "y", "score"] and meta.class_names == ["jump", "walk"]
    assert meta.labels.tolist() == [1, 0] and meta.layout.name == "coco17"
    steps = meta.provenance["normalization"]
    assert steps["align"] == "none" and steps["scale"] == "body" and steps["coordinates"] == 2
    np.testing.assert_allclose(out[0, 2, :, :, 0], score, atol=1e-6)
    np.testing.assert_allclose(out[0, :2, 0, :, 0].T, (body - [300, 100]) / 80, atol=1e-5)
    np.testing.assert_allclose(out[0, 0, 2, 0, 0], 16 / 80, atol=1e-6)
    # the half-size copy: same coordinates after unit torso scaling
    np.testing.assert_allclose(out[1, :2], out[0, :2], atol=1e-5)


def test_a_folder_of_recordings_with_a_labels_csv(tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, frames in (("a", 7), ("b", 12), ("c", 30)):
        np.save(folder / f"{name}.npy", (upright_body(rng.normal(size=3))[None].repeat(frames, 0)
                                         + rng.normal(0, 0.01, (frames, 5, 3))).astype(np.float32)[:, [0, 1, 2, 3, 4] * 4])
    (tmp_path / "labels.csv").write_text("file,label,split\na.npy,wave,train\nb,kick,test\nc,wave,train\n")
    layout = tmp_path / "l20.yaml"
    layout.write_text(json.dumps(KINECT20.to_dict() | {"name": "k20copy"}))
    prepare_custom(folder, layout, tmp_path / "out", labels=tmp_path / "labels.csv",
                   normalization=NormalizeOptions(temporal="pad", frames=0, align="none"))
    meta = load_meta(tmp_path / "out")
    assert open_data(tmp_path / "out").shape == (3, 3, 30, 20, 1)
    assert meta.lengths.tolist() == [7, 12, 30] and meta.sample_names == ["a", "b", "c"]
    assert meta.class_names == ["kick", "wave"] and meta.labels.tolist() == [1, 0, 1]
    assert meta.splits["default"]["test"].tolist() == [1]
    (tmp_path / "labels.csv").write_text("a,wave\nb,kick\n")
    with pytest.raises(UserError, match=r"c.npy: no line for it in .*labels.csv"):
        prepare_custom(folder, layout, tmp_path / "out2", labels=tmp_path / "labels.csv")


def test_bad_recordings_are_named_and_skip_bad_leaves_them_out(tmp_path):
    data = np.tile(upright_body()[:, :2], (4, 5, 4, 1))[:, :, :20].astype(np.float32)  # (4, 5, 20, 2)
    data[1] = 0  # no skeleton at all
    data[2, 3, 7, 1] = np.nan
    np.savez(tmp_path / "r.npz", data=data, labels=[0, 1, 2, 3], split=[1, 1, 0, 0])
    write_earlier_dataset(tmp_path / "out")
    earlier = snapshot(tmp_path / "out")
    with pytest.raises(UserError, match=r"r.npz \(array 'data'\): sample 1: no skeleton in any frame"):
        prepare_custom(tmp_path / "r.npz", KINECT20, tmp_path / "out")
    data[1] = data[0]
    np.savez(tmp_path / "r2.npz", data=data, labels=[0, 1, 2, 3])
    with pytest.raises(UserError, match=r"sample 2: NaN .* at frame 3, person 0, joint 7"):
        prepare_custom(tmp_path / "r2.npz", KINECT20, tmp_path / "out")
    assert snapshot(tmp_path / "out") == earlier  # untouched
    assert not staging_left(tmp_path)
    data[1] = 0
    np.savez(tmp_path / "r3.npz", data=data, labels=[0, 1, 2, 3], split=[1, 1, 0, 0])
    report = prepare_custom(tmp_path / "r3.npz", KINECT20, tmp_path / "out", skip_bad=True)
    meta = load_meta(tmp_path / "out")
    assert report.samples == 2 and meta.labels.tolist() == [0, 3]
    assert meta.splits["default"]["train"].tolist() == [0] and meta.splits["default"]["test"].tolist() == [1]
    skipped = json.loads((tmp_path / "out" / "skipped.json").read_text())
    assert [s["sample"] for s in skipped] == [1, 2]


@contextlib.contextmanager
def time_limit(seconds: int):
    """Fail (instead of hanging the suite) when the body runs longer than `seconds` (Unix: SIGALRM)."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_label_of_ten_to_the_twelve_is_refused_at_once(tmp_path):
    np.save(tmp_path / "d.npy", np.ones((3, 4, 20, 3), np.float32))
    np.save(tmp_path / "l.npy", np.array([0, 10**12, 1]))
    with time_limit(5), pytest.raises(UserError, match=r"l.npy: label 1000000000000 of sample 1 would make"):
        prepare_custom(tmp_path / "d.npy", KINECT20, tmp_path / "out", labels=tmp_path / "l.npy")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli_main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_info_shows_the_steps_warns_and_prints_the_baseline(sensor, tmp_path, capsys):
    _, path = sensor
    code, out, _ = run_cli(capsys, "prepare", "custom", "--arrays", str(path), "--layout", "ntu25",
                           "--out", str(tmp_path / "raw"), "--normalize", "off")
    assert code == 0
    code, out, _ = run_cli(capsys, "info", str(tmp_path / "raw"))
    assert code == 0 and "normalisation: valid frames: from frame 0; centre: none; align: none" in out
    assert "warning: the skeletons sit far from the origin" in out and "--center first_frame" in out
    # The baseline on a dataset whose answer is known: test samples are exact copies of train samples
    # with the same labels, except one whose label differs: 1-NN gets 3 of 4.
    rng = np.random.default_rng(1)
    train = rng.normal(size=(4, 6, 20, 3)).astype(np.float32)
    np.savez(tmp_path / "k.npz", data=np.concatenate([train, train]), labels=[0, 1, 2, 3, 0, 1, 2, 0],
             split=["train"] * 4 + ["test"] * 4)
    assert run_cli(capsys, "prepare", "custom", "--arrays", str(tmp_path / "k.npz"), "--layout", "kinect20",
                   "--out", str(tmp_path / "k"), "--normalize", "off")[0] == 0
    code, out, _ = run_cli(capsys, "info", str(tmp_path / "k"), "--baseline")
    assert code == 0 and "split default: 75.0 % (4 train, 4 test)" in out


def test_cli_reports_bad_options_and_files(tmp_path, capsys):
    np.save(tmp_path / "d.npy", np.ones((3, 4, 20, 3), np.complex64))
    np.save(tmp_path / "l.npy", np.array([0, 1, 1]))
    code, _, err = run_cli(capsys, "prepare", "custom", "--arrays", str(tmp_path / "d.npy"), "--layout",
                           "kinect20", "--labels", str(tmp_path / "l.npy"), "--out", str(tmp_path / "o"))
    assert code == 2 and "d.npy: the skeletons hold complex numbers" in err
    np.save(tmp_path / "d.npy", np.ones((3, 4, 20, 3), np.float32))
    code, _, err = run_cli(capsys, "prepare", "custom", "--arrays", str(tmp_path / "d.npy"), "--layout",
                           "kinect20", "--labels", str(tmp_path / "l.npy"), "--out", str(tmp_path / "o"),
                           "--center-joint", "nose")
    assert code == 2 and "layout 'kinect20' has no joint 'nose'" in err
    (tmp_path / "bad.yaml").write_text("name: [broken\n  joints: {")
    code, _, err = run_cli(capsys, "prepare", "custom", "--arrays", str(tmp_path / "d.npy"), "--layout",
                           str(tmp_path / "bad.yaml"), "--labels", str(tmp_path / "l.npy"), "--out",
                           str(tmp_path / "o"))
    assert code == 2 and f"{tmp_path / 'bad.yaml'}:2:9: not a readable layout YAML" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_pretrain_warns_on_unnormalised_data(sensor, tmp_path, capsys):
    from skelssl.train import warn_if_unnormalised

    _, path = sensor
    prepare_custom(path, NTU25, tmp_path / "raw", normalization=OFF)
    prepare_custom(path, NTU25, tmp_path / "norm")
    warn_if_unnormalised(tmp_path / "raw")
    assert "sit far from the origin" in capsys.readouterr().err
    warn_if_unnormalised(tmp_path / "norm")
    assert capsys.readouterr().err == ""


def test_2d_run_end_to_end(tmp_path, capsys):
    """COCO-17 (x, y, score) keypoints of our own making -> prepare -> pretrain SkeletonCLR -> evaluate."""
    from tests.conftest import tiny_overrides

    rec = keypoints_2d(per_subject=1, num_subjects=3, num_train_subjects=2)
    path = save_recordings(rec, tmp_path / "video")
    assert COCO17.num_joints == rec["data"].shape[3] == 17
    assert run_cli(capsys, "prepare", "custom", "--arrays", str(path), "--layout", "coco17", "--channels",
                   "xy-score", "--frames", "16", "--out", str(tmp_path / "prep"))[0] == 0
    code, out, _ = run_cli(capsys, "info", str(tmp_path / "prep"), "--baseline")
    assert code == 0 and "channels: x, y, score" in out and "warning" not in out
    overrides = tiny_overrides(tmp_path / "prep", tmp_path / "run", **{"data.split": "default",
                                                                        "trainer.batch_size": 6})
    code, _, err = run_cli(capsys, "pretrain", "--method", "skeletonclr", *overrides)
    assert code == 0, err
    import torch

    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    info = ckpt["hyper_parameters"]["train_data_info"]
    assert info["channels"] == 3 and info["channel_names"] == ["x", "y", "score"]
    code, out, err = run_cli(capsys, "evaluate", "knn", "--checkpoint", str(tmp_path / "run" / "checkpoints" /
                                                                          "last.ckpt"))
    assert code == 0, err
    assert "1nn" in out.lower() or "knn" in out.lower()


def test_baseline_uses_the_coordinates_not_the_score(tmp_path):
    from skelssl.data.prepared import PreparedMeta, write_prepared
    from skelssl.evaluation.baseline import coordinate_1nn

    rng = np.random.default_rng(2)
    data = np.zeros((4, 3, 5, 17, 1), np.float32)
    data[:2, :2] = rng.normal(size=(2, 2, 5, 17, 1))
    data[:2, 2] = rng.uniform(0, 1, (2, 5, 17, 1))
    data[2:, :2] = data[:2, :2]  # test coordinates = train coordinates, same labels...
    data[2, 2], data[3, 2] = data[1, 2] * 100, data[0, 2] * 100  # ...but each score is the other class's
    meta = PreparedMeta(dataset="d", layout=COCO17, class_names=["a", "b"], labels=np.array([0, 1, 0, 1]),
                        lengths=np.full(4, 5), sample_names=list("pqrs"),
                        splits={"s": {"train": np.array([0, 1]), "test": np.array([2, 3])}},
                        channel_names=["x", "y", "score"])
    write_prepared(tmp_path / "p", data, meta)
    assert coordinate_1nn(tmp_path / "p")["s"]["accuracy"] == 1.0
    meta.channel_names = []  # read as (x, y, z): the "z" decides
    write_prepared(tmp_path / "q", data, meta)
    assert coordinate_1nn(tmp_path / "q")["s"]["accuracy"] == 0.0
