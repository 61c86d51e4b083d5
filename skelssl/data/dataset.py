"""Dataset and DataModule over a prepared dataset: (C, T, V, M) float32 samples, memory-mapped."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from skelssl.data.prepared import PreparedDatasetError, PreparedMeta, load_meta, open_data
from skelssl.errors import UserError


class SkeletonDataset(Dataset):
    """The samples of one split part ('train' or 'test') of a prepared dataset.

    Items are dicts {"x": (C, T, V, M) float32, "label": int64, "index": int64 (position in this subset),
    "length": int64 (the valid frames, from meta.json; the temporal crop-resize crops inside them)}.
    Augmentation and the stream view happen later, batched on the training device.
    """

    def __init__(self, root: str | Path, split: str, part: str, in_memory: bool | None = None):
        self.root = Path(root)
        self.meta: PreparedMeta = load_meta(self.root)
        if split not in self.meta.splits:
            raise UserError(f"dataset '{self.root}' has no split '{split}'; it has: "
                            f"{', '.join(sorted(self.meta.splits))} (set data.split)")
        if part not in self.meta.splits[split]:
            raise UserError(f"split '{split}' of '{self.root}' has no '{part}' part")
        self.split, self.part = split, part
        self.indices = self.meta.splits[split][part]
        data = open_data(self.root)
        # Small datasets are read into memory once; large ones stay memory-mapped.
        if in_memory is None:
            in_memory = data.nbytes < 2 * 1024**3
        self.data = np.ascontiguousarray(data[np.sort(self.indices)]) if in_memory else data
        self._row = np.searchsorted(np.sort(self.indices), self.indices) if in_memory else self.indices
        self.labels = self.meta.labels[self.indices]
        self.lengths = self.meta.lengths[self.indices]

    @property
    def layout(self):
        return self.meta.layout

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes

    def __len__(self) -> int:
        return len(self.indices)

    def array(self) -> np.ndarray:
        """All samples of this subset as one (N, C, T, V, M) array (memory-mapped rows when large)."""
        if self.data.shape[0] == len(self.indices) and np.array_equal(self._row, np.arange(len(self))):
            return self.data
        return self.data[self._row]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = np.asarray(self.data[self._row[i]], dtype=np.float32)
        return {"x": torch.from_numpy(np.array(x)), "label": torch.tensor(int(self.labels[i])),
                "index": torch.tensor(i), "length": torch.tensor(int(self.lengths[i]))}


class EpochSeededSampler(Sampler[int]):
    """Random permutation drawn from (seed, epoch): the order does not depend on global RNG, so a resumed
    run sees the same batches as an uninterrupted one. Lightning calls set_epoch each epoch."""

    def __init__(self, length: int, seed: int):
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.length, generator=gen).tolist())

    def __len__(self) -> int:
        return self.length


class SkeletonDataModule(L.LightningDataModule):
    def __init__(self, root: str | Path, split: str, batch_size: int, num_workers: int = 0, seed: int = 0,
                 drop_last: bool = True):
        super().__init__()
        self.root, self.split = Path(root), split
        self.batch_size, self.num_workers, self.seed, self.drop_last = batch_size, num_workers, seed, drop_last
        self.train_dataset = SkeletonDataset(self.root, split, "train")
        if len(self.train_dataset) == 0:
            raise PreparedDatasetError(f"the train part of split '{split}' in '{root}' is empty")

    def train_dataloader(self) -> DataLoader:
        n = len(self.train_dataset)
        drop_last = self.drop_last and n >= self.batch_size
        return DataLoader(self.train_dataset, batch_size=self.batch_size,
                          sampler=EpochSeededSampler(n, self.seed), num_workers=self.num_workers,
                          drop_last=drop_last, persistent_workers=self.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.seed))
