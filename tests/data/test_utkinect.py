"""UTKinect-Action3D reader on hand-written files: instances cut by frame id, repeated ids, the cross-subject
split, NaN instances, and bad input named by file and line; on the real data when ../shared has it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from skelssl.data.prepared import BadInputError, load_meta, open_data
from skelssl.data.utkinect import prepare_utkinect, read_action_labels, read_utkinect_joints
from skelssl.errors import UserError

# the dataset's joints folder: $SKELSSL_UTKINECT, else ../shared/data/utkinect/joints
REAL = Path(os.environ.get("SKELSSL_UTKINECT", Path(__file__).resolve().parents[3] / "shared" / "data" / "utkinect"
                           / "joints"))


def _pose(frame_id: int) -> list[float]:
    """20 joints: joint j at (j, frame_id / 100, 2); spine (joint 1) at x = 1."""
    return [v for j in range(20) for v in (float(j), frame_id / 100.0, 2.0)]


def _write_recording(path: Path, ids: list[int]) -> None:
    path.write_text("".join(f"{i}  " + "  ".join(f"{v:.6f}" for v in _pose(i)) + "  \n" for i in ids))


def _raw(tmp_path: Path, labels: str) -> Path:
    raw = tmp_path / "joints"
    raw.mkdir()
    _write_recording(raw / "joints_s01_e01.txt", [10, 12, 12, 14, 16, 18, 20])  # id 12 twice
    _write_recording(raw / "joints_s02_e01.txt", [5, 7, 9, 11])
    (raw / "actionLabel.txt").write_text(labels)
    return raw


LABELS = "s01_e01\nwalk: 12 16\nsitDown: 18 20 \ns02_e01\nwalk: 5 9\ncarry:  NaN NaN\n\n"


def test_joints_keep_the_first_line_of_a_repeated_frame_id(tmp_path):
    raw = _raw(tmp_path, LABELS)
    ids, joints = read_utkinect_joints(raw / "joints_s01_e01.txt")
    assert ids.tolist() == [10, 12, 14, 16, 18, 20]
    assert joints.shape == (6, 20, 3) and joints[1, 3].tolist() == pytest.approx([3.0, 0.12, 2.0])


def test_instances_by_frame_id_cross_subject_and_unannotated(tmp_path):
    raw = _raw(tmp_path, LABELS)
    prepare_utkinect(raw, tmp_path / "ut", frames=5, workers=1, progress=False)
    meta = load_meta(tmp_path / "ut")
    data = open_data(tmp_path / "ut")
    assert meta.sample_names == ["s01_e01_walk", "s01_e01_sitDown", "s02_e01_walk"]
    assert meta.labels.tolist() == [0, 1, 0]
    assert meta.splits["xsub"]["train"].tolist() == [0, 1] and meta.splits["xsub"]["test"].tolist() == [2]
    assert meta.provenance["unannotated"] == ["s02_e01_carry"]
    source = open_data(tmp_path / "ut", "source_frames")
    assert source.tolist() == [3, 2, 3]  # ids 12, 14, 16 | 18, 20 | 5, 7, 9
    # centred on the first frame's spine (x 1, y = first id / 100, z 2), then 3 frames (y 0, 0.02, 0.04)
    # resampled to 5 at the half-frame positions (i + 0.5) * 3 / 5 - 0.5 = -0.2, 0.4, 1, 1.6, 2.2, clamped
    walk = data[0]  # (3, 5, 20, 1)
    assert walk.shape == (3, 5, 20, 1)
    np.testing.assert_allclose(walk[1, :, 7, 0], [0.0, 0.008, 0.02, 0.032, 0.04], atol=1e-6)
    np.testing.assert_allclose(walk[0, 0, :, 0], np.arange(20) - 1.0, atol=1e-6)
    np.testing.assert_allclose(walk[2], 0.0, atol=1e-6)


def test_bad_label_lines_and_empty_ranges_name_the_file_and_line(tmp_path):
    raw = _raw(tmp_path, "s01_e01\nwalk: 12\n")
    with pytest.raises(BadInputError, match=r"actionLabel.txt:2: .*'action: first last'"):
        read_action_labels(raw / "actionLabel.txt")
    (raw / "actionLabel.txt").write_text("s01_e01\njump: 12 14\n")
    with pytest.raises(BadInputError, match=r"actionLabel.txt:2: unknown action 'jump'"):
        read_action_labels(raw / "actionLabel.txt")
    (raw / "actionLabel.txt").write_text("s01_e01\nwalk: 16 12\n")
    with pytest.raises(BadInputError, match=r"actionLabel.txt:2: .*before the first"):
        read_action_labels(raw / "actionLabel.txt")
    (raw / "actionLabel.txt").write_text("s01_e01\nwalk: 30 40\n")  # no frame has an id there
    with pytest.raises(UserError, match=r"actionLabel.txt:2: no frame of joints_s01_e01.txt"):
        prepare_utkinect(raw, tmp_path / "none", frames=4, workers=1, progress=False)
    assert not (tmp_path / "none").exists()  # nothing half-written
    (raw / "actionLabel.txt").write_text("s03_e01\nwalk: 1 2\n")
    with pytest.raises(UserError, match="names s03_e01, but joints_s03_e01.txt is not in"):
        prepare_utkinect(raw, tmp_path / "gone", frames=4, workers=1, progress=False)


def test_decreasing_frame_ids_are_refused(tmp_path):
    raw = _raw(tmp_path, LABELS)
    _write_recording(raw / "joints_s02_e01.txt", [5, 9, 7])
    with pytest.raises(BadInputError, match=r"joints_s02_e01.txt:3: .*never decrease"):
        read_utkinect_joints(raw / "joints_s02_e01.txt")


@pytest.mark.skipif(not REAL.is_dir(), reason=f"UTKinect-Action3D joints not found at {REAL}")
def test_real_utkinect_199_instances_and_joint_order(tmp_path):
    prepare_utkinect(REAL, tmp_path / "ut", frames=20, workers=2, progress=False)
    meta = load_meta(tmp_path / "ut")
    assert len(meta.labels) == 199 and meta.provenance["unannotated"] == ["s10_e02_carry"]
    assert len(meta.splits["xsub"]["train"]) == 100 and len(meta.splits["xsub"]["test"]) == 99
    ids, joints = read_utkinect_joints(REAL / "joints_s01_e01.txt")
    head, feet = joints[:, 3, 1].mean(), joints[:, [15, 19], 1].mean()
    assert head > joints[:, 2, 1].mean() > feet  # head above the shoulder centre, above the feet
    assert joints[:, 4, 0].mean() < joints[:, 8, 0].mean()  # left shoulder at smaller x than the right
