"""bf16 mixed precision: the losses over the memory bank stay float32, and every method trains under it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from skelssl.config import load_config
from skelssl.methods.actclr import similarity_mining_loss
from skelssl.methods.core import info_nce_logits
from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.train import pretrain
from tests.conftest import tiny_overrides


def _unit(*shape: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_bank_logits_are_float32_under_bf16_autocast():
    q, k, bank = _unit(16, 32, seed=0), _unit(16, 32, seed=1), _unit(512, 32, seed=2)
    reference = info_nce_logits(q, k, bank, 0.07)
    mining_reference = similarity_mining_loss(q, k, bank, 0.1, 0.04)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = info_nce_logits(q, k, bank, 0.07)
        mining = similarity_mining_loss(q, k, bank, 0.1, 0.04)
        # what a bf16 matmul would give: errors of ~1e-2 after dividing by tau
        bf16_error = ((q @ bank.t()).float() / 0.07 - reference[:, 1:]).abs().max().item()
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(mining, mining_reference, rtol=0, atol=1e-5)
    assert bf16_error > 1e-3  # the check above would notice a bf16 product


@pytest.mark.parametrize("method", ["skeletonclr", "aimclr", "actclr"])
def test_each_method_pretrains_under_bf16_mixed(method, tiny_dataset, tmp_path):
    extra = {"method.name": method, "trainer.epochs": 1, "trainer.precision": "bf16-mixed"}
    if method == "actclr":
        extra.update({"optim.name": "adam", "optim.lr": 1e-3})
    run_dir = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / method, **extra)), command=[])
    ckpt = torch.load(run_dir / LAST_CHECKPOINT, map_location="cpu", weights_only=False)
    state = ckpt["state_dict"]
    assert state["queue.bank"].dtype == torch.float32  # keys enqueued in the bank's dtype
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())  # weights stay float32
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert int(state["queue.ptr"]) > 0
