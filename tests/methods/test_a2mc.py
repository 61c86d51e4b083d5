"""A²MC smoke tests: a few optimisation steps on a fixed batch make the loss fall, on the BiGRU and on ST-GCN;
a Lightning run on tiny data resumes exactly (M0 and the head included)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.config import load_config
from skelssl.methods.a2mc import A2MC
from skelssl.train import pretrain
from tests.conftest import tiny_overrides
from tests.methods.test_a2mc_parts import moving_batch, tiny_a2mc
from tests.methods.test_aimclr import loss_on_fixed_views, train_steps


@pytest.mark.parametrize("encoder", ["bigru", "bilstm", "stgcn"])
def test_a2mc_loss_falls_on_a_fixed_batch(encoder):
    method = tiny_a2mc(encoder)
    batch = {"x": moving_batch(n=8), "index": torch.arange(8), "length": torch.full((8,), 32)}
    rng_state = method.generator.get_state()
    # negatives: keys of other sequences, so the loss starts near its chance level and has room to fall
    with torch.no_grad():
        bank = method.encode_key(method.to_stream(moving_batch(n=64, t=32, seed=1)[:, :, :32]))
    before, logs = loss_on_fixed_views(method, batch, rng_state, bank)
    assert {"l1", "l2", "l3", "head_infomax", "attack_loss", "attack_norm"} <= set(logs)
    assert [(name, keys.shape) for name, keys in method._pending_keys] == [("queue", (8, 128))]
    train_steps(method, batch, steps=10, lr=1e-2, rng_state=rng_state, bank=bank)
    after, _ = loss_on_fixed_views(method, batch, rng_state, bank)
    print(encoder, "loss before", before, "after", after)
    # ST-GCN starts almost collapsed and the mixed negatives hold the query itself: it falls slowest (~1.1)
    assert after < before - 0.5, (before, after)


def _a2mc_overrides(root, run_dir, **extra):
    items = [o for o in tiny_overrides(root, run_dir, **extra) if not o.startswith("model.stgcn.")]
    return items + ["model.bigru.hidden_size=8", "model.bigru.num_layers=1", "method.attack_classes=4",
                    "method.queue_size=24"]  # 3 steps of 8 keys fill M0 during the first epoch


def test_a2mc_pretrains_and_resumes_exactly(tiny_dataset, tmp_path, monkeypatch):
    """Each step once M0 is full: M0 <- normalize(M0 + β dL/dM0) (eq. 7) after the optimiser step; a run cut
    after epoch 1 resumes with M0 exactly where the uncut run had it, and ends with the same state."""
    steps: list[dict] = []
    own_step = A2MC.after_optimizer_step

    def recorded(self):
        full = int(self.queue.filled) >= self.queue.size
        before, grad = self.queue.bank.clone(), self._pending_bank_grad.clone()
        own_step(self)
        steps.append({"full": full, "before": before, "grad": grad, "after": self.queue.bank.clone()})

    monkeypatch.setattr(A2MC, "after_optimizer_step", recorded)

    def run(name, **extra):
        cfg = load_config(None, _a2mc_overrides(tiny_dataset, tmp_path / name, **extra), method="a2mc",
                          encoder="bigru")
        return pretrain(cfg, command=[], max_epochs=extra.pop("max_epochs", None))

    straight = run("straight")
    straight_steps, steps[:] = list(steps), []
    pretrain(load_config(None, _a2mc_overrides(tiny_dataset, tmp_path / "cut"), method="a2mc", encoder="bigru"),
             command=[], max_epochs=1)
    first_epoch = len(steps)
    cut = run("cut", resume="true")
    cut_steps = steps[first_epoch:]
    a = torch.load(straight / LAST_CHECKPOINT, weights_only=False)["state_dict"]
    b = torch.load(cut / LAST_CHECKPOINT, weights_only=False)["state_dict"]
    full = [s for s in straight_steps if s["full"]]
    assert int(a["queue.filled"]) == 24 and len(full) >= 3  # 3 steps of 8 keys fill M0, then it only ascends
    for s in full:  # eq. 7, β = 3.0
        assert s["grad"].abs().max() > 0
        torch.testing.assert_close(s["after"], F.normalize(s["before"] + 3.0 * s["grad"], dim=1))
    torch.testing.assert_close(a["queue.bank"], straight_steps[-1]["after"], rtol=0, atol=0)
    # the resumed run starts from M0 exactly as the uncut run had it at that step
    assert torch.equal(cut_steps[0]["before"], straight_steps[first_epoch]["before"])
    for key in ("queue.bank", "head.weight", "encoder_q.rnn.weight_hh_l0"):
        assert torch.equal(a[key], b[key]), key
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
