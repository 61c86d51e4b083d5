"""ProSL's parts against hand-computed values: the outlier filter (eqs. 2-3), codebook negatives (eqs. 4-5),
semantic coefficients on a sequence with one informative joint (eq. 7), masking probabilities (eq. 8), the KL
and semantic terms of the two phases (eqs. 9-12), and the codebook built by k-means."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from skelssl.config import load_config
from skelssl.methods import get_method
from skelssl.methods.prosl.codebook import SemanticCodebook
from skelssl.methods.prosl.semantic import (adaptive_joint_mask, branch_kl, masking_probabilities,
                                            semantic_coefficients, semantic_loss, similarity_distribution)

TINY_STGCN = ["model.stgcn.hidden_channels=4", "model.stgcn.out_channels=16", "model.stgcn.dropout=0"]


def prosl_method(method: str = "skeletonclr", start_epoch: int = 0, samples: int = 16, extra=(), encoder="stgcn",
                 feature_dim: int = 8):
    overrides = ["method.queue_size=32", f"method.feature_dim={feature_dim}", "plugins.prosl.enabled=true", f"plugins.prosl.start_epoch={start_epoch}",
                 "plugins.prosl.codebook_size=2", *extra]
    overrides += TINY_STGCN if encoder == "stgcn" else [f"model.{encoder}.hidden_size=8",
                                                        f"model.{encoder}.num_layers=1"]
    cfg = load_config(None, overrides, method=method, encoder=encoder)
    torch.manual_seed(0)
    return get_method(method)(cfg, "ntu25", train_data_info={"samples": samples}).train()


def test_the_outlier_filter_by_hand():
    # k = 3; rows: confident and right, confident but another cluster, right but not confident (<= xi),
    # right and confident but no assignment
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.34, 0.33, 0.33], [0.9, 0.05, 0.05]])
    assigned = torch.tensor([0, 0, 0, -1])
    loss, kept = semantic_loss(probs.log(), assigned, threshold=0.34)
    assert kept.tolist() == [True, False, False, False]
    torch.testing.assert_close(loss, torch.tensor(-math.log(0.7) / 4))


# 65 orthonormal centroids (e_0 .. e_64 of R^128) and features at cosine c from centroid 7, orthogonal to the
# others: y_7 = e^c / (e^c + 64) at tau = 1, above xi = 0.027 exactly when e^c > 0.027 * 64 / 0.973, c > 0.574
COSINES = [1.0, 0.6, 0.55, 0.4, 0.0]
Y7_AT_TAU_1 = [math.e / (math.e + 64), 1.8221188 / 65.8221188, 1.7332530 / 65.7332530, 1.4918247 / 65.4918247,
               1 / 65]  # e^0.6 = 1.8221188, e^0.55 = 1.7332530, e^0.4 = 1.4918247


def _features_at_cosines(cosines):
    z = torch.zeros(len(cosines), 128)
    for row, c in enumerate(cosines):
        z[row, 7], z[row, 100] = c, math.sqrt(1 - c * c)  # e_100 is no centroid
    return z


def test_xi_at_tau_one_keeps_features_near_their_centroid_and_rejects_far_ones():
    centers, z = torch.eye(65, 128), _features_at_cosines(COSINES)
    log_y = similarity_distribution(z, centers, 1.0)
    torch.testing.assert_close(log_y[:, 7].exp(), torch.tensor(Y7_AT_TAU_1), rtol=1e-6, atol=0)
    loss, kept = semantic_loss(log_y, torch.full((5,), 7), threshold=0.027)
    assert kept.tolist() == [True, True, False, False, False]
    torch.testing.assert_close(loss, torch.tensor(-(math.log(Y7_AT_TAU_1[0]) + math.log(Y7_AT_TAU_1[1])) / 5))
    # at the method's temperature (HiCo 0.2) every feature with c >= 0.4 passes: y_7 = e^2 / (e^2 + 64) = 0.10
    _, kept = semantic_loss(similarity_distribution(z, centers, 0.2), torch.full((5,), 7), threshold=0.027)
    assert kept.tolist() == [True, True, True, True, False]


def test_the_plugin_filters_at_tau_one_by_default_and_at_the_option():
    """eq. 9's filter inside the plug-in: the semantic branch's features at the cosines above."""
    method = prosl_method(feature_dim=128, samples=5, extra=["plugins.prosl.codebook_size=65"])
    _set_codebook(method, torch.eye(65, 128), torch.full((5,), 7))
    plugin = method.plugins["prosl"]
    plugin.semantic_branch = lambda m, b: _features_at_cosines(COSINES)
    batch = {"x": torch.randn(5, 3, 16, 25, 2) * 0.3, "index": torch.arange(5)}
    with torch.no_grad():
        method.training_loss(batch)
        _, logs = plugin.extra_loss(method, batch)
    assert float(logs["kept_prime"]) == pytest.approx(2 / 5)
    torch.testing.assert_close(logs["sem_prime"], torch.tensor(-(math.log(Y7_AT_TAU_1[0])
                                                                 + math.log(Y7_AT_TAU_1[1])) / 5))
    plugin.cfg.semantic_temperature = None  # the method's temperature (SkeletonCLR 0.07): the filter keeps all 4
    with torch.no_grad():
        _, logs = plugin.extra_loss(method, batch)
    assert float(logs["kept_prime"]) == pytest.approx(4 / 5)


def test_eq_10_is_the_kl_of_the_branch_from_the_query_by_hand():
    # P_z' = (0.7, 0.2, 0.1), P_z = (0.2, 0.3, 0.5); logits shifted (softmax does not see a constant)
    branch = torch.tensor([[0.7, 0.2, 0.1]]).log() + 5.0
    query = torch.tensor([[0.2, 0.3, 0.5]]).log() - 2.0
    kl = 0.7 * math.log(0.7 / 0.2) + 0.2 * math.log(0.2 / 0.3) + 0.1 * math.log(0.1 / 0.5)  # 0.6349
    reverse = 0.2 * math.log(0.2 / 0.7) + 0.3 * math.log(0.3 / 0.2) + 0.5 * math.log(0.5 / 0.1)  # 0.6758
    assert abs(kl - reverse) > 0.04
    torch.testing.assert_close(branch_kl(branch, query), torch.tensor(kl))
    # two rows: the batch mean; a row of equal distributions adds nothing
    same = torch.tensor([[1.0, 2.0, 3.0]])
    two = branch_kl(torch.cat([branch, same]), torch.cat([query, same]))
    torch.testing.assert_close(two, torch.tensor(kl / 2))


def _set_codebook(method, centers, assignments=None):
    book = method.plugins["prosl"].codebook
    book.centers.copy_(F.normalize(centers, dim=1))
    if assignments is not None:
        book.assignments.copy_(assignments)
    book.ready.fill_(True)
    return book


def test_codebook_negatives_are_removed_from_the_contrastive_loss():
    """eqs. 4-5 by hand: with centroids e1, e2 in a 2-d feature space, a sample whose key lies near e1 keeps
    only the bank entries near e2 as negatives."""
    method = prosl_method(feature_dim=2)
    _set_codebook(method, torch.eye(2))
    angles = torch.linspace(-1.2, 1.2, 32)  # bank entries on both sides of the diagonal
    method.queue.bank.copy_(torch.stack([torch.cos(angles + math.pi / 4), torch.sin(angles + math.pi / 4)], 1))
    x = torch.randn(6, 3, 16, 25, 2) * 0.3
    method.generator.manual_seed(3)
    with torch.no_grad():
        loss, _ = method.training_loss({"x": x, "index": torch.arange(6)})
    q, k = method.exposed["query"], method.exposed["key"]
    bank = method.queue.bank
    tau = method.cfg.method.temperature
    rows = []
    for i in range(6):
        mine = int(k[i].argmax())  # the sample's cluster: nearest of e1, e2 (cosine)
        negatives = bank[bank.argmax(dim=1) != mine]
        logits = torch.cat([(q[i] * k[i]).sum()[None], negatives @ q[i]]) / tau
        rows.append(-torch.log_softmax(logits, dim=0)[0])
    torch.testing.assert_close(loss, torch.stack(rows).mean(), rtol=1e-5, atol=1e-6)
    unfiltered = prosl_method(start_epoch=5, feature_dim=2)  # phase 1: no codebook filter yet
    unfiltered.load_state_dict(method.state_dict())
    unfiltered.generator.manual_seed(3)
    with torch.no_grad():
        loss_all, _ = unfiltered.training_loss({"x": x, "index": torch.arange(6)})
    assert loss_all > loss


class OneJointEncoder(torch.nn.Module):
    """A feature that depends on joint 3 alone: the time-and-person mean of its coordinates, projected."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5], [0.3, 0.3, 0.3]]))

    def forward(self, x):
        return F.normalize(x[:, :, :, 3].mean(dim=(2, 3)) @ self.weight.t() + torch.tensor([0.1, 0.2, 0.3]), dim=1)


def test_semantic_coefficients_on_a_sequence_with_one_informative_joint():
    encode = OneJointEncoder()
    x = torch.randn(4, 3, 10, 25, 2) + 1.0
    centers = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), dim=1)
    p = semantic_coefficients(encode, x, centers, temperature=0.2)
    assert p.shape == (4, 25)
    others = torch.cat([p[:, :3], p[:, 4:]], dim=1)
    assert others.abs().max() < 1e-6  # removing an uninformative joint changes nothing
    # joint 3 by hand: KL between the centroid distributions with and without it (ẑ_3 = normalize(bias))
    y = F.softmax(encode(x) @ centers.t() / 0.2, dim=1)
    y3 = F.softmax(F.normalize(torch.tensor([[0.1, 0.2, 0.3]]), dim=1) @ centers.t() / 0.2, dim=1)
    torch.testing.assert_close(p[:, 3], (y * (y.log() - y3.log())).sum(1), rtol=1e-4, atol=1e-6)
    assert (p[:, 3] > 0.01).all()
    # eq. 8: the informative joint is (almost) never masked, the 24 others share the budget
    mask = masking_probabilities(p.mean(0), mask_ratio=0.3)
    assert mask[3] < 1e-4
    torch.testing.assert_close(torch.cat([mask[:3], mask[4:]]), torch.full((24,), 0.3 * 25 / 24), rtol=1e-4, atol=0)


def test_masking_probabilities_by_hand():
    torch.testing.assert_close(masking_probabilities(torch.tensor([2.0, 2.0, 2.0]), 0.3), torch.full((3,), 0.3))
    # p = (1, 3): 1/p = (1, 1/3); phi = 0.3 * 2 / (4/3) = 0.45 -> (0.45, 0.15)
    torch.testing.assert_close(masking_probabilities(torch.tensor([1.0, 3.0]), 0.3), torch.tensor([0.45, 0.15]))
    # clipped to 1
    assert masking_probabilities(torch.tensor([1.0, 100.0]), 0.9).tolist()[0] == 1.0


def test_the_adaptive_mask_follows_its_probabilities():
    x = torch.ones(4000, 3, 2, 3, 2)
    out = adaptive_joint_mask(x, torch.tensor([0.0, 1.0, 0.25]), torch.Generator().manual_seed(0))
    masked = (out.abs().amax(dim=(1, 2, 4)) == 0).float().mean(0)  # per joint, whole joint zeroed
    assert masked[0] == 0 and masked[1] == 1 and abs(masked[2] - 0.25) < 0.03
    assert ((out == 0) | (out == 1)).all()


def test_codebook_recovers_known_clusters_and_leaves_unseen_samples_unassigned():
    g = torch.Generator().manual_seed(0)
    directions = F.normalize(torch.randn(3, 8, generator=g), dim=1)
    features = F.normalize(directions.repeat_interleave(10, 0) + 0.05 * torch.randn(30, 8, generator=g), dim=1)
    book = SemanticCodebook(3, 8, samples=40, joints=25)
    rows = torch.arange(30) + 5  # samples 0-4 and 35-39 not seen
    book.build(features, rows, iterations=30, generator=torch.Generator().manual_seed(1))
    labels = book.assignments[5:35].view(3, 10)
    assert all(len(set(r.tolist())) == 1 for r in labels) and len(set(labels[:, 0].tolist())) == 3
    assert (book.assignments[:5] == -1).all() and (book.assignments[35:] == -1).all()
    torch.testing.assert_close(book.centers[labels[:, 0]], directions, atol=0.05, rtol=0)


def test_phase_one_adds_the_kl_only_phase_two_the_semantic_terms_too():
    method = prosl_method(start_epoch=0, feature_dim=2)
    plugin = method.plugins["prosl"]
    _set_codebook(method, torch.eye(2), torch.tensor([0, 1] * 8))
    z_sem = F.normalize(torch.randn(6, 2), dim=1)
    plugin.semantic_branch = lambda m, b: z_sem  # a known semantic-branch feature
    batch = {"x": torch.randn(6, 3, 16, 25, 2) * 0.3, "index": torch.arange(6)}
    with torch.no_grad():
        method.training_loss(batch)
        extra, logs = plugin.extra_loss(method, batch)
    z, bank, tau = method.exposed["query"], method.queue.bank, method.cfg.method.temperature
    p_sem, p_z = F.softmax(z_sem @ bank.t() / tau, 1), F.softmax(z @ bank.t() / tau, 1)
    kl = (p_sem * (p_sem.log() - p_z.log())).sum(1).mean()  # eq. 10: KL(P_z' || P_z)
    assigned = torch.tensor([0, 1] * 3)

    def sem(feature):  # eqs. 2-3 written out with xi = 0.027 and y at tau = 1 (the paper's y)
        y = F.softmax(feature @ torch.eye(2), dim=1)
        keep = (y.argmax(1) == assigned) & (y.max(1).values > 0.027)
        return -(y.gather(1, assigned[:, None]).squeeze(1).log() * keep).sum() / 6

    torch.testing.assert_close(extra, kl + sem(z) + sem(z_sem), rtol=1e-5, atol=1e-6)
    assert set(logs) == {"kl", "sem", "sem_prime", "kept", "kept_prime"}
    later = prosl_method(start_epoch=3, feature_dim=2)  # epoch 0 < 3: eq. 11
    later.load_state_dict(method.state_dict())
    later.plugins["prosl"].semantic_branch = lambda m, b: z_sem
    with torch.no_grad():
        later.training_loss(batch)
        extra, logs = later.plugins["prosl"].extra_loss(later, batch)
    torch.testing.assert_close(extra, kl, rtol=1e-5, atol=1e-6)
    assert set(logs) == {"kl"}


@pytest.mark.parametrize("method", ["skeletonclr", "aimclr", "actclr", "hico", "a2mc"])
def test_one_key_switches_prosl_on_for_every_method(method):
    encoder = {"hico": "hico", "a2mc": "bigru"}.get(method, "stgcn")
    m = prosl_method(method, encoder=encoder, extra=["plugins.prosl.codebook_size=3"])
    _set_codebook(m, torch.eye(3, 8), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1] * 2))
    if method == "actclr":
        m.update_anchor(torch.randn(8, 3, 16, 25, 2).numpy())
    batch = {"x": torch.randn(8, 3, 16, 25, 2) * 0.3, "index": torch.arange(8), "length": torch.full((8,), 16)}
    seen = []
    filter_negatives = m.plugins["prosl"].filter_negatives
    m.plugins["prosl"].filter_negatives = lambda *a: seen.append(a[1]) or filter_negatives(*a)
    loss = m.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and "queue" in seen  # the branch's gradient: test_prosl_branch.py


def test_without_the_branch_from_the_start_phase_one_is_the_base_method_alone():
    method = prosl_method(start_epoch=3, extra=["plugins.prosl.branch_from_start=false"])
    calls = []
    method.plugins["prosl"].semantic_branch = lambda m, b: calls.append(1)
    batch = {"x": torch.randn(6, 3, 16, 25, 2) * 0.3, "index": torch.arange(6)}
    with torch.no_grad():
        method.training_loss(batch)
    assert method.plugins["prosl"].extra_loss(method, batch) == (None, {}) and calls == []
