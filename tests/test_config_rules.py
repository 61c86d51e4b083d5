"""Every config value checked once, at composition, by the rule declared with its default (skelssl/settings.py):
the cases of issue 21 by hand, the rules' edges, and a fuzzer of overrides whose accepted configs must build."""

from __future__ import annotations

import os

import lightning as L
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skelssl.cli import main
from skelssl.config import load_config, rules_for
from skelssl.errors import UserError
from skelssl.methods import METHODS, get_method
from skelssl.models import ENCODERS
from skelssl.settings import Choice, Items, Nullable, Number, plain
from tests.conftest import tiny_overrides

# (override, what the one-line error must say): each was a traceback or a silently wrong run before
CASES = [
    ("trainer.epochs=abc", "config key 'trainer.epochs' = 'abc' (the command line): must be a whole number >= 1"),
    ("trainer.seed=abc", "'trainer.seed' = 'abc' (the command line): must be a whole number in [0, 4294967295]"),
    ("trainer.seed=-1", "'trainer.seed' = -1 (the command line): must be a whole number in [0, 4294967295]"),
    ("optim.lr=abc", "'optim.lr' = 'abc' (the command line): must be a number > 0"),
    ("optim.lr=-1", "'optim.lr' = -1 (the command line): must be a number > 0"),
    ("optim.milestones=abc", "'optim.milestones' = 'abc' (the command line): must be a list of items, each a whole "
                             "number >= 0"),
    ("method.momentum=2", "'method.momentum' = 2 (the command line): must be a number in [0, 1)"),
    ("method.momentum=1", "'method.momentum' = 1 (the command line): must be a number in [0, 1)"),
    ("method.temperature=0", "'method.temperature' = 0 (the command line): must be a number > 0"),
    ("trainer.precision=foo", "'trainer.precision' = 'foo' (the command line): must be one of 32-true, 16-mixed"),
    ("trainer.accelerator=gpu", "'trainer.accelerator' = 'gpu' (the command line): asks for a CUDA GPU, but this "
                                "machine has none"),
    ("trainer.devices=abc", "'trainer.devices' = 'abc' (the command line): must be auto, a number of devices >= 1"),
    ("data.num_workers=-2", "'data.num_workers' = -2 (the command line): must be a whole number >= 0"),
    ("model.stgcn.hidden_channels=0", "'model.stgcn.hidden_channels' = 0 (the command line): must be a whole "
                                      "number >= 1"),
    ("eval.knn.k=[0]", "'eval.knn.k' = [0] (the command line): item 0 (0) must be a whole number >= 1"),
    ("augment.blur_kernel_size=4", "'augment.blur_kernel_size' = 4 (the command line): must be a positive odd"),
    ("augment.crop_scale=[0.9,0.2]", "'augment.crop_scale' = [0.9, 0.2] (the command line): must be a list of 2 "
                                     "items, each a number > 0, in increasing order"),
    ("tracking.loggers=[csv,foo]", "'tracking.loggers' = ['csv', 'foo'] (the command line): item 1 ('foo') must be "
                                   "one of csv, tensorboard, mlflow, wandb"),
]


@pytest.mark.parametrize("override,expected", CASES)
def test_a_bad_value_is_one_line_naming_key_value_rule_and_source(override, expected, capsys, tiny_dataset,
                                                                  tmp_path):
    if override == "trainer.accelerator=gpu":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a CUDA GPU: accelerator=gpu is valid here")
    run_dir = tmp_path / "run"
    code = main(["pretrain", *tiny_overrides(tiny_dataset, run_dir, **{"trainer.epochs": 1}), override])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert expected in err
    assert not run_dir.exists()  # refused before anything was written


def test_the_source_named_is_where_the_value_came_from(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text("optim:\n  lr: 0\n")
    with pytest.raises(UserError, match=rf"'optim.lr' = 0 \('{own}'\): must be a number > 0"):
        load_config(own)
    with pytest.raises(UserError, match=r"'method.queue_size' = 0 \(the command line\)"):
        load_config(own, ["optim.lr=0.5", "method.queue_size=0"])


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  epochs: 1\noptim:\n  milestones: [1, 2\n")
    with pytest.raises(UserError, match=rf"{bad}:5:1: not a readable config YAML file \(.*"):
        load_config(bad)


def test_rule_edges():
    assert Number(ge=0, lt=1).problem(0) is None and Number(ge=0, lt=1).problem(0.999) is None
    assert Number(ge=0, lt=1).problem(1) and Number(ge=0, lt=1).problem(-1e-9)
    assert Number(whole=True).problem(2.0) and Number(whole=True).problem(True) and Number().problem(True)
    assert Number().problem(float("nan")) and Number().problem(float("inf")) and Number().problem("1")
    assert Number(gt=0).problem(3) is None  # a whole number where a float is declared
    assert Choice((16, "32-true")).problem("16") and Choice((16, "32-true")).problem(16) is None
    assert Items(Number(), length=2, ascending=True).problem([1, 1]) is None
    assert Items(Number(), length=2, ascending=True).problem([2, 1])
    assert Items(Number(whole=True), min_length=1).problem([])
    assert Nullable(Number(gt=0)).problem(None) is None and Nullable(Number(gt=0)).problem(0)


def _encoders_of(method: str) -> list[str]:
    dense = get_method(method).requires_dense_features
    return [name for name, cls in ENCODERS.items() if not dense or name == "stgcn"]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_default_keeps_its_own_rule(method):
    for encoder in _encoders_of(method):
        cfg = load_config(None, [f"method.name={method}", f"model.encoder={encoder}"])  # validates
        assert cfg.method.name == method
        declared = plain(get_method(method).DEFAULTS)
        rules = rules_for(method, encoder)
        for key, value in declared.items():
            if f"method.{key}" in rules:
                assert rules[f"method.{key}"].problem(value) is None, key


# ----------------------------------------------------------------------------------------- the fuzzer
PATHS = ("data.root", "run_dir", "model.init_from", "tracking.mlflow_tracking_uri")  # what the start would use
VALUES = [-1, 0, 1, 2, 3, 7, 64, 0.0, 0.5, 1.5, -0.5, 1e-4, True, False, "abc", "", "auto", "nan", "1e-3",
          None, [], [0], [1], [1, 2], [2, 1], [0.5, 0.5], [0.2, 0.3, 0.5], ["abc"], {"joint": 1}]


TINY_ENCODERS = {"bigru": ["model.bigru.hidden_size=8", "model.bigru.num_layers=1"],
                 "bilstm": ["model.bilstm.hidden_size=8", "model.bilstm.num_layers=1"],
                 "hico": ["model.hico.hidden_size=8", "model.hico.num_layers=1"]}


def _as_override(key: str, value: object) -> str:
    import json

    if value is None:
        return f"{key}=null"
    if isinstance(value, str):
        return f"{key}='{value}'" if value else f"{key}=''"
    return f"{key}={json.dumps(value)}"


@st.composite
def overrides(draw):
    method = draw(st.sampled_from(sorted(METHODS)))
    encoder = draw(st.sampled_from(_encoders_of(method)))
    keys = sorted(key for key in rules_for(method, encoder) if not key.startswith(PATHS)
                  and key not in ("method.name", "model.encoder"))
    chosen = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True))
    return method, encoder, [(key, draw(st.sampled_from(VALUES))) for key in chosen]


@given(case=overrides())
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 60)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_overrides_are_refused_by_name_or_build(case, tiny_dataset, tmp_path):
    """An override is refused at composition with a message naming its key, or the config it gives builds: the
    method (its networks and optimiser) and the Lightning trainer, with no other error than skelssl's own."""
    method, encoder, items = case
    base = [item for item in tiny_overrides(tiny_dataset, tmp_path / "run", **{
        "method.name": method, "model.encoder": encoder}) if encoder == "stgcn" or not item.startswith("model.stgcn")]
    base += TINY_ENCODERS.get(encoder, [])
    given_items = [_as_override(key, value) for key, value in items]
    try:
        cfg = load_config(None, base + given_items)
    except UserError as err:
        assert any(f"'{key}'" in str(err) or f"'{key}." in str(err) for key, _ in items), f"{given_items}: {err}"
        return
    try:
        built = get_method(method)(cfg, layout="ntu25", train_data_info={"samples": 32, "num_classes": 4,
                                                                          "channels": 3})
        built.configure_optimizers()
        L.Trainer(max_epochs=int(cfg.trainer.epochs), accelerator=cfg.trainer.accelerator,
                  devices=cfg.trainer.devices, strategy=cfg.trainer.strategy, num_nodes=int(cfg.trainer.num_nodes),
                  precision=cfg.trainer.precision, logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, deterministic=bool(cfg.trainer.deterministic))
    except UserError:
        pass  # refused with skelssl's own message when the method is built


def test_a_value_where_a_section_belongs_is_named(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text("optim: 5\n")
    with pytest.raises(UserError, match=rf"config key 'optim' = 5 \('{own}'\): must be a section of keys"):
        load_config(own)
    with pytest.raises(UserError, match=r"config key 'eval.fusion_weights' = \[\] \(the command line\): must be a "
                                        "mapping"):
        load_config(None, ["eval.fusion_weights=[]"])
    with pytest.raises(UserError, match=r"config key 'trainer' = 2 \(the command line\): must be a section of keys"):
        load_config(None, ["trainer.epochs=1", "trainer=2"])
    with pytest.raises(UserError, match=r"override 'trainer=\[1\]' conflicts with 'trainer.epochs=1': 'trainer' "
                                        "cannot be both a value and a section of keys"):
        load_config(None, ["trainer.epochs=1", "trainer=[1]"])
