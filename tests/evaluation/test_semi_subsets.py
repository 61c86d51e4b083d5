"""Semi-supervised label subsets: class-balanced, at least one per class, fixed per seed, saved and reused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skelssl.errors import UserError
from skelssl.evaluation.semi import class_balanced_subset, semi_subset, subset_file

# Classes of 100, 25, 3 and 1 samples, interleaved so that positions and classes differ.
SIZES = [100, 25, 3, 1]
LABELS = np.array(sum(([c] * n for c, n in enumerate(SIZES)), []))[np.random.default_rng(0).permutation(129)]
NAMES = [f"s{i:03d}" for i in range(len(LABELS))]


@pytest.mark.parametrize("percent, expected", [
    (1, [1, 1, 1, 1]),      # 1, 0.25, 0.03, 0.01 -> at least one each
    (5, [5, 1, 1, 1]),      # 1.25 -> 1
    (10, [10, 3, 1, 1]),    # 2.5 rounds half up to 3 (not to even); 0.3 -> at least one
    (20, [20, 5, 1, 1]),    # 0.6 -> 1
    (50, [50, 13, 2, 1]),   # 12.5 -> 13, 1.5 -> 2, 0.5 -> 1
    (100, [100, 25, 3, 1]),
])
def test_counts_per_class_by_hand(percent, expected):
    chosen = class_balanced_subset(LABELS, percent, seed=0)
    assert len(set(chosen.tolist())) == len(chosen)  # no sample twice
    assert np.bincount(LABELS[chosen], minlength=4).tolist() == expected


def test_fixed_per_seed():
    first = class_balanced_subset(LABELS, 10, seed=3)
    np.testing.assert_array_equal(class_balanced_subset(LABELS, 10, seed=3), first)
    assert not np.array_equal(class_balanced_subset(LABELS, 10, seed=4), first)


def test_invalid_percent():
    with pytest.raises(UserError, match="percentage"):
        class_balanced_subset(LABELS, 0, seed=0)


def test_saved_with_names_and_reused(tmp_path):
    positions, path = semi_subset(LABELS, NAMES, 10, 0, dataset="toy", split="xsub", folder=tmp_path)
    assert path == subset_file(tmp_path, "toy", "xsub", 10, 0) and path.name == "semi10_toy_xsub_seed0.json"
    saved = json.loads(path.read_text())
    assert saved["sample_names"] == [NAMES[p] for p in positions]
    assert saved["per_class"] == {"0": 10, "1": 3, "2": 1, "3": 1}
    # A rerun reads the file (here edited by hand to other samples), it does not draw again.
    other = [NAMES[i] for i in (5, 7, 9)]
    path.write_text(json.dumps({**saved, "sample_names": other}))
    again, _ = semi_subset(LABELS, NAMES, 10, 0, dataset="toy", split="xsub", folder=tmp_path)
    assert again.tolist() == [5, 7, 9]
    # Without a folder nothing is written; the draw is the same.
    unsaved, nothing = semi_subset(LABELS, NAMES, 10, 0, dataset="toy", split="xsub", folder=None)
    assert nothing is None and unsaved.tolist() == positions.tolist()


def test_saved_subset_of_another_dataset_is_an_error(tmp_path):
    semi_subset(LABELS, NAMES, 1, 0, dataset="toy", split="xsub", folder=tmp_path)
    renamed = [f"t{i:03d}" for i in range(len(LABELS))]
    with pytest.raises(UserError, match="not in the training part of toy/xsub.*Delete the file"):
        semi_subset(LABELS, renamed, 1, 0, dataset="toy", split="xsub", folder=tmp_path)
