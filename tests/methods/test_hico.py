"""HiCo: the multi-positive InfoNCE by hand, the five levels recomputed from the step's own features by an
independent formula (crossed domains included), the banks after a step, the views inside the valid frames
(the dataset's `length` entry), the encoder requirement, and a smoke test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from skelssl.config import defaults_for
from skelssl.data.dataset import SkeletonDataModule, SkeletonDataset
from skelssl.data.prepared import PreparedMeta, write_prepared
from skelssl.errors import UserError
from skelssl.methods.hico import HiCo, multi_positive_info_nce
from skelssl.skeleton.layouts import get_layout


def tiny_hico(**method) -> HiCo:
    cfg = defaults_for("hico", "hico")
    cfg.method = OmegaConf.merge(cfg.method, {"queue_size": 16}, method)
    cfg.model.hico.update(hidden_size=8, num_layers=1, granularities=3)
    torch.manual_seed(0)
    return HiCo(cfg, "ntu25").train()


def moving_batch(n: int = 8, t: int = 40, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 1, 25, 2, generator=g) * 0.3 + torch.randn(n, 3, t, 25, 2, generator=g).cumsum(2) * 0.05
    x[n // 2:, :, :, :, 1] = 0
    return {"x": x, "index": torch.arange(n), "length": torch.full((n,), t)}


def test_multi_positive_info_nce_by_hand():
    q = F.normalize(torch.tensor([[1.0, 0.0]]), dim=1)
    positives = F.normalize(torch.tensor([[[1.0, 1.0], [0.0, 1.0]]]), dim=2)
    bank = F.normalize(torch.tensor([[-1.0, 0.0], [1.0, -1.0]]), dim=1)
    a, b = 1 / math.sqrt(2), 0.0  # q . positives
    n1, n2 = -1.0, 1 / math.sqrt(2)  # q . bank
    tau = 0.5
    expected = -math.log((math.exp(a / tau) + math.exp(b / tau))
                         / (math.exp(a / tau) + math.exp(b / tau) + math.exp(n1 / tau) + math.exp(n2 / tau)))
    torch.testing.assert_close(multi_positive_info_nce(q, positives, bank, tau), torch.tensor(expected))
    keep = torch.tensor([[True, False]])  # a removed negative drops out of the denominator
    expected_kept = -math.log((math.exp(a / tau) + math.exp(b / tau))
                              / (math.exp(a / tau) + math.exp(b / tau) + math.exp(n1 / tau)))
    torch.testing.assert_close(multi_positive_info_nce(q, positives, bank, tau, keep), torch.tensor(expected_kept))


def _nce(q, positives, bank, tau):
    """−log Σ_pos exp / Σ_all exp, written out (positives (N, P, D))."""
    pos = torch.exp(torch.einsum("nd,npd->np", q, positives) / tau).sum(1)
    neg = torch.exp(q @ bank.t() / tau).sum(1)
    return (-torch.log(pos / (pos + neg))).mean()


def test_the_five_levels_recomputed_from_the_steps_features():
    method = tiny_hico()
    batch = moving_batch()
    banks = {name: method.bank(name).bank.clone() for name in
             ("clip_queue", "part_queue", "temporal_queue", "spatial_queue", "queue")}
    state = method.generator.get_state()
    loss, logs = method.training_loss(batch)
    method.generator.set_state(state)  # the same two views, in the same order
    with torch.no_grad():
        q = method.features(method.to_stream(method.view(batch["x"], batch["length"])))
        k = method.features(method.to_stream(method.view(batch["x"], batch["length"])), key=True)
    tau = 0.2
    expected = {
        "clip": _nce(q["clip"][:, 0], k["clip"], banks["clip_queue"], tau),
        "part": _nce(q["part"][:, 0], k["part"], banks["part_queue"], tau),
        "temporal_domain": _nce(q["temporal"], k["spatial"][:, None], banks["spatial_queue"], tau),
        "spatial_domain": _nce(q["spatial"], k["temporal"][:, None], banks["temporal_queue"], tau),
        "instance": _nce(q["instance"], k["instance"][:, None], banks["queue"], tau),
    }
    for name, value in expected.items():
        torch.testing.assert_close(logs[name], value, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(loss.detach(), sum(expected.values()), rtol=1e-4, atol=1e-5)
    # after the step the banks take every granularity of the clip and part keys
    method.after_optimizer_step()
    assert method.clip_queue.bank.shape == (3 * 16, 128) and int(method.clip_queue.ptr) == 8 * 3
    torch.testing.assert_close(method.clip_queue.bank[:24], k["clip"].reshape(24, -1))
    torch.testing.assert_close(method.temporal_queue.bank[:8], k["temporal"])
    assert method.exposed["query_input"].shape == (8, 3, 64, 25, 2)


def test_hico_needs_its_hierarchical_encoder():
    cfg = defaults_for("hico", "bigru")
    cfg.method.queue_size = 16
    with pytest.raises(UserError, match="'hico' needs its hierarchical encoder.*'bigru'"):
        HiCo(cfg, "ntu25")


def losses_on_a_fixed_batch(method, batch, steps: int, lr: float = 1e-2, total_loss=None) -> tuple[float, float]:
    """(loss before, loss after) `steps` Adam steps on `batch` with the same views and the same banks (every
    named bank reset before each step), doing what a training step does around the loss."""
    total_loss = total_loss or (lambda m, b: m.training_loss(b)[0])
    banks = {name: method.bank(name).bank.clone() for name in method._bank_names}
    rng_state = method.generator.get_state()
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=lr)

    def step(train: bool) -> float:
        method.generator.set_state(rng_state)  # the same views every time
        for name, bank in banks.items():
            method.bank(name).bank.copy_(bank)
        loss = total_loss(method, batch)
        if train:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            method.after_optimizer_step()
        return loss.item()

    before = step(train=False)
    for _ in range(steps):
        step(train=True)
    return before, step(train=False)


def test_hico_loss_falls_on_a_fixed_batch():
    method = tiny_hico()
    with torch.no_grad():  # negatives: the keys of other sequences at every level
        method.training_loss(moving_batch(n=16, seed=1))
        method.after_optimizer_step()
    before, after = losses_on_a_fixed_batch(method, moving_batch(), steps=16)
    print("hico loss before", before, "after", after)
    # every level starts at chance, log(17) = 2.83 (the tiny encoder's outputs are alike); it falls ~0.7
    assert after < before - 0.5, (before, after)


@pytest.fixture(scope="module")
def varied_lengths(tmp_path_factory):
    """12 sequences of 60 frames whose valid parts are 20-60 frames; the padding frames hold 1000."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 61, size=12)
    data = np.full((12, 3, 60, 25, 2), 1000.0, dtype=np.float32)
    for i, length in enumerate(lengths):
        data[i, :, :length] = rng.uniform(-1, 1, size=(3, length, 25, 2))
    meta = PreparedMeta(dataset="varied", layout=get_layout("ntu25"), class_names=["a", "b", "c"],
                        labels=np.arange(12) % 3, lengths=lengths, sample_names=[f"s{i}" for i in range(12)],
                        splits={"xsub": {"train": np.arange(2, 11), "test": np.array([0, 1, 11])}})
    return write_prepared(tmp_path_factory.mktemp("varied") / "data", data, meta), lengths


def test_batches_carry_the_valid_lengths_and_views_stay_inside_them(varied_lengths):
    root, lengths = varied_lengths
    dataset = SkeletonDataset(root, "xsub", "train")
    assert [int(dataset[i]["length"]) for i in range(len(dataset))] == lengths[2:11].tolist()
    batch = next(iter(SkeletonDataModule(root, "xsub", batch_size=9).train_dataloader()))
    assert batch["length"].tolist() == [int(lengths[2 + i]) for i in batch["index"].tolist()]
    method = tiny_hico()
    view = method.view(batch["x"], batch["length"])
    assert view.abs().max() < 10  # no padding frame (1000) enters a view: pose shear / mixing scale by <= 3
    assert method.view(batch["x"], None).abs().max() > 100  # without the lengths they would
