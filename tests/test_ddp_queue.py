"""DDP on CPU (gloo, 2 processes): every rank's queue holds the whole global batch, in rank order."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch.callbacks import Callback

from skelssl.methods.core import MemoryQueue

WORLD = 2
BATCH = 3
STEPS = 3
QUEUE = 10  # smaller than STEPS * WORLD * BATCH = 18: the pointer wraps around


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keys(rank: int, step: int) -> torch.Tensor:
    # Each key names its origin: (rank, step, position in the local batch).
    return torch.tensor([[rank, step, i] for i in range(BATCH)], dtype=torch.float32)


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        queue = MemoryQueue(size=QUEUE, dim=3)
        for step in range(STEPS):
            queue.enqueue(_keys(rank, step))
        torch.save({"bank": queue.bank.clone(), "ptr": int(queue.ptr)}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")
def test_queue_gathers_global_batch_in_rank_order(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    banks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert torch.equal(banks[0]["bank"], banks[1]["bank"]), "ranks hold different queues"
    assert banks[0]["ptr"] == banks[1]["ptr"] == (STEPS * WORLD * BATCH) % QUEUE

    # The expected FIFO stream: per step, rank 0's keys then rank 1's; the queue keeps the newest QUEUE.
    stream = torch.cat([_keys(r, s) for s in range(STEPS) for r in range(WORLD)])
    expected = torch.empty(QUEUE, 3)
    for position, key in enumerate(stream):
        expected[position % QUEUE] = key
    assert torch.equal(banks[0]["bank"], expected)
    # None lost, none duplicated: the newest QUEUE keys each appear exactly once.
    held = {tuple(k.tolist()) for k in banks[0]["bank"]}
    assert held == {tuple(k.tolist()) for k in stream[-QUEUE:]} and len(held) == QUEUE


class RecordKeys(Callback):
    """Each rank saves the keys it enqueues at every step and its final bank (module level: pickles for
    ddp_spawn)."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.keys: list[torch.Tensor] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        # Between backward and the optimiser step, after which the module enqueues: the keys are still pending.
        (name, keys), = pl_module._pending_keys
        self.keys.append(keys.detach().clone())

    def on_train_end(self, trainer, pl_module):
        torch.save({"keys": self.keys, "bank": pl_module.queue.bank.detach().clone(),
                    "ptr": int(pl_module.queue.ptr)},
                   os.path.join(self.out_dir, f"lightning_rank{trainer.global_rank}.pt"))


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")
def test_lightning_ddp_training_steps_fill_identical_queues(tiny_dataset, tmp_path):
    from skelssl.config import load_config
    from skelssl.train import pretrain
    from tests.conftest import tiny_overrides

    cfg = load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{
        "trainer.devices": WORLD, "trainer.strategy": "ddp_spawn", "trainer.epochs": 1,
        "trainer.batch_size": 4, "method.queue_size": 20}))
    pretrain(cfg, command=[], callbacks=[RecordKeys(str(tmp_path))])
    saved = [torch.load(tmp_path / f"lightning_rank{r}.pt") for r in range(WORLD)]
    assert torch.equal(saved[0]["bank"], saved[1]["bank"]), "ranks hold different queues"
    steps = len(saved[0]["keys"])
    assert steps == len(saved[1]["keys"]) >= 2
    # FIFO stream of the global batches: per step rank 0's keys, then rank 1's.
    stream = torch.cat([saved[r]["keys"][s] for s in range(steps) for r in range(WORLD)])
    size = saved[0]["bank"].shape[0]
    assert saved[0]["ptr"] == len(stream) % size
    for position in range(max(0, len(stream) - size), len(stream)):
        assert torch.equal(saved[0]["bank"][position % size], stream[position]), position
