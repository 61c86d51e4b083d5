"""The side-effect-free forward (skelssl.models.passes): an auxiliary pass over the real ST-GCN gives the same
output twice and moves no BatchNorm statistic, with the fused CPU kernels on and off."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import skelssl.models.fused as fused
from skelssl.models.passes import side_effect_free
from skelssl.models.stgcn import STGCN


def _bn_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k or "num_batches" in k}


@pytest.mark.parametrize("fused_on", [True, False])
def test_two_passes_agree_and_running_statistics_stay(fused_on):
    if fused_on and fused.fused_kernels() is None:
        pytest.skip("the fused CPU kernels could not be built here (no C++ compiler or ninja)")
    torch.manual_seed(0)
    encoder = STGCN("ntu25", hidden_channels=8, out_channels=32, dropout=0.5).train()
    x = torch.randn(4, 3, 16, 25, 2)
    before = _bn_state(encoder)
    context = fused.kernels_disabled() if not fused_on else torch.enable_grad()
    with context:
        if fused_on:
            assert fused.can_fuse(torch.zeros(1, 1, 1, 1), encoder.blocks[1].tcn[0])  # the fused path is taken
        # Without the helper, dropout (module and fused kernels) makes two passes differ and the statistics move.
        first, second = encoder(x), encoder(x)
        assert not torch.equal(first, second)
        assert any(not torch.equal(before[k], v) for k, v in _bn_state(encoder).items())
        encoder.load_state_dict({**encoder.state_dict(), **before})
        global_rng = torch.get_rng_state()
        with side_effect_free(encoder):
            first, second = encoder(x), encoder(x)
        assert torch.equal(first, second)
        assert torch.equal(torch.get_rng_state(), global_rng)  # no random number drawn
        for key, value in _bn_state(encoder).items():
            assert torch.equal(value, before[key]), key
    # Back in training: dropout on again, statistics move again.
    assert encoder.training and all(m.training for m in encoder.modules())
    assert all(bn.track_running_stats for bn in encoder.modules() if isinstance(bn, nn.modules.batchnorm._BatchNorm))


def test_pass_normalises_with_the_batch_statistics_like_training():
    """BatchNorm inside the pass uses the batch's statistics (train-mode normalisation), not the running ones:
    equal to a train-mode forward without dropout."""
    torch.manual_seed(1)
    encoder = STGCN("ntu25", hidden_channels=8, out_channels=32, dropout=0.0).train()
    x = torch.randn(4, 3, 16, 25, 2) * 3 + 1
    with fused.kernels_disabled():
        expected = encoder(x)  # dropout 0: a plain train-mode forward
        with side_effect_free(encoder):
            got = encoder(x)
        eval_out = encoder.eval()(x)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, eval_out, atol=1e-3)


def test_recurrent_dropout_is_off_and_modes_are_restored_after_an_error():
    torch.manual_seed(2)
    gru = nn.GRU(6, 8, num_layers=2, dropout=0.5, batch_first=True).train()
    x = torch.randn(3, 5, 6)
    with side_effect_free(gru):
        a, _ = gru(x)
        b, _ = gru(x)
    assert torch.equal(a, b)
    with pytest.raises(RuntimeError):
        with side_effect_free(gru):
            raise RuntimeError("boom")
    assert gru.training
