"""DDP on CPU (gloo, 2 processes): every rank's queue holds the whole global batch, in rank order."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

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
