"""SBU Kinect Interaction reader: the README's de-normalisation by hand, two people, the 5 folds, bad input named
by file and line; on the real data (SKELSSL_SBU or ../shared/data/sbu) the counts and the class order checked
against what each interaction does."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from skelssl.data.prepared import BadInputError, load_meta, open_data
from skelssl.data.sbu import SBU_FOLDS, prepare_sbu, read_sbu_file
from skelssl.errors import UserError

REAL = Path(os.environ.get("SKELSSL_SBU", Path(__file__).resolve().parents[3] / "shared" / "data" / "sbu"))


def _line(frame: int, person_a: tuple[float, float, float], person_b: tuple[float, float, float]) -> str:
    values = [frame] + [v for _ in range(15) for v in person_a] + [v for _ in range(15) for v in person_b]
    return ",".join(str(v) for v in values) + "\n"


def _write(raw: Path, pair: str, label: int, take: int, lines: list[str]) -> Path:
    folder = raw / pair / f"{label:02d}" / f"{take:03d}"
    folder.mkdir(parents=True)
    (folder / "skeleton_pos.txt").write_text("".join(lines))
    return folder / "skeleton_pos.txt"


def test_denormalised_to_metres_by_the_readme_formula(tmp_path):
    path = _write(tmp_path, "s01s02", 1, 1, [_line(1, (0.25, 0.5, 1.5625), (0.75, 0.25, 2.0))])
    joints = read_sbu_file(path)
    assert joints.shape == (1, 2, 15, 3)
    # X = 1280 - 2560 x, Y = 960 - 1920 y, Z = 10000 z / 7.8125, in mm -> m
    np.testing.assert_allclose(joints[0, 0, 4], [0.64, 0.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(joints[0, 1, 4], [-0.64, 0.48, 2.56], atol=1e-6)


def test_folds_two_people_and_centring(tmp_path):
    raw = tmp_path / "SBU"
    _write(raw, "s01s02", 1, 1, [_line(1, (0.25, 0.5, 1.5625), (0.75, 0.5, 1.5625)),
                                  _line(2, (0.375, 0.5, 1.5625), (0.75, 0.5, 1.5625))])  # A walks to B
    _write(raw, "s02s03", 6, 1, [_line(1, (0.5, 0.5, 1.5), (0.5, 0.5, 1.5))] * 3)
    _write(raw, "s04s06", 8, 2, [_line(1, (0.5, 0.5, 1.5), (0.5, 0.5, 1.5))] * 3)
    prepare_sbu(raw, tmp_path / "sbu", frames=2, workers=1, progress=False)
    meta = load_meta(tmp_path / "sbu")
    data = open_data(tmp_path / "sbu")
    assert meta.sample_names == ["s01s02_01_001", "s02s03_06_001", "s04s06_08_002"]
    assert meta.labels.tolist() == [0, 5, 7] and meta.layout.name == "sbu15" and data.shape == (3, 3, 2, 15, 2)
    # s01s02 is in fold 1, s02s03 in fold 2, s04s06 in fold 5
    assert meta.splits["fold1"]["test"].tolist() == [0] and meta.splits["fold1"]["train"].tolist() == [1, 2]
    assert meta.splits["fold2"]["test"].tolist() == [1] and meta.splits["fold5"]["test"].tolist() == [2]
    assert meta.splits["fold3"]["test"].tolist() == [] and meta.splits["fold3"]["train"].tolist() == [0, 1, 2]
    # one origin, person 1's first torso: A starts at 0 and moves -0.32 m in X, B stays 1.28 m away
    np.testing.assert_allclose(data[0, 0, :, 2, 0], [0.0, -0.32], atol=1e-6)
    np.testing.assert_allclose(data[0, 0, :, 2, 1], [-1.28, -1.28], atol=1e-6)


def test_bad_lines_and_folders_are_named(tmp_path):
    path = _write(tmp_path, "s01s02", 1, 1, ["1,0.5,0.5\n"])
    with pytest.raises(BadInputError, match=r"skeleton_pos.txt:1: 3 values, expected 91"):
        read_sbu_file(path)
    path.write_text(_line(1, (0.5, 0.5, 1.5), (0.5, 0.5, 1.5)).replace("0.5", "nan", 1))
    with pytest.raises(BadInputError, match=r"skeleton_pos.txt:1: NaN, infinite or out-of-range"):
        read_sbu_file(path)
    _write(tmp_path, "s09s09", 1, 1, [_line(1, (0.5, 0.5, 1.5), (0.5, 0.5, 1.5))])
    with pytest.raises(UserError, match=r"set s09s09 is in none of the 5 folds"):
        prepare_sbu(tmp_path, tmp_path / "out", frames=2, workers=1, progress=False)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"SBU Kinect Interaction data not found at {REAL}")
def test_real_sbu_counts_and_what_each_class_does(tmp_path):
    prepare_sbu(REAL, tmp_path / "sbu", frames=20, workers=2, progress=False)
    meta = load_meta(tmp_path / "sbu")
    assert len(meta.labels) == 282 and np.bincount(meta.labels).tolist() == [42, 43, 40, 41, 18, 21, 39, 38]
    assert sum(len(meta.splits[f"fold{k}"]["test"]) for k in range(1, 6)) == 282
    assert {name[:6] for name in meta.sample_names} == {s for fold in SBU_FOLDS for s in fold}

    def per_class(measure):
        values = {}
        for path in sorted(REAL.rglob("skeleton_pos.txt")):
            values.setdefault(int(path.parent.parent.name), []).append(measure(read_sbu_file(path)))
        return {label: float(np.mean(v)) for label, v in values.items()}

    torsos = lambda s: np.linalg.norm(s[:, 0, 2] - s[:, 1, 2], axis=-1)  # noqa: E731
    closing = per_class(lambda s: torsos(s)[-1] - torsos(s)[0])
    assert closing[1] < -0.5 and closing[2] > 0.5  # approaching, departing
    nearest = per_class(lambda s: torsos(s).min())
    assert min(nearest, key=nearest.get) == 6  # hugging: the torsos closest
    foot_rise = per_class(lambda s: max(np.ptp(s[:, m, [11, 14], 1], axis=0).max() for m in (0, 1)))
    assert max(foot_rise, key=foot_rise.get) == 3  # kicking
    hands_together = per_class(lambda s: (np.linalg.norm(s[:, 0, [5, 8]][:, :, None] - s[:, 1, [5, 8]][:, None],
                                                         axis=-1).min(axis=(1, 2)) < 0.15).mean())
    assert max(hands_together, key=hands_together.get) == 5  # shaking hands
    first = read_sbu_file(REAL / "s01s02" / "01" / "001" / "skeleton_pos.txt")
    assert (first[:, :, 0, 1] > first[:, :, 2, 1]).all() and (first[:, :, 2, 1] > first[:, :, 11, 1]).all()
