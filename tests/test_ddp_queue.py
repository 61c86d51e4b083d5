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


class RecordRun(Callback):
    """Each rank saves its per-step losses and its weights after `steps` steps, then stops the run (module
    level: pickles for ddp_spawn)."""

    def __init__(self, out_dir: str, steps: int):
        self.out_dir, self.steps = out_dir, steps
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))
        if trainer.global_step >= self.steps:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        torch.save({"losses": self.losses, "state": state},
                   os.path.join(self.out_dir, f"run_rank{trainer.global_rank}.pt"))


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")
def test_two_processes_match_one_process_with_the_same_global_batch(tiny_dataset, tmp_path):
    """2 gloo processes x 4 sequences vs 1 process x 8, global BatchNorm on: the same loss at every step and the
    same weights after 4 steps (the bank is then full of real keys), to 1e-5 relative / 1e-6 absolute. The views are made
    deterministic (no shear, no crop): each process draws its augmentations from its own generator stream, so
    with augmentations on the two runs agree in distribution, not value by value (docs/commands.md). Longer,
    a float-rounding difference eventually flips a ReLU whose input is within rounding of 0 and the runs drift
    apart (measured: 3e-5 in the first block after the 5th step; a 1-process run with 2 threads instead of 1
    drifts likewise), so a few steps is the comparison that can be held to a tight bound."""
    from skelssl.config import load_config
    from skelssl.train import pretrain
    from tests.conftest import tiny_overrides

    same = {"trainer.epochs": 1, "trainer.sync_batchnorm": "true", "augment.shear_amplitude": 0.0,
            "augment.padding_ratio": 1000, "method.queue_size": 32, "optim.lr": 0.01}
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one_dir.mkdir(), two_dir.mkdir()
    pretrain(load_config(None, tiny_overrides(tiny_dataset, one_dir / "run", **same, **{
        "trainer.batch_size": 8})), command=[], callbacks=[RecordRun(str(one_dir), steps=4)])
    pretrain(load_config(None, tiny_overrides(tiny_dataset, two_dir / "run", **same, **{
        "trainer.batch_size": 4, "trainer.devices": WORLD, "trainer.strategy": "ddp_spawn"})),
        command=[], callbacks=[RecordRun(str(two_dir), steps=4)])
    one = torch.load(one_dir / "run_rank0.pt")
    ranks = [torch.load(two_dir / f"run_rank{r}.pt") for r in range(WORLD)]
    global_losses = torch.tensor(ranks[0]["losses"]).add(torch.tensor(ranks[1]["losses"])).div(WORLD)
    assert len(one["losses"]) == len(global_losses) == 4
    torch.testing.assert_close(global_losses, torch.tensor(one["losses"]), rtol=1e-5, atol=1e-6)
    for key, value in one["state"].items():
        assert torch.equal(ranks[0]["state"][key], ranks[1]["state"][key]), key  # the ranks agree exactly
        if value.is_floating_point():
            torch.testing.assert_close(ranks[0]["state"][key], value, rtol=1e-5, atol=1e-6, msg=key)
        else:
            assert torch.equal(ranks[0]["state"][key], value), key
