"""ActCLR+'s parts against hand-computed values: prototypes (eq. 33), the triplet actionlet (eqs. 36-38), the FGSM
step (eq. 42), the skeleton mask's three paddings (eq. 43), Inter-SD's weights (eqs. 46-47), Gumbel masking
(eq. 49) and L_RC (eq. 50)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from skelssl.methods.actclr.actionlet import ActionletSelector
from skelssl.methods.actclr.inter_sd import actionlet_shares, mixed_target
from skelssl.methods.actclr.prototypes import ActionPrototypes, triplet_objective
from skelssl.methods.actclr.sam import (MaskedMotionDecoder, gumbel_topk_mask, masked_mse, motion_target,
                                        token_frame_index)
from skelssl.models.pooling import pool
from skelssl.skeleton.layouts import NTU25
from skelssl.transforms.masking import adversarial_step, skeleton_mask
from skelssl.transforms.mixing import Mix, skeleton_mix_with_mask

RIGHT_LEG = set(NTU25.parts["right_leg"])
LIMBS = {name: set(NTU25.parts[name]) for name in ("left_arm", "right_arm", "left_leg", "right_leg")}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def static_pose(n: int, t: int) -> torch.Tensor:
    x = torch.zeros(n, 3, t, 25, 2)
    x[:, :, :, :, 0] = torch.randn(1, 3, 1, 25, generator=gen(1))  # one still pose, person 2 absent
    return x


def moving(x: torch.Tensor, joints: list[int], amplitude: float = 0.4,
           axes: dict[int, float] | None = None) -> torch.Tensor:
    """x with `joints` of person 0 swinging along the coordinate axes (axis -> relative amplitude)."""
    x = x.clone()
    wave = torch.sin(torch.linspace(0, 3 * math.pi, x.shape[2]))
    for axis, weight in (axes or {0: 1.0, 2: 0.5}).items():
        x[:, axis, :, joints, 0] += weight * amplitude * wave[:, None]
    return x


class MotionEncoder(nn.Module):
    """Hand-built dense encoder: |velocity| (+ `offset`) per coordinate and one constant channel, (N, M, 4, T-1,
    V); with `decoy` joints, a fifth channel that is large (3) on those joints of every sequence and 0.2
    elsewhere, so that the features are non-zero everywhere and a map ignoring the gradient lands on the decoy."""

    def __init__(self, constant: float = 1.0, offset: float = 0.0, decoy: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.constant, self.offset, self.decoy = constant, offset, list(decoy)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        velocity = (x[:, :, 1:] - x[:, :, :-1]).abs() + self.offset
        channels = [velocity, torch.full_like(velocity[:, :1], self.constant)]
        if self.decoy:
            decoy = torch.full_like(velocity[:, :1], 0.2)
            decoy[..., self.decoy, :] = 3.0
            channels.append(decoy)
        return torch.cat(channels, dim=1).permute(0, 4, 1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool(self.features(x))


# ----- prototypes (eq. 33) and the triplet actionlet (eqs. 36-38) ----------------------------------------------
def test_prototypes_of_the_method_are_the_normalised_means_of_its_offline_embeddings():
    """Eq. 33 through ActCLRPlus.refresh_prototypes, with a hand-built offline encoder: sequences where only
    the right leg, only the left arm, or nothing moves give three groups; each prototype is the normalised mean
    of its group's unit embeddings (numpy), and every sequence's nearest prototype is its group's."""
    from skelssl.methods.actclr import ActCLRPlus
    from tests.methods.test_aimclr import tiny_config

    method = ActCLRPlus(tiny_config(ActCLRPlus, num_prototypes=3), "ntu25")
    encoder = MotionEncoder(constant=0.0)  # velocity only: the groups differ in direction
    method.encoder_k, method.projector_k = encoder, nn.Identity()
    base = static_pose(12, 10) + 0.01 * torch.randn(12, 3, 10, 25, 2, generator=gen(2)) * (torch.arange(2) == 0)
    groups = [moving(base[:4], [16, 17, 18, 19], 1.0, {0: 1.0}), moving(base[4:8], [5, 6, 7], 1.0, {1: 1.0}),
              base[8:]]
    data = torch.cat(groups).numpy()
    method.refresh_prototypes(data, epoch=4, batch_size=5)
    z = torch.nn.functional.normalize(encoder(torch.from_numpy(data)), dim=1).numpy()
    labels = np.repeat(np.arange(3), 4)
    nearest = method.prototypes.nearest(torch.from_numpy(z)).numpy()
    assert len({(a, b) for a, b in zip(labels, nearest)}) == 3  # the same partition
    for group in range(3):
        mean = z[labels == group].mean(axis=0)
        np.testing.assert_allclose(method.prototypes.centers[nearest[labels == group][0]].numpy(),
                                   mean / np.linalg.norm(mean), atol=1e-5)
    assert int(method.prototypes.epoch) == 4


def _triplet_select(x, prototype_sequences, static_sequences, margin=0.2, encoder=None):
    encoder = encoder or MotionEncoder()
    z = lambda s: torch.nn.functional.normalize(encoder(s), dim=1)  # noqa: E731
    prototypes = ActionPrototypes()
    prototypes.set(z(prototype_sequences), epoch=0)
    static = z(static_sequences.mean(dim=0, keepdim=True))  # b: the average motion's embedding
    objective = triplet_objective(lambda h: h, prototypes, static, margin)
    return ActionletSelector(NTU25, threshold=0.5).select(encoder.features(x), objective), objective, encoder


def test_triplet_actionlet_lands_on_the_one_moving_leg():
    still = static_pose(3, 12)
    x = torch.cat([moving(still[:1], [17, 18, 19]), still[1:2]])  # knee, ankle, foot of the right leg
    prototype_sequences = torch.cat([moving(still[:1], [17, 18, 19]), moving(still[:1], [5, 6, 7])])
    # features non-zero everywhere (velocity + 0.05) and a still left arm that is large in one channel: only the
    # gradient's channel weights (eq. 37) keep the map off that arm
    encoder = MotionEncoder(offset=0.05, decoy=tuple(LIMBS["left_arm"]))
    (scores, mask), objective, encoder = _triplet_select(x, prototype_sequences, still, encoder=encoder)
    selected = set(torch.nonzero(mask[0, 0].sum(dim=0)).flatten().tolist())
    assert selected and selected <= RIGHT_LEG and selected & {17, 18, 19}
    assert mask[0, 1].sum() == 0  # the absent person
    # the still sequence is the static anchor itself (sim(z, b) = 1): I = [sim(z, p) − 1 + γ]_+ (active here),
    # and with the same features at every joint no joint stands out: a uniform map (not the decoy arm)
    value = objective(encoder(x))
    sim_p = torch.nn.functional.cosine_similarity(encoder(x[1:]), encoder(prototype_sequences), dim=1).max()
    assert value[1].item() == pytest.approx(max(sim_p.item() - 1 + 0.2, 0.0), abs=1e-6) and value[1] > 0
    assert torch.allclose(scores[1], torch.ones_like(scores[1]))


def test_triplet_objective_hand_computed():
    """Eq. 36 on unit vectors: z = e1, prototypes e1·cos + e2·sin and e2, b = e3: I = [zᵀp − zᵀb + γ]_+ with
    p the nearest prototype."""
    prototypes = ActionPrototypes()
    prototypes.set(torch.tensor([[0.6, 0.8, 0.0], [0.0, 1.0, 0.0]]), epoch=0)
    objective = triplet_objective(lambda h: h, prototypes, torch.tensor([[0.0, 0.0, 2.0]]), margin=0.25)
    z = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.6, 0.8]])
    # z1 = e1: nearest p1 (0.6), b·z = 0 -> 0.85; z2 = e3: p·z = 0 for both, b·z = 1 -> [−0.75]_+ = 0;
    # z3: nearest p2 (0.6), b·z = 0.8 -> 0.6 − 0.8 + 0.25 = 0.05
    torch.testing.assert_close(objective(z), torch.tensor([0.85, 0.0, 0.05]))
    # without the hinge the second sequence keeps its value, and with it a gradient
    unhinged = triplet_objective(lambda h: h, prototypes, torch.tensor([[0.0, 0.0, 2.0]]), margin=0.25, hinge=False)
    torch.testing.assert_close(unhinged(z), torch.tensor([0.85, -0.75, 0.05]))
    z2 = z[1:2].clone().requires_grad_(True)
    (grad_hinged,) = torch.autograd.grad(objective(z2).sum(), z2, allow_unused=True)
    (grad_unhinged,) = torch.autograd.grad(unhinged(z2).sum(), z2)
    assert grad_hinged is None or grad_hinged.abs().sum() == 0
    # d/dz [z·p2/|z| − z·b/|z|] at z = e3 (p2 = e2 tied with p1 at 0: the first, p1 = (0.6, 0.8, 0), is taken):
    # the projection of p1 − e3 orthogonal to z = (0.6, 0.8, 0)
    torch.testing.assert_close(grad_unhinged, torch.tensor([[0.6, 0.8, 0.0]]))


# ----- adversarial noise (eqs. 40-42) ----------------------------------------------------------------------------
def test_fgsm_noise_step_sign_and_bound():
    x = torch.randn(2, 3, 4, 25, 1, generator=gen(3))
    gradient = torch.randn(x.shape, generator=gen(4))
    gradient[0, :, 0] = 0.0  # no gradient: no step
    out = adversarial_step(x, gradient, gen(5), epsilon=0.03, noise_std=0.0, matrices=("noise",))
    step = out - x
    torch.testing.assert_close(step, -0.03 * torch.sign(gradient))  # N = −ε·sgn(∇I) (eq. 42)
    assert step.abs().max() <= 0.03 + 1e-7 and step[0, :, 0].abs().max() == 0
    noisy = adversarial_step(x, gradient, gen(5), epsilon=0.03, noise_std=0.5, matrices=("noise",))
    noise = noisy - out
    assert abs(noise.std().item() - 0.5) < 0.06 and abs(noise.mean().item()) < 0.06  # then Gaussian noise


def _linear_objective_case() -> tuple[torch.Tensor, torch.Tensor]:
    """x: C 2, T 1, V 2; joint 0 at (1, 2), joint 1 at (−1, 1). I(x') = x'[c0, joint 0] − x'[c1, joint 1],
    so ∇_x I = w below, whatever x' is."""
    x = torch.tensor([[1.0, -1.0], [2.0, 1.0]]).view(1, 2, 1, 2, 1)
    w = torch.tensor([[1.0, 0.0], [0.0, -1.0]]).view(1, 2, 1, 2, 1)
    return x, w


def test_fgsm_steps_mask_shear_and_noise_by_hand():
    """Eq. 42 on the three matrices of eq. 16, x' = M ⊙ (x R) + N, for the linear objective above, ε = 0.1:
    ∇_N I = w -> N = −0.1 at (c0, j0), +0.1 at (c1, j1); ∇_M I = Σ_c x_c w_c = 1 (joint 0), −1 (joint 1) ->
    M = 0.9, 1.1; ∇_R I = Σ_v x_c(v) w_d(v): R01 ∝ x_0(j1)·(−1) = 1, R10 ∝ x_1(j0)·1 = 2 -> R = [[1, −0.1],
    [−0.1, 1]]. x R: joint 0 (1 − 0.2, 2 − 0.1) = (0.8, 1.9), joint 1 (−1 − 0.1, 0.1 + 1) = (−1.1, 1.1);
    ⊙ M: (0.72, 1.71), (−1.21, 1.21); + N: (0.62, 1.71), (−1.21, 1.31). I falls from 0 to 0.62 − 1.31."""
    x, w = _linear_objective_case()

    def step(*matrices):
        return adversarial_step(x, w, gen(), epsilon=0.1, noise_std=0.0, matrices=matrices).view(2, 2)

    # rows: coordinate, columns: joint
    torch.testing.assert_close(step("mask", "shear", "noise"), torch.tensor([[0.62, -1.21], [1.71, 1.31]]))
    torch.testing.assert_close(step("shear"), torch.tensor([[0.8, -1.1], [1.9, 1.1]]))
    torch.testing.assert_close(step("mask"), torch.tensor([[0.9, -1.1], [1.8, 1.1]]))
    torch.testing.assert_close(step("noise"), torch.tensor([[0.9, -1.0], [2.0, 1.1]]))
    torch.testing.assert_close(step(), x.view(2, 2))
    value = lambda v: (v[0, 0] - v[1, 1]).item()  # noqa: E731
    assert value(step("mask", "shear", "noise")) == pytest.approx(0.62 - 1.31)


def test_fgsm_matrix_steps_follow_the_sign_of_autograds_gradient_on_each_matrix():
    """An independent route: M ⊙ (x R) + N as torch parameters at M = 1, R = I, N = 0, a nonlinear objective,
    autograd's gradient on each; the expected result is each matrix after its FGSM step (R's diagonal fixed)."""
    x = torch.randn(3, 3, 5, 25, 2, generator=gen(12), dtype=torch.float64)
    target = torch.randn(x.shape, generator=gen(13), dtype=torch.float64)
    weight = torch.linspace(0.5, 2, 25, dtype=torch.float64).view(1, 1, 1, -1, 1)
    objective = lambda v: ((v - target) ** 2 * weight).sum()  # noqa: E731
    m = torch.ones(3, 1, 5, 25, 2, dtype=torch.float64, requires_grad=True)
    r = torch.eye(3, dtype=torch.float64).repeat(3, 1, 1).requires_grad_(True)
    n = torch.zeros_like(x, requires_grad=True)
    transformed = m * torch.einsum("nctvm,ncd->ndtvm", x, r) + n
    grad_m, grad_r, grad_n = torch.autograd.grad(objective(transformed), (m, r, n))
    xg = x.clone().requires_grad_(True)
    (grad_x,) = torch.autograd.grad(objective(xg), xg)
    eps = 0.05
    r_new = torch.eye(3, dtype=torch.float64) - eps * torch.sign(grad_r) * (1 - torch.eye(3, dtype=torch.float64))
    sheared = torch.einsum("nctvm,ncd->ndtvm", x, r_new)
    expected = (1 - eps * torch.sign(grad_m)) * sheared - eps * torch.sign(grad_n)
    out = adversarial_step(x, grad_x, gen(), epsilon=eps, noise_std=0.0)
    torch.testing.assert_close(out, expected)
    assert objective(out) < objective(x)


def test_the_methods_attack_lowers_the_triplet_objective_outside_the_actionlet():
    """The method's gradient is (1 − A) ⊙ ∇I: zero on the actionlet; a small step against it lowers I."""
    from skelssl.methods.actclr import ActCLRPlus
    from tests.methods.test_aimclr import tiny_batch, tiny_config

    torch.manual_seed(0)
    method = ActCLRPlus(tiny_config(ActCLRPlus, num_prototypes=3, triplet_margin=1.0), "ntu25").train()
    x = tiny_batch(n=6, t=16)["x"]
    method.update_anchor(x.numpy())
    method.refresh_prototypes(x.numpy())
    method.actionlet_maps(method.to_stream(x))  # sets the anchor embedding b
    actionlet = torch.zeros(6, 2, 16, 25)
    actionlet[:, :, :, :12] = 1.0  # joints 0-11 are "actionlet"
    gradient = method.attack_gradient(x, actionlet)
    assert gradient[..., :12, :].abs().max() == 0 and gradient[..., 12:, 0].abs().sum() > 0
    objective = method.actionlet_objective(method.anchor_embedding)

    def value(v):
        with torch.no_grad():
            from skelssl.models.passes import side_effect_free

            with side_effect_free(method.encoder_k, method.projector_k):
                return objective(pool(method.encoder_k.features(method.to_stream(v)))).sum().item()

    attacked = adversarial_step(x, gradient, gen(), epsilon=1e-3, noise_std=0.0)
    assert value(attacked) < value(x)


# ----- skeleton mask (eq. 43) -------------------------------------------------------------------------------------
@pytest.mark.parametrize("padding", ["zero", "noise", "sequence"])
def test_skeleton_mask_paddings(padding):
    n = 64
    x = torch.randn(n, 3, 6, 25, 2, generator=gen(6)) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1, 1) + \
        torch.tensor([0.0, 3.0, -1.0]).view(1, 3, 1, 1, 1)
    x[::2, :, :, :, 1] = 0  # absent second persons
    partner = torch.roll(torch.arange(n), 1)
    out, keep = skeleton_mask(x, gen(7), NTU25, padding=padding, p=1.0, partner=partner)
    hidden = keep.view(n, 25) == 0
    for sample in hidden:  # exactly one whole limb
        joints = set(torch.nonzero(sample).flatten().tolist())
        assert joints in LIMBS.values()
    h5 = hidden[:, None, None, :, None].expand_as(x)
    assert torch.equal(out[~h5], x[~h5])  # eq. 43: x ⊙ M where M = 1
    assert out[::2, :, :, :, 1].abs().sum() == 0  # absent persons stay zero
    present = h5.clone()
    present[::2, :, :, :, 1] = False
    if padding == "zero":
        assert out[present].abs().sum() == 0
    elif padding == "sequence":
        assert torch.equal(out[present], x[partner][present])
    else:  # N(μ_c, σ_c²) of the batch's coordinate c
        for c, (mean, std) in enumerate(zip(x.mean(dim=(0, 2, 3, 4)), x.std(dim=(0, 2, 3, 4), unbiased=False))):
            values = out[:, c][present[:, c]]
            assert abs(values.mean().item() - mean.item()) < 0.1 * std.item() + 0.05
            assert abs(values.std().item() - std.item()) < 0.1 * std.item()
    unchanged, keep0 = skeleton_mask(x, gen(7), NTU25, padding=padding, p=0.0)
    assert torch.equal(unchanged, x) and keep0.min() == 1


# ----- Inter-SD (eqs. 46-48) --------------------------------------------------------------------------------------
def _mix(keep, partner, partner_frames=None, span=None):
    n, t, _ = keep.shape
    frames = torch.arange(t).expand(n, t) if partner_frames is None else partner_frames
    span = torch.ones(n, t, dtype=torch.bool) if span is None else span
    return Mix(mixed=torch.zeros(0), keep=keep, partner=partner, partner_frames=frames, partner_span=span,
               mode=torch.zeros(n, dtype=torch.long))


def test_inter_sd_actionlet_shares_on_known_masks():
    t, v = 4, 3
    actionlet = torch.zeros(2, 1, t, v)
    actionlet[0, 0, :, 0] = 1.0  # sample 0: joint 0, all 4 frames
    actionlet[1, 0, 0:2, 1:3] = 1.0  # sample 1: joints 1-2, frames 0-1
    # CutMix: sample 0 gives joints 1-2 of frames 0-3 to its partner 1, sample 1 gives joint 0 of frames 2-3
    keep = torch.ones(2, t, v)
    keep[0, :, 1:] = 0
    keep[1, 2:, 0] = 0
    a, b = actionlet_shares(_mix(keep, torch.tensor([1, 0])), actionlet)
    # a0: A0 on joint 0 all kept -> 1; b0: partner 1's A on joints 1-2 frames 0-1, all shown -> 1
    # a1: A1 (joints 1-2, frames 0-1) all kept -> 1; b1: partner 0's A on joint 0 frames 2-3 shown -> 2/4
    torch.testing.assert_close(a, torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(b, torch.tensor([1.0, 0.5]))
    # Mixup: M̃ = 1 − λ everywhere -> a = 1 − λ, b = λ
    lam = torch.tensor([0.3, 0.8])
    a, b = actionlet_shares(_mix((1 - lam).view(2, 1, 1).expand(2, t, v), torch.tensor([1, 0])), actionlet)
    torch.testing.assert_close(a, 1 - lam)
    torch.testing.assert_close(b, lam)
    # ResizeMix: sample 0's region is frames 2-3 x joints 1-2, showing partner 1's frames 0 and 2 (squeezed):
    # partner 1's actionlet there: frame 0 joints 1-2 (2 cells) of the 2 cells the span shows -> b0 = 1;
    # own actionlet of sample 0 (joint 0) all kept -> a0 = 1. Sample 1 with an empty actionlet: a = share kept.
    keep = torch.ones(2, t, v)
    keep[0, 2:, 1:] = 0
    frames = torch.tensor([[0, 1, 0, 2], [0, 1, 2, 3]])
    span = torch.tensor([[False, False, True, True], [True] * 4])
    empty = actionlet.clone()
    empty[1] = 0
    a, b = actionlet_shares(_mix(keep, torch.tensor([1, 0]), frames, span), empty)
    torch.testing.assert_close(a, torch.tensor([1.0, 1.0]))
    # b0: span frames 2-3 show partner frames 0 and 2; A1 was zeroed -> empty -> every span cell counts:
    # hidden share of the span = 4 cells of 6
    torch.testing.assert_close(b, torch.tensor([4 / 6, 0.0]))
    a, b = actionlet_shares(_mix(keep, torch.tensor([1, 0]), frames, span), actionlet)
    torch.testing.assert_close(b[0], torch.tensor(1.0))  # partner 1's A at its frame 0 (shown at 2), joints 1-2


def test_mixed_target_eq47():
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=1)
    target = mixed_target(z, torch.tensor([1, 2, 0]), torch.tensor([0.75, 0.0, 0.0]), torch.tensor([0.25, 0.0, 2.0]))
    expected = torch.tensor([[0.75, 0.25], [0.5 / math.sqrt(2), 0.5 + 0.5 / math.sqrt(2)], [1.0, 0.0]])
    torch.testing.assert_close(target, torch.nn.functional.normalize(expected, dim=1))


def test_mix_mask_describes_the_mixed_sequence():
    """x̃ = M̃ ⊙ x + (1 − M̃) ⊙ x'[partner_frames] wherever the partner's frames are shown (eq. 46)."""
    x = torch.randn(32, 3, 20, 25, 1, generator=gen(8))
    mix = skeleton_mix_with_mask(x, gen(9), NTU25, probs=(1 / 3, 1 / 3, 1 / 3))
    assert set(mix.mode.tolist()) == {0, 1, 2}
    other = x[mix.partner]
    shown = other.gather(2, mix.partner_frames[:, None, :, None, None].expand_as(other))
    keep = mix.keep[:, None, :, :, None]
    torch.testing.assert_close(mix.mixed, keep * x + (1 - keep) * shown)


# ----- SAM³ (eqs. 49-50) ----------------------------------------------------------------------------------------------
def test_gumbel_topk_mask_statistics():
    scores = torch.tensor([[0.0, 0.5, 1.0], [1.0, 0.0, 0.25]]).view(1, 1, 2, 3)
    draws = torch.stack([gumbel_topk_mask(scores, 1 / 6, 0.5, gen(seed)) for seed in range(6000)])
    assert (draws.flatten(1).sum(dim=1) == 1).all()  # k = round(6 / 6) = 1 token hidden each time
    frequency = draws.float().mean(dim=0).flatten()
    expected = torch.softmax(scores.flatten() / 0.5, dim=0)  # the first Gumbel-Max pick ~ softmax(A / τ)
    assert (frequency - expected).abs().max() < 0.02, (frequency, expected)
    half = gumbel_topk_mask(scores.expand(4, 2, 2, 3), 0.5, 0.25, gen(1))
    assert (half.flatten(2).sum(dim=2) == 3).all()  # k per sample and person


def test_token_frames_and_decoder_assembly():
    token, offset = token_frame_index(10, 3)  # frame t -> feature frame floor(3t / 10)
    assert token.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert offset.tolist() == [0, 1, 2, 3, 0, 1, 2, 0, 1, 2]
    decoder = MaskedMotionDecoder(feature_channels=5, input_channels=2, frames_per_token=4, layout=NTU25)
    with torch.no_grad():  # a constant decoder: every token predicts motion bias[c, offset]
        for layer in (decoder.embed, decoder.motion, decoder.actionlet):
            layer.weight.zero_()
        decoder.embed.bias.fill_(1.0)
        decoder.motion.bias.copy_(torch.arange(8, dtype=torch.float32))  # index c * 4 + offset
        decoder.actionlet.bias.fill_(0.5)
    motion, actionlet = decoder(torch.randn(2, 2, 5, 3, 25), num_frames=10)
    assert motion.shape == (2, 2, 10, 25, 2) and actionlet.shape == (2, 2, 3, 25)
    expected = torch.stack([torch.tensor(offset.tolist(), dtype=torch.float32) + 4 * c for c in range(2)])
    torch.testing.assert_close(motion[0, :, :, 7, 1], expected)
    assert torch.equal(actionlet, torch.full_like(actionlet, 0.5))


def test_reconstruction_loss_on_a_known_reconstruction():
    x = torch.tensor([0.0, 1.0, 3.0, 6.0]).view(1, 1, 4, 1, 1)
    target = motion_target(x)
    assert target.flatten().tolist() == [1.0, 2.0, 3.0, 0.0]
    prediction = torch.tensor([1.0, 0.0, 3.0, 5.0]).view(1, 1, 4, 1, 1)
    weights = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 4, 1, 1)  # frames 0, 1 were hidden
    assert masked_mse(prediction, target, weights).item() == pytest.approx((0 + 4) / 2)
    assert masked_mse(prediction, target, torch.zeros_like(weights)).item() == 0.0
