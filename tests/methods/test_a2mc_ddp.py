"""DDP on CPU (gloo, 2 processes): A²MC's M0 stays the same on every rank (filled by the global batch, moved by
the ranks' mean gradient), and ProSL's epoch keys are joined across ranks before the codebook is built."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from omegaconf import OmegaConf

from skelssl.methods.a2mc.pnm import AdversarialBank
from skelssl.methods.prosl import ProSL
from skelssl.settings import plain
from tests.test_ddp_queue import _free_port

WORLD = 2


def _grad(rank: int) -> torch.Tensor:
    return torch.full((4, 3), float(rank + 1)) * torch.arange(1, 4, dtype=torch.float32)


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        bank = AdversarialBank(4, 3, generator=torch.Generator().manual_seed(0))
        bank.enqueue(torch.full((1, 3), float(rank)))  # two keys in all: rank 0's then rank 1's
        bank.ascend(_grad(rank), beta=0.5)
        plugin = ProSL(OmegaConf.create({**plain(ProSL.DEFAULTS), "features": "epoch"}))
        plugin._epoch_keys = torch.zeros(4, 2)
        plugin._epoch_seen = torch.zeros(4, dtype=torch.bool)
        plugin._epoch_keys[rank * 2] = torch.tensor([rank + 1.0, 0.0])  # rank r saw sample 2r
        plugin._epoch_seen[rank * 2] = True
        plugin._gather_epoch_keys()
        torch.save({"bank": bank.bank.clone(), "filled": int(bank.filled), "keys": plugin._epoch_keys,
                    "seen": plugin._epoch_seen}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes import the package: ~20 s on an idle 2-core machine
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")
def test_m0_and_prosl_epoch_keys_agree_across_ranks(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    saved = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert torch.equal(saved[0]["bank"], saved[1]["bank"]) and saved[0]["filled"] == saved[1]["filled"] == 2
    start = F.normalize(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    start[0], start[1] = 0.0, 1.0  # the global batch's keys, in rank order
    expected = F.normalize(start + 0.5 * (_grad(0) + _grad(1)) / 2, dim=1)
    torch.testing.assert_close(saved[0]["bank"], expected)
    for s in saved:
        assert s["seen"].tolist() == [True, False, True, False]
        torch.testing.assert_close(s["keys"][[0, 2]], torch.tensor([[1.0, 0.0], [2.0, 0.0]]))
