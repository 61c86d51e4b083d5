"""Dataset and DataModule over a prepared dataset: (C, T, V, M) float32 samples, memory-mapped."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from skelssl.data.prepared import (PreparedDatasetError, PreparedMeta, open_prepared, unusable_error,
                                   unusable_rows, usable_values)
from skelssl.errors import UserError


class SkeletonDataset(Dataset):
    """The samples of one split part ('train' or 'test') of a prepared dataset.

    Items are dicts {"x": (C, T, V, M) float32, "label": int64, "index": int64 (position in this subset),
    "length": int64 (the valid frames, from meta.json; the temporal crop-resize crops inside them)}.
    Augmentation and the stream view happen later, batched on the training device.

    meta.json and data.npy are checked against each other when the dataset opens (prepared.open_prepared), and
    no sample with NaN, inf or a value beyond prepared.COORDINATE_LIMIT reaches a model: an in-memory subset is
    scanned once here, a memory-mapped one
    sample by sample as it is read; either raises PreparedDatasetError naming the sample.
    """

    def __init__(self, root: str | Path, split: str, part: str, in_memory: bool | None = None):
        self.root = Path(root)
        self.meta: PreparedMeta
        self.meta, data = open_prepared(self.root)
        if split not in self.meta.splits:
            raise UserError(f"dataset '{self.root}' has no split '{split}'; it has: "
                            f"{', '.join(sorted(self.meta.splits))} (set data.split)")
        if part not in self.meta.splits[split]:
            raise UserError(f"split '{split}' of '{self.root}' has no '{part}' part")
        self.split, self.part = split, part
        self.indices = self.meta.splits[split][part]
        # Small datasets are read into memory once; large ones stay memory-mapped.
        if in_memory is None:
            in_memory = data.nbytes < 2 * 1024**3
        self.in_memory = in_memory
        self.data = np.ascontiguousarray(data[np.sort(self.indices)]) if in_memory else data
        self._row = np.searchsorted(np.sort(self.indices), self.indices) if in_memory else self.indices
        self.labels = self.meta.labels[self.indices]
        self.lengths = self.meta.lengths[self.indices]
        if in_memory:
            bad = unusable_rows(self.data, first_only=True)
            if bad:
                raise unusable_error(self.root, self.meta, int(np.sort(self.indices)[bad[0]]), data)

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
        if not self.in_memory:  # checked here, chunk by chunk, as the in-memory case was at opening
            bad = unusable_rows(self.data, self.indices, first_only=True)
            if bad:
                raise unusable_error(self.root, self.meta, bad[0], self.data)
        if self.data.shape[0] == len(self.indices) and np.array_equal(self._row, np.arange(len(self))):
            return self.data
        return self.data[self._row]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = np.asarray(self.data[self._row[i]], dtype=np.float32)
        if not self.in_memory and not usable_values(x).all():
            raise unusable_error(self.root, self.meta, int(self.indices[i]), self.data)
        return {"x": torch.from_numpy(np.array(x)), "label": torch.tensor(int(self.labels[i])),
                "index": torch.tensor(i), "length": torch.tensor(int(self.lengths[i]))}


class EpochSeededSampler(Sampler[int]):
    """Random permutation drawn from (seed, epoch): the order does not depend on global RNG, so a resumed
    run sees the same batches as an uninterrupted one. Lightning calls set_epoch each epoch.

    With several processes (`world` > 1) the permutation is cut into global batches of batch_size x world
    sequences and process `rank` takes its contiguous share of each, so the processes together train on
    exactly the batches one process with the global batch would (an incomplete last global batch is dropped).

    `resume_at(epoch, samples)`: the first iteration over that epoch skips its first `samples` indices (those
    a run stopped mid-epoch had already trained on, counted over all processes), so a resumed run continues
    with the very next batch."""

    def __init__(self, length: int, seed: int, batch_size: int = 1, rank: int = 0, world: int = 1):
        self.length, self.seed, self.epoch = length, seed, 0
        self.batch_size, self.rank, self.world = batch_size, rank, world
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, samples: int) -> None:
        self._resume = (int(epoch), int(samples))

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(self.length, generator=gen).tolist()
        if self._resume is not None and self._resume[0] == self.epoch:
            order = order[self._resume[1]:]
            self._resume = None
        if self.world > 1:
            share, full = self.batch_size, self.batch_size * self.world
            order = [i for start in range(0, len(order) - full + 1, full)
                     for i in order[start + self.rank * share:start + (self.rank + 1) * share]]
        return iter(order)

    def __len__(self) -> int:
        if self.world > 1:
            return (self.length // (self.batch_size * self.world)) * self.batch_size
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
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, batches: int) -> None:
        """A resumed run continues epoch `epoch` after its first `batches` batches (a mid-epoch checkpoint)."""
        self._resume = (epoch, batches)

    def train_dataloader(self) -> DataLoader:
        n = len(self.train_dataset)
        drop_last = self.drop_last and n >= self.batch_size
        trainer = getattr(self, "trainer", None)  # set by Lightning once the datamodule is attached
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = EpochSeededSampler(n, self.seed, batch_size=self.batch_size, rank=rank, world=world)
        if self._resume is not None:
            sampler.resume_at(self._resume[0], self._resume[1] * self.batch_size * world)
        return DataLoader(self.train_dataset, batch_size=self.batch_size,
                          sampler=sampler, num_workers=self.num_workers,
                          drop_last=drop_last, persistent_workers=self.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.seed))
