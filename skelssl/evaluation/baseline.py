"""The no-learning baseline of a prepared dataset: 1-NN (cosine) on its flattened coordinates.

Every learned encoder must beat it: it is what the prepared coordinates already tell apart. Coordinates only
(a score channel of 2D keypoints is left out), all persons, all frames, as stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skelssl.data.normalize import coordinate_count
from skelssl.data.prepared import load_meta, open_data
from skelssl.evaluation.knn import accuracy, nn1_cosine_predict

__all__ = ["coordinate_1nn"]


def _flat(data: np.ndarray, rows: np.ndarray, coordinates: int) -> np.ndarray:
    return np.asarray(data[np.sort(rows)][:, :coordinates], dtype=np.float32).reshape(len(rows), -1)


def coordinate_1nn(root: str | Path, splits: list[str] | None = None) -> dict[str, dict[str, float | int]]:
    """{split: {"accuracy", "train", "test"}} of the 1-NN on the prepared coordinates, for every split
    (or those named) with a train and a test part."""
    meta = load_meta(root)
    data = open_data(root)
    k = coordinate_count(meta.channel_names, data.shape[1])
    results: dict[str, dict[str, float | int]] = {}
    for split, parts in meta.splits.items():
        if splits and split not in splits:
            continue
        train, test = parts.get("train", np.zeros(0, int)), parts.get("test", np.zeros(0, int))
        if not len(train) or not len(test):
            continue
        train, test = np.sort(train), np.sort(test)
        predictions = nn1_cosine_predict(_flat(data, train, k), meta.labels[train], _flat(data, test, k))
        results[split] = {"accuracy": accuracy(predictions, meta.labels[test]), "train": int(len(train)),
                          "test": int(len(test))}
    return results
