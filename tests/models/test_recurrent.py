"""Recurrent encoders (BiGRU, BiLSTM) and HiCo's hierarchical encoder: shapes, token orders, parameter counts
and FLOPs against the papers' figures computed by hand, and the refusal of methods that need dense maps."""

from __future__ import annotations

import pytest
import torch

from skelssl.errors import UserError
from skelssl.models import build_encoder, get_encoder
from skelssl.models.flops import count_flops
from skelssl.models.hico import DownsamplingModule, HiCoEncoder, joints_as_tokens
from skelssl.models.recurrent import BiGRU, BiLSTM, frames_as_tokens, resample_frames
from skelssl.transforms.temporal import crop_resize
from skelssl.settings import plain


def gru_params(inputs: int, hidden: int, layers: int) -> int:
    """A bidirectional GRU: per layer and direction W_ih (3H x in), W_hh (3H x H), two biases of 3H."""
    total, size = 0, inputs
    for _ in range(layers):
        total += 2 * (3 * hidden * size + 3 * hidden * hidden + 6 * hidden)
        size = 2 * hidden
    return total


def lstm_params(inputs: int, hidden: int, layers: int) -> int:
    """A bidirectional LSTM: four gates instead of three."""
    total, size = 0, inputs
    for _ in range(layers):
        total += 2 * (4 * hidden * size + 4 * hidden * hidden + 8 * hidden)
        size = 2 * hidden
    return total


def test_bigru_is_the_isc_cmd_network_its_flops_match_a2mc_table_1():
    encoder = BiGRU("ntu25")  # 3 layers x 1024, 150 inputs (2 persons x 25 joints x 3)
    assert encoder.input_size == 150 and encoder.feature_dim == 2048
    expected = gru_params(150, 1024, 3) + 2 * 150  # + the input BatchNorm's weight and bias
    assert expected == 44_998_956
    assert sum(p.numel() for p in encoder.parameters()) == expected
    # A²MC Table I: 2.88-2.93 G (multiply-adds) per sequence for the BiGRU methods at 64 frames. By hand: every
    # weight matrix of the GRU is used once per frame.
    weights = gru_params(150, 1024, 3) - 3 * 2 * 6 * 1024
    flops = count_flops(encoder.eval(), torch.zeros(1, 3, 64, 25, 2))
    assert flops == 2 * 64 * weights
    assert round(flops / 2 / 1e9, 2) == 2.88


def test_bilstm_is_hico_lstms_two_layer_bidirectional_lstm_with_output_512():
    encoder = BiLSTM("ntu25")
    assert encoder.feature_dim == 512
    assert sum(p.numel() for p in encoder.parameters()) == lstm_params(150, 256, 2) + 300
    out = encoder(torch.randn(3, 3, 64, 25, 2))
    assert out.shape == (3, 512)


def test_the_bigru_normalises_each_input_coordinate_by_the_batchs_statistics():
    """In training the input BatchNorm standardises each of the 150 (person, joint, coordinate) inputs over the
    batch's sequences and frames: the output equals that of the same GRU without the norm fed the input
    standardised by hand (biased variance, eps 1e-5), and the running mean moves 0.1 of the way to the mean."""
    torch.manual_seed(0)
    encoder = BiGRU("ntu25", hidden_size=4, num_layers=1).train()
    plain_gru = BiGRU("ntu25", hidden_size=4, num_layers=1, input_norm=False)
    plain_gru.rnn.load_state_dict(encoder.rnn.state_dict())
    scale = torch.rand(1, 3, 1, 25, 2) * 4 + 0.5  # every input its own scale and offset
    x = torch.randn(5, 3, 64, 25, 2) * scale + 3 * scale
    mean = x.mean(dim=(0, 2), keepdim=True)
    var = x.var(dim=(0, 2), unbiased=False, keepdim=True)
    torch.testing.assert_close(encoder(x), plain_gru((x - mean) / torch.sqrt(var + 1e-5)), rtol=1e-4, atol=1e-5)
    n_mean = mean.reshape(3, 25, 2).permute(2, 1, 0).reshape(150)  # the token order (person, joint, coordinate)
    torch.testing.assert_close(encoder.input_norm.running_mean, 0.1 * n_mean, rtol=1e-5, atol=1e-6)


def test_final_pooling_joins_each_directions_summary_of_the_whole_sequence():
    torch.manual_seed(0)
    encoder = BiGRU("ntu25", hidden_size=6, num_layers=2).eval()
    x = torch.randn(4, 3, 64, 25, 2)
    outputs, _ = encoder.sequence(x)
    # forward direction after the last frame, backward direction after (its pass ends at) the first frame
    torch.testing.assert_close(encoder(x), torch.cat([outputs[:, -1, :6], outputs[:, 0, 6:]], dim=1))
    for pooling, reduce in (("mean", lambda o: o.mean(1)), ("max", lambda o: o.amax(1))):
        other = BiGRU("ntu25", hidden_size=6, num_layers=2, pooling=pooling).eval()
        other.load_state_dict(encoder.state_dict())
        torch.testing.assert_close(other(x), reduce(outputs))


def test_inputs_of_another_length_are_resampled_like_a_whole_sequence_crop_resize():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 50, 25, 2)
    # the independent route: crop_resize with the whole sequence as the window
    whole = crop_resize(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), out_frames=64, min_frames=1)
    torch.testing.assert_close(resample_frames(x, 64), whole)
    encoder = BiGRU("ntu25", hidden_size=4, num_layers=1).eval()
    torch.testing.assert_close(encoder(x), encoder(whole))
    assert resample_frames(whole, 64) is whole


def test_the_frame_token_holds_person_joint_coordinate_in_that_order():
    x = torch.arange(2 * 3 * 4 * 5 * 2, dtype=torch.float32).view(2, 3, 4, 5, 2)  # (N, C, T, V, M)
    tokens = frames_as_tokens(x)
    assert tokens.shape == (2, 4, 2 * 5 * 3)
    n, t, m, v, c = 1, 2, 1, 3, 2
    assert tokens[n, t, (m * 5 + v) * 3 + c] == x[n, c, t, v, m]


def test_single_person_data_is_zero_padded_and_too_many_persons_is_an_error():
    encoder = BiGRU("ntu25", hidden_size=4, num_layers=1).eval()
    one = torch.randn(2, 3, 64, 25, 1)
    padded = torch.cat([one, torch.zeros_like(one)], dim=4)
    torch.testing.assert_close(encoder(one), encoder(padded))
    with pytest.raises(ValueError, match="2 person.*M=3.*persons=3"):
        encoder(torch.randn(2, 3, 64, 25, 3))


def test_hico_encoder_tokens_granularities_and_instance_feature():
    torch.manual_seed(0)
    encoder = HiCoEncoder("ntu25", hidden_size=8, num_layers=1, granularities=4).eval()
    x = torch.randn(3, 3, 50, 25, 2)
    clips, parts = encoder.hierarchy(x)
    assert clips.shape == parts.shape == (3, 4, 8)
    assert encoder.feature_dim == 2 * 4 * 8
    torch.testing.assert_close(encoder(x), torch.cat([clips.reshape(3, -1), parts.reshape(3, -1)], dim=1))
    # granularity 1 by hand: embed the 64 frame tokens, BiLSTM, max over tokens
    x64 = resample_frames(x, 64)
    out, _ = encoder.t_encoder(encoder.t_embedding(frames_as_tokens(x64)))
    torch.testing.assert_close(clips[:, 0], out.amax(dim=1))
    # granularity 3: two passes of the spatial downsampling module, 50 -> 25 -> 12 joint tokens
    spatial = encoder.s_embedding(joints_as_tokens(x64))
    twice = encoder.s_downsample(encoder.s_downsample(spatial))
    assert twice.shape == (3, 12, 8)
    out, _ = encoder.s_encoder(twice)
    torch.testing.assert_close(parts[:, 2], out.amax(dim=1))


def test_hico_joint_tokens_hold_a_joints_trajectory_person_major():
    x = torch.arange(2 * 3 * 4 * 5 * 2, dtype=torch.float32).view(2, 3, 4, 5, 2)
    tokens = joints_as_tokens(x)
    assert tokens.shape == (2, 2 * 5, 4 * 3)
    n, c, t, v, m = 0, 1, 3, 4, 1
    assert tokens[n, m * 5 + v, t * 3 + c] == x[n, c, t, v, m]


def test_downsampling_module_halves_the_tokens_after_a_depthwise_convolution():
    torch.manual_seed(0)
    module = DownsamplingModule(4, kernel_size=5, factor=2)
    tokens = torch.randn(2, 9, 4)
    # by hand for channel 1 of token 2: the depthwise kernel over tokens 0..4, LayerNorm, ReLU, then the max of
    # tokens 2 and 3
    conv = torch.nn.functional.conv1d(tokens.transpose(1, 2), module.conv.weight, module.conv.bias, padding=2,
                                      groups=4).transpose(1, 2)
    normed = torch.relu(torch.nn.functional.layer_norm(conv, (4,), module.norm.weight, module.norm.bias))
    out = module(tokens)
    assert out.shape == (2, 4, 4)
    torch.testing.assert_close(out[:, 1], torch.maximum(normed[:, 2], normed[:, 3]))


def test_hico_lstm_parameter_count_by_hand():
    encoder = HiCoEncoder("ntu25")  # H 512, one BiLSTM layer of 256 per direction (the authors' options), G 4
    h = 512

    def embedding(inputs):  # Linear, LayerNorm, Linear
        return inputs * h + h + 2 * h + h * h + h

    udm = h * 5 + h + 2 * h  # depthwise conv (weight + bias) + LayerNorm
    expected = embedding(150) + embedding(64 * 3) + 2 * udm + 2 * lstm_params(h, h // 2, 1)
    assert sum(p.numel() for p in encoder.parameters()) == expected
    assert encoder.feature_dim == 4096


def test_official_init_is_xavier_uniform_on_weight_matrices():
    torch.manual_seed(0)
    encoder = HiCoEncoder("ntu25", hidden_size=64, num_layers=1, init="official")
    w = encoder.t_embedding[0].weight  # (64, 150): xavier bound sqrt(6 / (150 + 64))
    bound = (6 / (150 + 64)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    default = HiCoEncoder("ntu25", hidden_size=64, num_layers=1)
    assert default.t_embedding[0].weight.abs().max() <= 1 / 150 ** 0.5  # PyTorch's kaiming-uniform bound


@pytest.mark.parametrize("name", ["bigru", "bilstm", "hico"])
def test_the_registry_builds_each_encoder_from_its_config_keys(name):
    settings = dict(plain(get_encoder(name).DEFAULTS), hidden_size=8, num_layers=1)
    encoder = build_encoder({"encoder": name, name: settings}, "kinect20")  # 20 joints
    assert not encoder.dense
    assert encoder(torch.randn(2, 3, 30, 20, 1)).shape == (2, encoder.feature_dim)


@pytest.mark.parametrize("method", ["aimclr", "actclr"])
@pytest.mark.parametrize("encoder", ["bigru", "bilstm"])
def test_methods_that_need_dense_maps_refuse_recurrent_encoders(method, encoder):
    from skelssl.config import load_config
    from skelssl.methods import get_method

    cfg = load_config(None, [f"model.{encoder}.hidden_size=4", f"model.{encoder}.num_layers=1",
                             "method.queue_size=64"], method=method, encoder=encoder)
    with pytest.raises(UserError, match=f"'{method}' needs dense.*'{encoder}'"):
        get_method(method)(cfg, "ntu25")


@pytest.mark.parametrize("encoder", ["bigru", "bilstm"])
def test_skeletonclr_learns_on_a_recurrent_encoder(encoder):
    from skelssl.config import load_config
    from skelssl.methods import get_method
    from tests.methods.test_hico import losses_on_a_fixed_batch, moving_batch

    cfg = load_config(None, [f"model.{encoder}.hidden_size=16", f"model.{encoder}.num_layers=1",
                             "method.queue_size=32"], method="skeletonclr", encoder=encoder)
    torch.manual_seed(0)
    method = get_method("skeletonclr")(cfg, "ntu25").train()
    with torch.no_grad():  # negatives: keys of other sequences
        method.queue.enqueue(method.encode_key(method.to_stream(moving_batch(n=32, seed=1)["x"])))
    before, after = losses_on_a_fixed_batch(method, moving_batch(), steps=10)
    print(encoder, "skeletonclr loss before", before, "after", after)
    assert after < before - 0.5, (before, after)
