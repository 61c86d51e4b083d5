"""ActCLR+ end to end: every module switch (Tables IX and XI) removes exactly its own effect, on hand-built
parts; the side inputs (Inter-SD, SAM³) leave the query encoder's running statistics alone; SAM³ reconstructs
both regions by default; every dataset-split x stream config loads and trains, and a real fit warms up,
refreshes the prototypes on schedule and resumes to the same weights."""

from __future__ import annotations

import csv
import itertools

import pytest
import torch

from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.config import load_config, piece_names
from skelssl.errors import UserError
from skelssl.methods.actclr import ActCLRPlus
from skelssl.train import pretrain
from tests.conftest import tiny_overrides
from tests.methods.test_aimclr import tiny_batch, tiny_config


def ready(method: ActCLRPlus, batch: dict) -> ActCLRPlus:
    method.update_anchor(batch["x"].numpy())  # eq. 2's average motion, here of the batch
    method.refresh_prototypes(batch["x"].numpy())  # eq. 33 over the batch
    return method


# ----- Table XI: each MATS switch removes its own effect, on a hand-built case -------------------------------------
# The actionlet is the torso and head (every limb outside it). Hand-built parts: T_act adds 100 (its marker);
# T_non's dropout is off and its rescale is exactly ×2; the attack's gradient is +1 outside the actionlet, so
# the FGSM noise step (ε 0.5, no Gaussian noise) subtracts 0.5 there; the skeleton mask hides one whole limb,
# padded with zeros, in every sample. By hand, with x_act = x + 100 (t_act) or x:
#     actionlet joints: x_act;   other joints: v = x_act, ×2 (t_non), − 0.5 (adversarial), one limb 0 (mask).
LIMB_NAMES = ("left_arm", "right_arm", "left_leg", "right_leg")


def _handbuilt_query(switch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from skelssl.skeleton.layouts import NTU25
    from skelssl.transforms.tracking import ViewTracker

    cfg = tiny_config(ActCLRPlus, num_prototypes=3, dropout_p=0.0, rescale=[2.0, 2.0], adversarial_epsilon=0.5,
                      adversarial_noise_std=0.0, adversarial_matrices=["noise"], mask_padding="zero", mask_p=1.0,
                      **switch)
    method = ActCLRPlus(cfg, "ntu25").train()
    method.augment_extreme = lambda v, tracker=None: v + 100.0
    method.attack_gradient = lambda query, actionlet: (1 - actionlet.permute(0, 2, 3, 1).unsqueeze(1)).expand_as(
        query).clone()
    x = 1.0 + torch.rand(4, 3, 6, 25, 1, generator=torch.Generator().manual_seed(0))
    limbs = {j for name in LIMB_NAMES for j in NTU25.parts[name]}
    actionlet = torch.zeros(4, 1, 6, 25)
    actionlet[..., [j for j in range(25) if j not in limbs]] = 1.0
    return method.transform_query(x, actionlet, ViewTracker.for_batch(x)), x, actionlet


@pytest.mark.parametrize("switch", [{}, {"t_act": False}, {"t_non": False}, {"adversarial": False},
                                    {"skeleton_mask": False},
                                    {"t_act": False, "t_non": False, "adversarial": False, "skeleton_mask": False}])
def test_table_xi_switches_remove_exactly_their_effect(switch):
    from skelssl.skeleton.layouts import NTU25

    on = {name: switch.get(name, True) for name in ("t_act", "t_non", "adversarial", "skeleton_mask")}
    x_trans, x, actionlet = _handbuilt_query(switch)
    x_act = x + 100.0 if on["t_act"] else x
    non = x_act * (2.0 if on["t_non"] else 1.0) - (0.5 if on["adversarial"] else 0.0)
    in_actionlet = actionlet[:, 0, 0].bool()  # (N, V)
    for n in range(x.shape[0]):
        torch.testing.assert_close(x_trans[n][..., in_actionlet[n], :], x_act[n][..., in_actionlet[n], :])
        zeroed = [name for name in LIMB_NAMES if x_trans[n][..., list(NTU25.parts[name]), :].abs().max() == 0]
        assert len(zeroed) == (1 if on["skeleton_mask"] else 0), zeroed
        shown = [j for j in range(25) if not in_actionlet[n, j]
                 and not any(j in NTU25.parts[name] for name in zeroed)]
        torch.testing.assert_close(x_trans[n][..., shown, :], non[n][..., shown, :])


def test_the_methods_attack_steps_mask_shear_and_noise_outside_the_actionlet():
    """With the default `adversarial_matrices` the query's non-actionlet region is adversarial_step (hand-checked
    in test_actclr_plus_parts) of X_non on all three matrices of eq. 16, for a hand-given gradient; the
    actionlet region is X_act untouched. The shear and the mask move it visibly beyond the noise step."""
    from skelssl.transforms.masking import adversarial_step
    from skelssl.transforms.tracking import ViewTracker

    cfg = tiny_config(ActCLRPlus, num_prototypes=3, t_act=False, t_non=False, skeleton_mask=False,
                      adversarial_epsilon=0.1, adversarial_noise_std=0.0)
    method = ActCLRPlus(cfg, "ntu25").train()
    assert list(method.cfg.method.adversarial_matrices) == ["mask", "shear", "noise"]
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 3, 6, 25, 1, generator=g)
    w = torch.randn(x.shape, generator=g)
    actionlet = torch.zeros(3, 1, 6, 25)
    actionlet[..., :12] = 1.0
    outside = (1 - actionlet.permute(0, 2, 3, 1).unsqueeze(1))
    method.attack_gradient = lambda query, a: outside * w
    x_trans = method.transform_query(x, actionlet, ViewTracker.for_batch(x))
    stepped = adversarial_step(x, outside * w, torch.Generator(), epsilon=0.1, noise_std=0.0)
    noise_only = adversarial_step(x, outside * w, torch.Generator(), epsilon=0.1, noise_std=0.0, matrices=("noise",))
    torch.testing.assert_close(x_trans[..., :12, :], x[..., :12, :])
    torch.testing.assert_close(x_trans[..., 12:, :], stepped[..., 12:, :])
    assert (stepped - noise_only)[..., 12:, :].abs().max() > 0.05


# ----- Table IX: each loss switch removes its term, and only its term ---------------------------------------------
@pytest.mark.parametrize("switch", [{}, {"inter_sd": False}, {"sam": False}, {"intra_sd": False},
                                    {"inter_sd": False, "sam": False}])
def test_table_ix_switches_remove_their_loss_term(switch):
    """L = 1·L_KL + 2·L_MX + 3·L_RC over the terms switched on (weights made distinct so that each term is
    seen); a switched-off term is not logged and adds nothing; the SAM decoder gets a gradient iff SAM³ is on."""
    torch.manual_seed(0)
    cfg = tiny_config(ActCLRPlus, num_prototypes=3, intra_sd_weight=1.0, inter_sd_weight=2.0, sam_weight=3.0,
                      **switch)
    method = ActCLRPlus(cfg, "ntu25").train()
    batch = tiny_batch()
    ready(method, batch)
    loss, logs = method.training_loss(batch)
    terms = {"intra_sd": 1.0, "inter_sd": 2.0, "sam": 3.0}
    on = [name for name in terms if switch.get(name, True)]
    assert {name for name in terms if name in logs} == set(on)
    assert all(float(logs[name]) > 0 for name in on)
    assert loss.item() == pytest.approx(sum(terms[name] * float(logs[name]) for name in on), rel=1e-5)
    loss.backward()
    decoder_grad = sum(float(p.grad.abs().sum()) for p in method.decoder.parameters() if p.grad is not None)
    assert (decoder_grad > 0) == ("sam" in on)


# ----- no side input moves the query encoder's running statistics -------------------------------------------------
def test_only_the_mats_query_moves_the_query_encoders_running_statistics():
    """After one training step with Inter-SD and SAM³ on, every BatchNorm running statistic of f_q and g_q is
    what the MATS query x_trans alone gives: the input BatchNorm by hand, running = (1 − 0.1)·old + 0.1·batch
    statistic of x_trans (channel v·C + c, over samples, persons and frames; the variance unbiased), every
    layer against a copy of the networks that saw x_trans once."""
    import copy

    torch.manual_seed(0)
    method = ActCLRPlus(tiny_config(ActCLRPlus, num_prototypes=3, sam_target="both"), "ntu25").train()
    batch = tiny_batch()
    ready(method, batch)
    with torch.no_grad():  # running statistics away from their initial values, so "unchanged" would show
        for module in method.encoder_q.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    encoder0, projector0 = copy.deepcopy(method.encoder_q), copy.deepcopy(method.projector_q)
    seen = []
    transform = method.transform_query
    method.transform_query = lambda *a: seen.append(transform(*a)) or seen[-1]
    _, logs = method.training_loss(batch)
    assert {"inter_sd", "sam"} <= set(logs) and len(seen) == 1
    x_trans = seen[0].detach()
    assert torch.equal(method.to_stream(x_trans), x_trans)  # joint stream: the encoder sees x_trans itself
    n, c, t, v, m = x_trans.shape
    channels = x_trans.permute(3, 1, 0, 4, 2).reshape(v * c, n * m * t).double()  # channel v·C + c
    bn0 = encoder0.data_bn
    expected_mean = 0.9 * bn0.running_mean.double() + 0.1 * channels.mean(dim=1)
    expected_var = 0.9 * bn0.running_var.double() + 0.1 * channels.var(dim=1, unbiased=True)
    torch.testing.assert_close(method.encoder_q.data_bn.running_mean.double(), expected_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(method.encoder_q.data_bn.running_var.double(), expected_var, rtol=1e-5, atol=1e-6)
    projector0(encoder0(x_trans))  # the reference: the networks in train mode on x_trans once
    for reference, trained in ((encoder0, method.encoder_q), (projector0, method.projector_q)):
        for (name, a), (_, b) in zip(reference.named_buffers(), trained.named_buffers()):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)


# ----- SAM³'s target (§IV-C: "both the skeleton data of actionlets and the actionlet regions") -------------------
def test_sam_target_defaults_to_both_regions_and_both_is_the_sum():
    cfg = load_config(None, ["method.name=actclr_plus"])
    assert cfg.method.sam_target == "both"
    torch.manual_seed(0)
    method = ActCLRPlus(tiny_config(ActCLRPlus, num_prototypes=3), "ntu25").train()
    assert method.cfg.method.sam_target == "both"
    x = tiny_batch()["x"]
    scores = torch.rand(8, 2, 16, 25, generator=torch.Generator().manual_seed(3))
    actionlet = (scores > 0.5).float()
    values = {}
    for target in ("motion", "actionlet", "both"):
        method.cfg.method.sam_target = target
        method.generator.manual_seed(7)  # the same Gumbel draws
        values[target] = method.sam_loss(x, scores, actionlet).item()
    assert values["motion"] > 0 and values["actionlet"] > 0
    assert values["both"] == pytest.approx(values["motion"] + values["actionlet"], rel=1e-5)


def test_bad_switches_are_named():
    with pytest.raises(UserError, match="has no loss"):
        ActCLRPlus(tiny_config(ActCLRPlus, intra_sd=False, inter_sd=False, sam=False), "ntu25")
    with pytest.raises(UserError, match=r"method.mask_padding' = 'gaussian' \(the command line\): must be one of "
                                        "zero, noise, sequence"):
        load_config(None, ["method.name=actclr_plus", "method.mask_padding=gaussian"])
    with pytest.raises(UserError, match="num_prototypes"):
        ActCLRPlus(tiny_config(ActCLRPlus), "ntu25").num_prototypes()


DATASETS = piece_names("datasets")


@pytest.mark.parametrize("dataset,stream", itertools.product(DATASETS, ["joint", "motion", "bone"]))
def test_every_dataset_split_and_stream_config(dataset, stream):
    cfg = load_config(None, [f"data.stream={stream}"], dataset=dataset, method="actclr_plus", encoder="stgcn")
    assert cfg.method.name == "actclr_plus" and cfg.data.stream == stream
    assert (cfg.method.temperature_query, cfg.method.temperature_key) == (0.1, 0.04)  # §V-A
    # the small sets' pieces shrink the queue (and, below ~300 training sequences, the batch)
    queue, batch = {"nwucla": (1024, 128), "synthetic": (1024, 128), "utkinect": (64, 32), "msr": (256, 64),
                    "sbu": (256, 64)}.get(dataset.split("-")[0], (65536, 128))
    assert (cfg.model.stgcn.hidden_channels, cfg.method.feature_dim, cfg.trainer.batch_size) == (16, 128, batch)
    assert (cfg.method.warmup.method, cfg.method.warmup.epochs, cfg.trainer.epochs) == ("skeletonclr", 100, 400)
    assert cfg.method.queue_size == queue


@pytest.mark.parametrize("stream", ["joint", "motion", "bone"])
def test_every_stream_trains_a_step(stream):
    torch.manual_seed(0)
    cfg = tiny_config(ActCLRPlus, num_prototypes=3, sam_target="both")
    cfg.data.stream = stream
    method = ActCLRPlus(cfg, "ntu25").train()
    batch = tiny_batch()
    ready(method, batch)
    loss, logs = method.training_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and float(logs["sam"]) > 0


def _metrics(run_dir) -> list[dict]:
    rows = []
    for path in run_dir.glob("logs/*/metrics.csv"):
        with open(path) as fh:
            rows += [{k: v for k, v in row.items() if v} for row in csv.DictReader(fh)]
    return rows


def test_a_fit_warms_up_refreshes_prototypes_on_schedule_and_resumes(tiny_dataset, tmp_path):
    extra = {"method.name": "actclr_plus", "optim.name": "adam", "optim.lr": 1e-3, "method.num_prototypes": 4,
             "method.warmup.epochs": 1, "method.prototype_every": 2, "trainer.epochs": 4,
             "optim.milestones": [3]}
    straight = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "straight", **extra)), command=[])
    interrupted = tmp_path / "interrupted"
    pretrain(load_config(None, tiny_overrides(tiny_dataset, interrupted, **extra)), command=[], max_epochs=2)
    after_two = torch.load(interrupted / LAST_CHECKPOINT, map_location="cpu", weights_only=True)
    assert int(after_two["state_dict"]["prototypes.epoch"]) == 1  # first epoch after the warm-up
    pretrain(load_config(None, tiny_overrides(tiny_dataset, interrupted, resume="true", **extra)), command=[])
    a = torch.load(straight / LAST_CHECKPOINT, map_location="cpu", weights_only=True)
    b = torch.load(interrupted / LAST_CHECKPOINT, map_location="cpu", weights_only=True)
    assert int(a["state_dict"]["prototypes.epoch"]) == 3  # refreshed at epochs 1 and 3
    assert a["global_step"] == b["global_step"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    by_epoch: dict[int, set] = {}
    for row in _metrics(straight):
        if "epoch" in row:
            by_epoch.setdefault(int(row["epoch"]), set()).update(row)
    assert "train/warmup/info_nce" in by_epoch[0] and "train/intra_sd" not in by_epoch[0]
    assert {"train/intra_sd", "train/inter_sd", "train/sam", "train/prototype_share"} <= by_epoch[1]
    assert "train/prototype_share" not in by_epoch[2] and "train/prototype_share" in by_epoch[3]
