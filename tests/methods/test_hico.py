"""HiCo: the multi-positive InfoNCE by hand, the five levels by hand on hand-built features (crossed domains
included), the banks after a step, the momentum update of every key network (the hierarchy projectors too), the views inside the valid
frames (the dataset's `length` entry), the encoder requirement, and a smoke test."""

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


def tiny_hico(granularities: int = 3, **method) -> HiCo:
    cfg = defaults_for("hico", "hico")
    cfg.method = OmegaConf.merge(cfg.method, {"queue_size": 16}, method)
    cfg.model.hico.update(hidden_size=8, num_layers=1, granularities=granularities)
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


def _unit(*angles: float) -> torch.Tensor:
    """Unit vectors of the plane at these angles (radians): the dot product of two is cos(a - b)."""
    return torch.tensor([[math.cos(a), math.sin(a)] for a in angles])


def _nce_by_hand(query: float, positives: list[float], negatives: list[float], tau: float = 0.2) -> float:
    """−log Σ_pos e^{cos(q − p)/τ} / (Σ_pos + Σ_neg e^{cos(q − m)/τ}), all features as angles."""
    pos = sum(math.exp(math.cos(query - p) / tau) for p in positives)
    neg = sum(math.exp(math.cos(query - m) / tau) for m in negatives)
    return -math.log(pos / (pos + neg))


# one sequence, 2 granularities, 2-d features given as angles; banks of K = 2 (clip and part: G·K = 4)
QUERY = {"clip": [0.0, 2.0], "part": [0.3, 1.0], "temporal": 0.5, "spatial": 1.2, "instance": 0.8}
KEY = {"clip": [0.2, 0.9], "part": [0.1, 1.5], "temporal": 2.0, "spatial": 0.4, "instance": 0.7}
BANKS = {"clip_queue": [3.0, 2.5, -1.0, 1.8], "part_queue": [2.0, -2.0, 0.5, 3.1], "temporal_queue": [1.0, -0.5],
         "spatial_queue": [2.2, -1.4], "queue": [0.0, 3.0]}


def _as_features(angles: dict) -> dict:
    out = {name: (_unit(*value)[None] if isinstance(value, list) else _unit(value)) for name, value in angles.items()}
    out["backbone"] = torch.zeros(1, 4)
    return out


def test_the_five_levels_by_hand():
    """Which query feature meets which keys and which bank: the clip and part levels take the query's
    granularity 1 against every key granularity (multi-positive), the domain levels are crossed, the
    instance level is plain InfoNCE; every level weighs 1. Features are hand-built unit vectors."""
    method = tiny_hico(granularities=2, queue_size=2, feature_dim=2)
    method.features = lambda x, key=False, companions=None: _as_features(KEY if key else QUERY)
    for name, angles in BANKS.items():
        method.bank(name).bank.copy_(_unit(*angles))
    batch = moving_batch(n=1)
    loss, logs = method.training_loss(batch)
    expected = {
        "clip": _nce_by_hand(QUERY["clip"][0], KEY["clip"], BANKS["clip_queue"]),
        "part": _nce_by_hand(QUERY["part"][0], KEY["part"], BANKS["part_queue"]),
        "temporal_domain": _nce_by_hand(QUERY["temporal"], [KEY["spatial"]], BANKS["spatial_queue"]),
        "spatial_domain": _nce_by_hand(QUERY["spatial"], [KEY["temporal"]], BANKS["temporal_queue"]),
        "instance": _nce_by_hand(QUERY["instance"], [KEY["instance"]], BANKS["queue"]),
    }
    for name, value in expected.items():
        assert float(logs[name]) == pytest.approx(value, rel=1e-5), name
    assert float(loss) == pytest.approx(sum(expected.values()), rel=1e-5)
    # after the step the banks take the keys: every granularity of the clip and part keys
    method.after_optimizer_step()
    torch.testing.assert_close(method.clip_queue.bank[:2], _unit(*KEY["clip"]))
    torch.testing.assert_close(method.part_queue.bank[:2], _unit(*KEY["part"]))
    torch.testing.assert_close(method.temporal_queue.bank[0], _unit(KEY["temporal"])[0])
    torch.testing.assert_close(method.spatial_queue.bank[0], _unit(KEY["spatial"])[0])
    torch.testing.assert_close(method.queue.bank[0], _unit(KEY["instance"])[0])
    assert int(method.clip_queue.ptr) == 2 and int(method.queue.ptr) == 1


def test_the_query_view_is_a_64_frame_isc_view():
    method = tiny_hico()
    method.training_loss(moving_batch())
    assert method.exposed["query_input"].shape == (8, 3, 64, 25, 2)


def test_the_key_networks_follow_by_momentum_the_hierarchy_projectors_too():
    # online weights all 1, key copies all 0: one update leaves every key weight at 1 − m = 0.001
    method = tiny_hico()
    with torch.no_grad():
        for online, target in ((method.encoder_q, method.encoder_k), (method.projector_q, method.projector_k),
                               (method.heads_q, method.heads_k)):
            for p in online.parameters():
                p.fill_(1.0)
            for p in target.parameters():
                p.fill_(0.0)
    method.after_optimizer_step()
    for target in (method.encoder_k, method.projector_k, method.heads_k):
        for name, p in target.named_parameters():
            torch.testing.assert_close(p, torch.full_like(p, 0.001), msg=name)


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
