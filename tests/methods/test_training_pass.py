"""The one way through the whole training set (MoCoMethod.training_batches / encode_all), the passes that must
leave training untouched (models.passes), and the build hooks (build_projector / build_banks)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from skelssl.methods.core.banks import MemoryQueue
from skelssl.methods.skeletonclr import SkeletonCLR
from skelssl.models.passes import frozen_statistics, side_effect_free
from tests.methods.test_aimclr import tiny_config


def _running(module: nn.Module) -> list[torch.Tensor]:
    return [b.detach().clone() for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for b in (m.running_mean, m.running_var, m.num_batches_tracked)]


def _data(n: int = 10, t: int = 16) -> np.ndarray:
    g = np.random.default_rng(0)
    return (g.standard_normal((n, 3, t, 25, 2)) * 0.3).astype(np.float32)


def test_training_batches_read_the_rows_in_order_in_batches_of_the_given_size():
    method = SkeletonCLR(tiny_config(SkeletonCLR), "ntu25")
    data, lengths = _data(), np.arange(10) + 3
    seen = list(method.training_batches("a test", data, lengths, batch_size=4))
    assert [list(rows) for rows, _, _ in seen] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert torch.equal(seen[1][1], torch.from_numpy(data[4:8])) and seen[2][2].tolist() == [11, 12]
    chosen = list(method.training_batches("a test", data, None, rows=[7, 2], batch_size=4))
    assert [list(r) for r, _, _ in chosen] == [[7, 2]] and chosen[0][2] is None
    assert torch.equal(chosen[0][1], torch.from_numpy(data[[7, 2]]))


def test_without_a_trainer_the_pass_names_what_needs_the_data():
    method = SkeletonCLR(tiny_config(SkeletonCLR), "ntu25")
    with pytest.raises(RuntimeError, match="skeletonclr needs the training data .* to compute the codebook"):
        next(method.training_batches("the codebook"))


def test_encode_all_is_the_train_mode_encoder_on_shuffled_batches_and_moves_no_statistic():
    """Independent route: a copy of the key encoder in train mode, fed by hand the batches the pass read (seen
    through a wrapper), gives the same features at their rows (batch statistics, no dropout since it is 0); the
    batches are a seeded shuffle, not dataset order (a class-sorted set would give one-class batches); the
    method's running statistics stay as they were."""
    method = SkeletonCLR(tiny_config(SkeletonCLR), "ntu25").train()
    data = _data()
    before = _running(method)
    read = method.training_batches
    seen: list[np.ndarray] = []

    def spy(*args, **kwargs):
        for index, x, valid in read(*args, **kwargs):
            seen.append(np.array(index))
            yield index, x, valid

    method.training_batches = spy
    features = method.encode_all(method.encode_key, "a test", data, batch_size=4)
    assert sorted(np.concatenate(seen).tolist()) == list(range(10)) and [len(b) for b in seen] == [4, 4, 2]
    assert any(list(b) != list(range(b[0], b[0] + len(b))) for b in seen)  # not dataset-order ranges
    reference = copy.deepcopy(method)
    expected = torch.zeros_like(features)
    for index in seen:
        expected[torch.as_tensor(index)] = reference.encode_key(torch.from_numpy(data[index]))
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(before, _running(method)))
    assert not all(torch.equal(a, b) for a, b in zip(before, _running(reference)))  # the route itself moved them
    assert not features.requires_grad
    first = [b.tolist() for b in seen]
    seen.clear()
    torch.testing.assert_close(method.encode_all(method.encode_key, "a test", data, batch_size=4), features)
    assert [b.tolist() for b in seen] == first  # seeded: the same batches each pass


def test_frozen_statistics_normalise_with_the_batch_keep_dropout_and_update_nothing():
    torch.manual_seed(0)
    net = nn.Sequential(nn.BatchNorm1d(3), nn.Dropout(0.5)).train()
    x = torch.randn(64, 3) * 4 + 2
    before = _running(net)
    with frozen_statistics(net):
        y = net(x)
    assert all(torch.equal(a, b) for a, b in zip(before, _running(net)))
    assert net[0].track_running_stats  # restored
    kept = y != 0
    assert 0.3 < kept.float().mean() < 0.7  # dropout still drew its mask
    by_hand = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5) * 2  # batch statistics, ×1/(1-p)
    torch.testing.assert_close(y[kept], by_hand[kept], rtol=1e-4, atol=1e-4)


def test_side_effect_free_puts_a_recurrent_layer_in_eval_mode_only_when_it_has_dropout():
    plain_rnn = nn.GRU(4, 3, num_layers=2, dropout=0.0).train()
    dropping = nn.GRU(4, 3, num_layers=2, dropout=0.3).train()
    with side_effect_free(plain_rnn, dropping):
        assert plain_rnn.training  # cuDNN can differentiate it in train mode; nothing random happens there
        assert not dropping.training
    assert plain_rnn.training and dropping.training


class _TwoBanks(SkeletonCLR):
    name = "two_banks_test"

    def build_projector(self) -> nn.Module:
        return nn.Linear(self.encoder_q.feature_dim, int(self.cfg.method.feature_dim))

    def build_banks(self) -> dict[str, nn.Module]:
        return {**super().build_banks(), "extra": MemoryQueue(5, int(self.cfg.method.feature_dim))}


def test_the_build_hooks_give_the_projectors_and_banks_a_method_asks_for():
    method = _TwoBanks(tiny_config(SkeletonCLR), "ntu25")
    assert isinstance(method.projector_q, nn.Linear) and isinstance(method.projector_k, nn.Linear)
    assert torch.equal(method.projector_q.weight, method.projector_k.weight)
    assert not method.projector_k.weight.requires_grad
    assert method.bank("extra").bank.shape == (5, 128) and method.bank("queue").bank.shape == (64, 128)
    assert {"extra.bank", "queue.bank"} <= set(method.state_dict())
