"""Finetune, supervised, semi-supervised and transfer protocols: a toy encoder with known statistics, then the
protocols end to end on a tiny pretrained run (expected values by hand or by an independent route)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.data.prepared import PreparedMeta, load_meta, open_data, write_prepared
from skelssl.errors import UserError
from skelssl.evaluation import evaluate_backbone, evaluate_checkpoints, extract_features, load_backbone
from skelssl.evaluation import finetune as finetune_module
from skelssl.evaluation.batchnorm import recompute_batchnorm_statistics
from skelssl.evaluation.finetune import FinetuneConfig, finetune
from skelssl.evaluation.fusion import load_scores
from skelssl.evaluation.results import read_results
from skelssl.methods import method_from_checkpoint
from skelssl.skeleton.layouts import KINECT20, Layout

# ----------------------------------------------------------------------------------------- a toy encoder


class ToyEncoder(nn.Module):
    """Per-channel means -> BatchNorm -> Linear -> ReLU -> dropout: small enough to check by hand."""

    feature_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3)
        self.fc = nn.Linear(3, 8)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(torch.relu(self.fc(self.bn(x.mean(dim=(2, 3, 4))))))


def toy_data(seed: int, n: int):
    """Class = sign of channel 0's mean; channel 1 sits at +5 (its mean, which BatchNorm should learn)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    x = torch.randn(n, 3, 4, 5, 1, generator=gen) * 0.3
    x[:, 0] += (labels.float() * 2 - 1).view(n, 1, 1, 1)
    x[:, 1] += 5.0
    return x, labels


FAST = dict(epochs=15, lr=0.1, milestones=(12,), batch_size=16, eval_every=5)


def run_toy(**options):
    torch.manual_seed(0)
    encoder = ToyEncoder()
    start = copy.deepcopy(encoder.state_dict())
    (train_x, train_y), (test_x, test_y) = toy_data(1, 96), toy_data(2, 48)
    out = finetune(encoder, train_x, train_y, test_x, test_y, 2, FinetuneConfig(**{**FAST, **options}),
                   transform=lambda x: x)
    return encoder, start, out


def test_finetune_learns_and_trains_the_encoder():
    encoder, start, out = run_toy()
    assert out["final_top1"] > 0.9 and [e for e, _ in out["history"]] == [5, 10, 15]
    assert not torch.equal(encoder.fc.weight, start["fc.weight"])  # the encoder trains, not only the head
    assert out["test_logits"].shape == (48, 2)
    # BatchNorm in train mode: its running mean moved from 0 towards the channel means (0, 5, 0) by hand
    assert encoder.bn.running_mean[1].item() == pytest.approx(5.0, abs=0.3)
    assert abs(encoder.bn.running_mean[2].item()) < 0.3


def test_finetune_frozen_batchnorm_is_the_official_eval_mode():
    encoder, start, out = run_toy(batchnorm="frozen")
    assert torch.equal(encoder.bn.running_mean, start["bn.running_mean"])  # statistics never updated
    assert torch.equal(encoder.bn.running_var, start["bn.running_var"])
    assert not torch.equal(encoder.bn.weight, start["bn.weight"])  # its affine weights still train
    # dropout off: the frozen run does not depend on the dropout stream (the global RNG's seed)
    _, _, again = run_toy(batchnorm="frozen", seed=0)
    assert torch.equal(out["test_logits"], again["test_logits"])


def test_finetune_deterministic_per_seed():
    _, _, first = run_toy(seed=3)
    _, _, second = run_toy(seed=3)
    _, _, other = run_toy(seed=4)
    assert torch.equal(first["test_logits"], second["test_logits"])
    assert not torch.equal(first["test_logits"], other["test_logits"])


def test_finetune_leaves_the_callers_rng_alone():
    encoder = ToyEncoder()
    torch.manual_seed(11)
    finetune(encoder, *toy_data(1, 16), *toy_data(2, 8), 2, FinetuneConfig(epochs=1), transform=lambda x: x)
    after = torch.rand(3)
    torch.manual_seed(11)
    assert torch.equal(after, torch.rand(3))


class DropoutThenNorm(nn.Module):
    """Linear -> dropout -> BatchNorm: the BatchNorm sees dropout's rescaled activations in train mode."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.drop = nn.Dropout(0.5)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.bn(self.drop(self.fc(x)))


def test_recomputed_statistics_are_those_of_the_current_weights_without_dropout():
    torch.manual_seed(0)
    module = DropoutThenNorm()
    module.bn.running_mean.fill_(100.0)  # stale statistics, far from the data's
    data = torch.randn(24, 3) * 2 + 1
    batches = [data[:8], data[8:16], data[16:]]
    rng = torch.get_rng_state()
    seen = recompute_batchnorm_statistics(module, iter(batches))
    assert seen == 3 and torch.equal(torch.get_rng_state(), rng)  # dropout off: no random number drawn
    with torch.no_grad():  # by hand: the BatchNorm's inputs are fc(x), dropout off
        inputs = [module.fc(b) for b in batches]
    mean = sum(i.mean(0) for i in inputs) / 3  # equal batches, equal weights
    var = sum(i.var(0, unbiased=True) for i in inputs) / 3
    assert torch.allclose(module.bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(module.bn.running_var, var, atol=1e-5)
    assert module.bn.momentum == 0.1 and not module.training and not module.bn.training


def test_recomputing_over_no_batch_or_failing_half_way_keeps_the_statistics():
    module = DropoutThenNorm()
    module.bn.running_mean.fill_(7.0)
    assert recompute_batchnorm_statistics(module, iter([])) == 0
    assert torch.all(module.bn.running_mean == 7.0)

    def failing():
        yield torch.randn(4, 3)
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        recompute_batchnorm_statistics(module, failing())
    assert torch.all(module.bn.running_mean == 7.0) and module.bn.momentum == 0.1


def test_finetune_tests_with_the_statistics_of_its_final_weights():
    """The running averages after 15 epochs at momentum 0.1 only approach the data's statistics; the test
    pass must use the exact ones (the bug: eval mode on lagging averages predicted one class)."""
    torch.manual_seed(0)
    encoder = ToyEncoder()
    (train_x, train_y), (test_x, test_y) = toy_data(1, 96), toy_data(2, 48)
    finetune(encoder, train_x, train_y, test_x, test_y, 2, FinetuneConfig(**FAST), transform=lambda x: x,
             eval_batch_size=96)  # one batch: the recomputed statistics are the whole set's
    channel_means = train_x.mean(dim=(2, 3, 4))  # the BatchNorm's input, by hand
    assert torch.allclose(encoder.bn.running_mean, channel_means.mean(0), atol=1e-5)
    assert torch.allclose(encoder.bn.running_var, channel_means.var(0, unbiased=True), atol=1e-5)


def test_precise_batchnorm_changes_no_weight_and_only_the_test_pass():
    on_encoder, _, on = run_toy(precise_bn=True)
    off_encoder, _, off = run_toy(precise_bn=False)
    for (name, a), (_, b) in zip(on_encoder.named_parameters(), off_encoder.named_parameters()):
        assert torch.equal(a, b), name  # training is bit-identical
    assert not torch.equal(on_encoder.bn.running_mean, off_encoder.bn.running_mean)
    assert not torch.equal(on["test_logits"], off["test_logits"])
    frozen_encoder, start, _ = run_toy(batchnorm="frozen", precise_bn=True)
    assert torch.equal(frozen_encoder.bn.running_mean, start["bn.running_mean"])  # frozen stays frozen


def test_finetune_config_errors():
    with pytest.raises(UserError, match=r"eval\.finetune\.batchnorm"):
        FinetuneConfig(batchnorm="eval")


# ----------------------------------------------------------------------------------------- a tiny run

FT = {"eval": {"finetune": {"epochs": 1, "batch_size": 16}, "linear": {"epochs": 2}}}


def test_supervised_starts_from_the_runs_random_init(tiny_run):
    """The supervised reference's encoder and the random-init baseline are the encoder the method drew at the
    start of pretraining (the method rebuilt from the run's seed: an independent route through the method)."""
    ckpt = tiny_run / LAST_CHECKPOINT
    pretrained, _ = load_backbone(ckpt)
    fresh = pretrained.fresh_encoder("test").state_dict()
    random_init = load_backbone(ckpt, load_weights=False)[0].encoder.state_dict()
    method_start = method_from_checkpoint(ckpt, load_weights=False).backbone.state_dict()
    assert all(torch.equal(fresh[k], random_init[k]) and torch.equal(fresh[k], method_start[k]) for k in method_start)
    own = pretrained.encoder.state_dict()
    assert any(not torch.equal(fresh[k], own[k]) for k in own)


def test_random_init_baseline_reads_the_training_data_statistics(tiny_run):
    """eval.random_init_batchnorm=data: the random encoder's input BatchNorm holds the mean and variance of the
    train part by hand (one batch: eval.batch_size above the sample count); "init" leaves mean 0, variance 1."""
    from skelssl.data.dataset import SkeletonDataset
    from skelssl.evaluation.runner import prepare_random_init

    ckpt = tiny_run / LAST_CHECKPOINT
    backbone, cfg = load_backbone(ckpt, {"eval": {"batch_size": 100000}}, load_weights=False)
    prepare_random_init(backbone, cfg, torch.device("cpu"))
    train = np.asarray(SkeletonDataset(cfg.data.root, cfg.data.split, "train").array(), dtype=np.float64)
    per_channel = train.transpose(3, 1, 0, 2, 4).reshape(train.shape[3] * train.shape[1], -1)  # (V·C, N·T·M)
    bn = backbone.encoder.data_bn  # its channel v·C + c sees joint v, coordinate c over samples, frames, persons
    assert np.allclose(bn.running_mean.numpy(), per_channel.mean(1), atol=1e-4)
    assert np.allclose(bn.running_var.numpy(), per_channel.var(1, ddof=1), rtol=1e-3, atol=1e-5)

    untouched, untouched_cfg = load_backbone(ckpt, {"eval": {"random_init_batchnorm": "init"}}, load_weights=False)
    prepare_random_init(untouched, untouched_cfg, torch.device("cpu"))
    assert torch.all(untouched.encoder.data_bn.running_mean == 0)
    with pytest.raises(UserError, match="random_init_batchnorm"):
        load_backbone(ckpt, {"eval": {"random_init_batchnorm": "x"}}, load_weights=False)


def test_semi_finetune_supervised_end_to_end(tiny_run, tiny_dataset, monkeypatch, tmp_path):
    seen: list[np.ndarray] = []
    real = finetune_module.finetune

    def spy(encoder, train_data, train_labels, *args, **kwargs):
        seen.append(np.asarray(train_labels))
        return real(encoder, train_data, train_labels, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "finetune", spy)
    scores: dict = {}
    records = evaluate_checkpoints([tiny_run / LAST_CHECKPOINT], ["semi", "finetune", "supervised"],
                                   {**FT, "eval": {**FT["eval"], "semi": {"percents": [1, 50]}}}, out_dir=tmp_path,
                                   per_checkpoint_scores=scores)
    assert [(r.protocol, r.metric) for r in records] == [
        (p, m) for p in ("semi1", "semi50", "finetune", "supervised") for m in ("top1", "best_top1")]
    meta = load_meta(tiny_dataset)
    train_labels = meta.labels[meta.splits["xsub"]["train"]]
    per_class = np.bincount(train_labels)  # 6 training samples of each of the 12 classes
    assert per_class.tolist() == [6] * 12
    # trained on the subsets: 1 % -> one of each class (at least one), 50 % -> three of each; then all labels
    assert [np.bincount(labels, minlength=12).tolist() for labels in seen] == [[1] * 12, [3] * 12,
                                                                               per_class.tolist(), per_class.tolist()]
    assert sorted(p.name for p in (tmp_path / "subsets").iterdir()) == [
        "semi1_synthetic_xsub_seed0.json", "semi50_synthetic_xsub_seed0.json"]
    kept = next(iter(scores.values()))
    assert [s.protocol for s in kept] == ["semi1", "semi50", "finetune", "supervised"]
    assert all(s.logits.shape == (24, 12) for s in kept)
    # the records' top1 is the accuracy of the kept logits (an independent recomputation)
    top1 = {r.protocol: r.value for r in records if r.metric == "top1"}
    for s in kept:
        assert top1[s.protocol] == pytest.approx(100 * (s.logits.argmax(1) == s.labels).mean(), abs=0.01)


# Kinect-20 joint k is NTU-25 joint NTU_OF_KINECT[k] (written by hand from the two layouts' joint names).
NTU_OF_KINECT = [0, 1, 20, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]


@pytest.fixture(scope="module")
def kinect_dataset(tiny_dataset, tmp_path_factory):
    """The tiny synthetic dataset as one-person Kinect-20 data: the 20 shared joints of person 0."""
    meta = load_meta(tiny_dataset)
    data = np.ascontiguousarray(open_data(tiny_dataset)[:, :, :, NTU_OF_KINECT, :1])
    root = tmp_path_factory.mktemp("kinect") / "toy-kinect"
    write_prepared(root, data, PreparedMeta("toy-kinect", KINECT20, meta.class_names, meta.labels, meta.lengths,
                                            meta.sample_names, meta.splits))
    return root


def test_transfer_linear_goes_through_the_joint_map(tiny_run, kinect_dataset):
    backbone, cfg = load_backbone(tiny_run / LAST_CHECKPOINT, {"data": {"root": str(kinect_dataset)}, **FT})
    records = evaluate_backbone(backbone, cfg, ["transfer-linear"], torch.device("cpu"))
    assert {(r.dataset, r.protocol) for r in records} == {("synthetic->toy-kinect", "transfer-linear")}
    # Independent route: the NTU-25 two-person array written by hand from the Kinect-20 one.
    from skelssl.evaluation.protocols import EvalContext

    context = EvalContext(backbone, cfg, "skeletonclr", torch.device("cpu"))
    kinect = open_data(kinect_dataset)[load_meta(kinect_dataset).splits["xsub"]["test"]]
    ntu = np.zeros(kinect.shape[:3] + (25, 2), dtype=np.float32)
    ntu[:, :, :, NTU_OF_KINECT, 0] = kinect[..., 0]
    ntu[:, :, :, 2, 0] = 0.5 * (kinect[:, :, :, 2, 0] + kinect[:, :, :, 3, 0])  # neck
    ntu[:, :, :, [21, 22], 0] = kinect[:, :, :, [7], 0]  # left hand tip, thumb
    ntu[:, :, :, [23, 24], 0] = kinect[:, :, :, [11], 0]
    expected = extract_features(backbone.encoder, ntu)
    torch.testing.assert_close(context.features["test_feats"], expected, atol=1e-5, rtol=1e-5)


def test_transfer_finetune_and_its_errors(tiny_run, kinect_dataset, tiny_dataset, tmp_path):
    records = evaluate_checkpoints([tiny_run / LAST_CHECKPOINT], ["transfer-finetune"],
                                   {"data": {"root": str(kinect_dataset)}, **FT}, out_dir=tmp_path)
    assert {r.dataset for r in records} == {"synthetic->toy-kinect"}
    with pytest.raises(UserError, match="another dataset than the pretraining one"):
        evaluate_checkpoints([tiny_run / LAST_CHECKPOINT], ["transfer-linear"], FT, out_dir=tmp_path)
    # a layout without a joint map to NTU-25: a clear error naming both
    meta = load_meta(kinect_dataset)
    stick = Layout.from_dict({**KINECT20.to_dict(), "name": "stick20"})
    root = tmp_path / "stick"
    write_prepared(root, np.asarray(open_data(kinect_dataset)), PreparedMeta(
        "stick", stick, meta.class_names, meta.labels, meta.lengths, meta.sample_names, meta.splits))
    with pytest.raises(UserError, match="no joint map from layout 'stick20'.*'ntu25'"):
        evaluate_checkpoints([tiny_run / LAST_CHECKPOINT], ["transfer-linear"], {"data": {"root": str(root)}, **FT},
                             out_dir=tmp_path)


def test_checkpoint_written_before_the_finetune_keys_still_evaluates(tiny_run, tmp_path):
    state = torch.load(tiny_run / LAST_CHECKPOINT, map_location="cpu", weights_only=False)
    saved_eval = state["hyper_parameters"]["cfg"]["eval"]
    for key in [k for k in saved_eval if k.startswith(("finetune_", "semi_", "fusion_"))]:
        del saved_eval[key]  # as an earlier version wrote it
    old = tmp_path / "old.ckpt"
    torch.save(state, old)
    records = evaluate_checkpoints([old], ["finetune"], FT, out_dir=tmp_path)
    assert [r.metric for r in records] == ["top1", "best_top1"]


def test_saved_classifiers_predict_what_their_protocol_measured(tiny_run, tiny_dataset, tmp_path):
    """`evaluate linear finetune --save-classifier` keeps each trained classifier as a run; `predict` with it on
    the same test part reproduces the protocol's own final top-1 (two routes: the protocol's test pass, and the
    saved run read back, re-encoded and classified)."""
    from skelssl.cli import main

    out = tmp_path / "eval"
    assert main(["evaluate", "linear", "finetune", "--checkpoint", str(tiny_run), "--out", str(out),
                 "--save-classifier", "eval.linear.epochs=3", "eval.finetune.epochs=1", "eval.finetune.batch_size=16",
                 "--no-progress"]) == 0
    measured = {r.protocol: r.value for r in read_results(out / "results.json") if r.metric == "top1"}
    for protocol in ("linear", "finetune"):
        run = out / "classifiers" / f"skeletonclr-{protocol}"
        predicted = tmp_path / f"predicted-{protocol}"
        assert main(["predict", "--checkpoint", str(run), "--out", str(predicted), "--no-progress"]) == 0
        [top1] = [r.value for r in read_results(predicted / "results.json") if r.metric == "top1"]
        assert top1 == pytest.approx(measured[protocol], abs=1e-6), protocol
        # and the scores themselves: the softmax of the protocol's kept test logits, sample by sample
        [kept] = [k for k in load_scores(out) if k.protocol == protocol]
        rows = [line.split(",") for line in (predicted / "predictions.csv").read_text().splitlines()[1:]]
        by_name = {row[0]: float(row[3]) for row in rows}
        expected = torch.softmax(torch.as_tensor(kept.logits, dtype=torch.float64), dim=1).max(dim=1).values
        assert [by_name[name] for name in kept.sample_names] == pytest.approx(expected.tolist(), abs=1e-5)
