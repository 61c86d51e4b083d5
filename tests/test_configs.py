"""Composed configs: every dataset-split x method x stream combination loads from the shipped pieces, with the
papers' constants where they belong, and keys that moved or vanished are named."""

from __future__ import annotations

import itertools

import pytest

from skelssl.config import load_config, migrate_config, piece_names
from skelssl.errors import UserError

DATASETS = ["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset", "pkummd1-xsub", "pkummd1-xview",
            "pkummd2-xsub", "pkummd2-xview", "nwucla-xview", "synthetic-xsub", "utkinect-xsub", "msr-xsub", "sbu-fold1"]
METHODS = ["skeletonclr", "aimclr", "actclr"]
STREAMS = ["joint", "motion", "bone"]


def test_the_shipped_pieces():
    assert piece_names("datasets") == sorted(DATASETS)
    assert set(METHODS) <= set(piece_names("methods"))
    assert "stgcn" in piece_names("encoders")


@pytest.mark.parametrize("dataset,method,stream", itertools.product(DATASETS, METHODS, STREAMS))
def test_every_combination_loads(dataset, method, stream):
    cfg = load_config(None, [f"data.stream={stream}"], dataset=dataset, method=method, encoder="stgcn")
    name, split = dataset.rsplit("-", 1)
    assert cfg.method.name == method and cfg.data.stream == stream and cfg.data.split == split
    assert cfg.model.encoder == "stgcn" and cfg.model.stgcn.hidden_channels == 16
    # ActCLR: 100 warm-up epochs (MoCo v2, its training overview's step 1) before the paper's 300
    # the small sets' pieces shrink the queue (and, below ~300 training sequences, the batch)
    small_queue, small_batch = {"nwucla": (1024, 128), "synthetic": (1024, 128), "utkinect": (64, 32),
                                "msr": (256, 64), "sbu": (256, 64)}.get(name, (None, 128))
    assert cfg.trainer.epochs == (400 if method == "actclr" else 300) and cfg.trainer.batch_size == small_batch
    paper_queue = {"skeletonclr": 32768, "aimclr": 32768, "actclr": 65536}[method]
    assert cfg.method.queue_size == (small_queue or paper_queue)
    assert cfg.method.queue_size >= cfg.trainer.batch_size
    assert (cfg.optim.name, cfg.optim.lr) == (("adam", 1e-3) if method == "actclr" else ("sgd", 0.1))


def test_precedence_piece_then_file_then_command_line(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text("defaults: [datasets/nwucla-xview, methods/aimclr]\nmethod:\n  queue_size: 512\n"
                   "trainer:\n  epochs: 20\n")
    cfg = load_config(own, ["trainer.epochs=7"])
    assert cfg.method.name == "aimclr" and cfg.data.dataset == "nw-ucla"
    assert cfg.method.queue_size == 512 and cfg.trainer.epochs == 7
    assert cfg.method.nnm_start_epoch == 150  # the method's own default


def test_moved_and_removed_keys_are_named():
    with pytest.raises(UserError, match="'model.hidden_channels'.*now 'model.stgcn.hidden_channels'"):
        load_config(None, ["model.hidden_channels=8"])
    with pytest.raises(UserError, match="data.layout.*comes from the prepared dataset"):
        load_config(None, ["data.layout=ntu25"])
    with pytest.raises(UserError, match="no dataset config 'ntu61-xsub'.*ntu60-xsub"):
        load_config(None, dataset="ntu61-xsub")


def test_a_config_saved_by_an_earlier_version_is_migrated():
    old = {"model": {"encoder": "stgcn", "hidden_channels": 8, "out_channels": 32, "init": "pytorch"},
           "data": {"layout": "ntu25", "stream": "joint"}}
    new = migrate_config(old)
    assert new["model"] == {"encoder": "stgcn", "init": "pytorch", "stgcn": {"hidden_channels": 8,
                                                                          "out_channels": 32}}
    assert new["data"] == {"stream": "joint"}


def test_the_flat_eval_keys_of_earlier_versions_name_their_section_and_migrate():
    """eval.* sections come from the protocols' dataclasses; an old flat key on the command line names its new
    place, and a checkpoint's config written with the flat keys keeps its values (hand-written old config)."""
    with pytest.raises(UserError, match=r"'eval\.linear_lr'.*it is now 'eval\.linear\.lr'"):
        load_config(None, ["eval.linear_lr=3.0"])
    old = {"eval": {"linear_lr": 3.0, "linear_standardize": False, "knn_k": [5], "finetune_batchnorm": "frozen",
                    "seg_frame_step": 2, "semi_percents": [5]}}
    new = migrate_config(old)["eval"]
    assert (new["linear"]["lr"], new["linear"]["standardize"], new["knn"]["k"], new["finetune"]["batchnorm"],
            new["seg"]["frame_step"], new["semi"]["percents"]) == (3.0, False, [5], "frozen", 2, [5])
    assert new["linear"]["epochs"] == 100 and "linear_lr" not in new  # the rest of the section: the defaults


def test_a_probe_built_in_code_trains_what_the_cli_trains():
    """The linear probe's defaults in code (benchmarks, the API) are the CLI's: lr 0.1 on z-scored features
    (before, LinearProbeConfig said lr 3.0 while eval.linear_lr was 0.1)."""
    from skelssl.protocol_configs import LinearProbeConfig

    cli = load_config(None, []).eval.linear
    code = LinearProbeConfig()
    assert (code.lr, code.standardize, code.epochs, list(code.milestones)) == (0.1, True, 100, [80])
    assert (cli.lr, cli.standardize, cli.epochs, list(cli.milestones)) == (0.1, True, 100, [80])
