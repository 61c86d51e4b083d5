"""The shipped pieces of A²MC, HiCo and ProSL: every dataset-split x stream loads with the papers' constants, the
ProSL pieces switch the plug-in on over their base method, and k follows the dataset."""

from __future__ import annotations

import itertools

import pytest

from skelssl.config import load_config, piece_names

DATASETS = ["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset", "pkummd1-xsub", "pkummd1-xview",
            "pkummd2-xsub", "pkummd2-xview", "nwucla-xview", "synthetic-xsub"]
STREAMS = ["joint", "motion", "bone"]
PIECES = [("a2mc", "bigru"), ("a2mc", "stgcn"), ("hico", None), ("prosl-hico", None), ("prosl-skeletonclr", "stgcn"),
          ("prosl-skeletonclr", "bilstm")]
CODEBOOK = {"ntu60": 65, "ntu120": 130, "pkummd1": 55, "pkummd2": 55, "nwucla": 11, "synthetic": 13}


def test_the_new_pieces_are_shipped():
    assert {"a2mc", "hico", "prosl-hico", "prosl-skeletonclr"} <= set(piece_names("methods"))
    assert {"bigru", "bilstm", "hico"} <= set(piece_names("encoders"))


# Every dataset-split with every piece; the stream (an override, checked the same way for every piece) turns
# over, so each piece meets each stream on several datasets (tests/test_configs.py loads every stream too).
@pytest.mark.parametrize("dataset,piece,stream", [(d, p, STREAMS[(i + j) % 3]) for (i, d), (j, p) in
                                                  itertools.product(enumerate(DATASETS), enumerate(PIECES))])
def test_every_combination_loads_with_the_papers_constants(dataset, piece, stream):
    method, encoder = piece
    cfg = load_config(None, [f"data.stream={stream}"], dataset=dataset, method=method, encoder=encoder)
    name, split = dataset.rsplit("-", 1)
    small = name in ("nwucla", "synthetic")
    assert cfg.data.stream == stream and cfg.data.split == split
    assert cfg.plugins.prosl.codebook_size == CODEBOOK[name]
    assert cfg.plugins.prosl.enabled == method.startswith("prosl")
    if method == "a2mc":
        assert cfg.model.encoder == encoder
        assert (cfg.method.temperature, cfg.method.momentum, cfg.method.attack_lr, cfg.method.attack_bound) == \
            (0.07, 0.999, 0.1, 0.5)
        assert (cfg.method.bank_lr, cfg.method.bank_temperature, list(cfg.method.mix_lambdas)) == \
            (3.0, 0.03, [0.4, 0.3, 0.2, 0.1])
        assert cfg.method.queue_size == (1024 if small else 16384)
        assert (cfg.optim.lr, list(cfg.optim.milestones), cfg.trainer.epochs, cfg.trainer.batch_size) == \
            (0.01, [350], 450, 64)
    elif method in ("hico", "prosl-hico"):
        assert cfg.method.name == "hico" and cfg.model.encoder == "hico"
        assert cfg.model.hico.sequence_encoder == "lstm" and cfg.model.hico.hidden_size == 512
        assert cfg.model.hico.num_layers == 1  # the authors' released options; one BiLSTM layer, 2 x 256
        assert (cfg.method.temperature, cfg.optim.lr, cfg.trainer.batch_size) == (0.2, 0.01, 64)
        assert cfg.method.queue_size == (1024 if small else 2048)
        schedule = (450, [350], 400) if method == "prosl-hico" else (451, [351], 400)
        assert (cfg.trainer.epochs, list(cfg.optim.milestones), cfg.plugins.prosl.start_epoch) == schedule
    else:
        assert cfg.method.name == "skeletonclr" and cfg.model.encoder == encoder
        assert (cfg.plugins.prosl.start_epoch, cfg.trainer.epochs, cfg.optim.lr) == (250, 300, 0.1)
    assert cfg.plugins.prosl.outlier_threshold == 0.027


def test_hico_lstm_has_one_bilstm_layer_with_or_without_its_encoder_piece():
    """The authors' released options (num_layer 1) and ProSL §4.2 (output 512 = 2 x 256): one BiLSTM layer."""
    for encoder in (None, "hico"):
        assert load_config(None, [], method="prosl-hico", encoder=encoder).model.hico.num_layers == 1
