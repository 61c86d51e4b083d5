"""Issue 23, the FLOP counter: recurrent layers (LSTM, GRU, RNN) counted, so HiCo's GFLOP figures are whole."""

F = "tests/models/test_flops.py::"
P = "skelssl/models/flops.py"
ENTRIES = [
    dict(name="lstm-counted-as-zero", path=P,
         old='    **{op: _mkldnn_layer for op in _available("mkldnn_rnn_layer")},\n', new="",
         tests=(F + "test_the_lstm_closed_form_worked_by_hand",),
         why="the oneDNN LSTM counted 0 again: HiCo-LSTM's encoder 0.08 instead of 1.42 GFLOP per sequence"),
    dict(name="count-flops-without-recurrent-formulas", path=P,
         old="    counter = flop_counter()\n", new="    counter = FlopCounterMode(display=False)\n",
         tests=(F + "test_hico_lstm_encoder_flops_by_hand",),
         why="count_flops used torch's counter alone, which has no formula for the fused recurrent operators"),
    dict(name="rnn-steps-one-dimension", path=P,
         old="    steps = prod(input_shape[:-1])\n", new="    steps = input_shape[0]\n",
         tests=(F + "test_recurrent_layers_count_every_layer_direction_and_projection",),
         why="only the first dimension counted as steps: the sequences of the batch (or, batch_first, its steps) "
             "dropped"),
    dict(name="rnn-biases-counted", path=P,
         old="if shape is not None and len(shape) == 2)\n", new="if shape is not None)\n",
         tests=(F + "test_cudnns_fused_operator_counts_all_layers_and_directions",),
         why="cuDNN's biases (in its weight list) counted as multiply-adds, against the counter's convention "
             "(element-wise work not counted)"),
    dict(name="lstm-backward-counted-once", path=P,
         old="    return 2 * _mkldnn_layer(input_shape, w_ih, w_hh)\n",
         new="    return _mkldnn_layer(input_shape, w_ih, w_hh)\n",
         tests=(F + "test_the_lstm_backward_counts_twice_its_forward",),
         why="the LSTM's backward counted as one forward, not two (inputs' and weights' gradients): step "
             "figures of HiCo short"),
    dict(name="lstm-backward-uncounted", path=P,
         old='    **{op: _mkldnn_layer_backward for op in _available("mkldnn_rnn_layer_backward")},\n', new="",
         tests=(F + "test_the_lstm_backward_counts_twice_its_forward",),
         why="the LSTM's backward counted 0: bench_methods' step figures of HiCo would hold only its forward"),
    dict(name="cudnn-rnn-counted-as-zero", path=P,
         old='_available("_cudnn_rnn", "miopen_rnn")', new='_available("miopen_rnn")',
         tests=(F + "test_cudnns_fused_operator_counts_all_layers_and_directions",),
         why="on a GPU every LSTM, GRU and RNN (cuDNN's one fused operator) counted 0"),
    dict(name="cudnn-directions-not-doubled", path=P,
         old="    return 2 * recurrent_macs(input_shape, weights)\n",
         new="    return 2 * recurrent_macs(input_shape, weights[: len(weights) // 2])\n",
         tests=(F + "test_cudnns_fused_operator_counts_all_layers_and_directions",),
         why="half of cuDNN's weight list counted: one direction of a 1-layer, the first layer of a 2-layer "
             "bidirectional network"),
    dict(name="cudnn-layers-not-multiplied", path=P,
         old="    return 2 * recurrent_macs(input_shape, weights)\n",
         new="    return 2 * recurrent_macs(input_shape, weights[:8])\n",
         tests=(F + "test_cudnns_fused_operator_counts_all_layers_and_directions",),
         why="only the first layer (both directions: 8 tensors with biases) of a multi-layer network counted"),
    dict(name="cudnn-backward-mask-ignored", path=P,
         old="    return _fused_rnn(input_shape, weights) * (int(any(mask[:3])) + int(mask[3]))\n",
         new="    return 2 * _fused_rnn(input_shape, weights)\n",
         tests=(F + "test_cudnns_backward_counts_the_gradients_asked_for",),
         why="a backward that computes only the input or only the weight gradients counted as both"),
]
