"""What a prepared dataset may hold: finite coordinates within ±COORDINATE_LIMIT (a leaf of skelssl.data, numpy
only, so every reader and the prepared format share one rule without importing each other)."""

from __future__ import annotations

import numpy as np

__all__ = ["COORDINATE_LIMIT", "unusable_rows", "usable_values", "unusable_problem"]


# The largest |value| a prepared dataset may hold. Normalisation layers compute a batch's variance in float32:
# squares of 1e15 (1e30), summed over the ~1e8 values one channel of a large batch holds, stay below float32's
# 3.4e38; coordinates of 1e30 (finite in float32) give an infinite variance, and every sequence the same feature.
COORDINATE_LIMIT = 1e15


def unusable_rows(data: np.ndarray, rows: np.ndarray | None = None, first_only: bool = False,
                  chunk: int = 256) -> list[int]:
    """Indices (into `data`, ascending) of the samples holding NaN, inf or a value beyond ±COORDINATE_LIMIT,
    among `rows` (default all); with first_only, at most the first. Chunk by chunk: a memory-mapped dataset is
    never read whole into memory."""
    rows = np.arange(len(data)) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    found: list[int] = []
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        contiguous = len(part) and part[-1] - part[0] + 1 == len(part)
        block = np.asarray(data[part[0]:part[-1] + 1] if contiguous else data[part])
        found += part[~usable_values(block.reshape(len(part), -1)).all(axis=1)].tolist()
        if first_only and found:
            return found[:1]
    return found


def usable_values(values: np.ndarray) -> np.ndarray:
    """Elementwise: finite and within ±COORDINATE_LIMIT (NaN compares false)."""
    return np.abs(values) <= COORDINATE_LIMIT


def unusable_problem(sample: np.ndarray) -> str:
    """What is wrong with a sample `unusable_rows` named."""
    values = np.asarray(sample, dtype=np.float64)
    if not np.isfinite(values).all():
        return "holds NaN or infinite values"
    return (f"holds a value of {np.abs(values).max():.3g}, beyond ±{COORDINATE_LIMIT:.0e}: the spread of a batch of "
            "such values overflows float32 (the normalisation layers' variance becomes infinite); scale the "
            "coordinates (e.g. to metres)")
