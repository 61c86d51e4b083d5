"""AimCLR smoke tests: a few optimisation steps on tiny synthetic data; the loss is finite and falls."""

from __future__ import annotations


from unittest.mock import PropertyMock, patch

import pytest
import torch
from omegaconf import OmegaConf

from skelssl.config import defaults_for
from skelssl.methods.aimclr import AimCLR
from skelssl.settings import plain


def tiny_config(method_cls, **method_overrides):
    cfg = defaults_for(method_cls.name)
    cfg.method = OmegaConf.merge(cfg.method, {"queue_size": 64}, method_overrides)
    cfg.model.stgcn.hidden_channels = 4
    cfg.model.stgcn.out_channels = 16
    cfg.model.stgcn.dropout = 0.0
    return cfg


def tiny_batch(n: int = 8, t: int = 16, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, t, 25, 2, generator=g) * 0.1
    x = x + torch.sin(torch.linspace(0, 6, t)).view(1, 1, t, 1, 1) * torch.randn(n, 3, 1, 25, 1, generator=g)
    x[n // 2:, :, :, :, 1] = 0  # some single-person samples
    return {"x": x, "index": torch.arange(n), "label": torch.zeros(n, dtype=torch.long)}


def hard_bank(method, batch, size: int = 64) -> torch.Tensor:
    """A bank of noisy copies of the batch's own keys: hard negatives, so the loss has room to fall."""
    g = torch.Generator().manual_seed(1)
    keys = method.encode_key(method.to_stream(batch["x"]))
    bank = keys.repeat(size // keys.shape[0] + 1, 1)[:size]
    return torch.nn.functional.normalize(bank + 0.03 * torch.randn(bank.shape, generator=g), dim=1)


def loss_on_fixed_views(method, batch, rng_state, bank):
    """The loss with a given augmentation-generator state and bank, without side effects."""
    saved_bank = method.queue.bank.clone()
    method.generator.set_state(rng_state)
    method.queue.bank.copy_(bank)
    loss, logs = method.training_loss(batch)
    method.queue.bank.copy_(saved_bank)
    return loss.item(), logs


def train_steps(method, batch, steps: int, lr: float, rng_state, bank) -> list[float]:
    """Optimise on the same batch with the same views (same generator state and bank every step), doing
    what the base's training_step / on_train_batch_end do around training_loss (enqueue, momentum)."""
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        method.generator.set_state(rng_state)
        method.queue.bank.copy_(bank)
        loss, _ = method.training_loss(batch)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.after_optimizer_step()  # enqueue and momentum, as after every training step
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("nnm_start_epoch", [150, 0])  # stage 1 (InfoNCE + D3M) and stage 2 (NNM + D3M)
def test_aimclr_loss_falls_on_a_fixed_batch(nnm_start_epoch):
    torch.manual_seed(0)
    method = AimCLR(tiny_config(AimCLR, nnm_start_epoch=nnm_start_epoch), "ntu25")
    method.train()
    batch = tiny_batch()
    rng_state = method.generator.get_state()
    bank = hard_bank(method, batch)
    before, logs = loss_on_fixed_views(method, batch, rng_state, bank)
    assert ("nnm" in logs) == (nnm_start_epoch == 0) and ("info_nce" in logs) != (nnm_start_epoch == 0)
    assert [(name, keys.shape) for name, keys in method._pending_keys] == [("queue", (8, 128))]
    train_steps(method, batch, steps=8, lr=3e-3, rng_state=rng_state, bank=bank)
    after, _ = loss_on_fixed_views(method, batch, rng_state, bank)
    assert torch.isfinite(torch.tensor([before, after])).all()
    print("loss before", before, "after", after)
    assert after < 0.9 * before, (before, after)


def test_aimclr_stage_switch_follows_the_epoch():
    """The loss switches from InfoNCE (eq. 1) to NNM (eq. 9) at nnm_start_epoch, as the trainer's epoch advances."""
    method = AimCLR(tiny_config(AimCLR, nnm_start_epoch=3), "ntu25")
    defaults = plain(AimCLR.DEFAULTS)
    assert defaults["queue_size"] == 32768 and defaults["nnm_start_epoch"] == 150
    batch, rng = tiny_batch(), method.generator.get_state()
    bank = method.queue.bank.clone()
    stages = {}
    for epoch in (0, 2, 3, 7):
        with patch.object(AimCLR, "current_epoch", new_callable=PropertyMock, return_value=epoch):
            method.generator.set_state(rng)
            method.queue.bank.copy_(bank)
            loss, logs = method.training_loss(batch)
        stages[epoch] = ("nnm" if "nnm" in logs else "info_nce", float(loss))
        assert ("nnm" in logs) != ("info_nce" in logs)
    assert [stages[e][0] for e in (0, 2, 3, 7)] == ["info_nce", "info_nce", "nnm", "nnm"]
    assert stages[0][1] == stages[2][1] and stages[2][1] != stages[3][1]  # same views and bank, other loss


def test_aimclr_gradients_reach_the_query_encoder_only():
    method = AimCLR(tiny_config(AimCLR), "ntu25")
    method.train()
    # Let the key networks accept gradients: the loss must still send them none (the keys are computed
    # without a graph), so only the query side learns by gradient and the key side by momentum.
    key_params = list(method.encoder_k.parameters()) + list(method.projector_k.parameters())
    for p in key_params:
        p.requires_grad_(True)
    loss, _ = method.training_loss(tiny_batch())
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.encoder_q.parameters())
    assert all(p.grad is None for p in key_params)
