"""`skelssl analyze actionlets` computes the map the way training does: train mode, batch statistics of
training-size batches, no running statistic moved; expected maps by an independent route (eq. 37 written out)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from skelssl.analysis.actionlets import predict_actionlets, training_size_batches
from skelssl.methods.actclr import ActCLR
from tests.methods.test_aimclr import tiny_batch, tiny_config


def test_training_size_batches_cover_every_row_once_with_full_batches():
    """Shuffled as training's loader shuffles (seeded), every batch of the training size, each row kept once;
    the last batch is completed with the permutation's first rows, not kept."""
    order = np.random.default_rng(7).permutation(10).tolist()  # numpy's permutation, drawn here independently
    batches = [(rows.tolist(), kept.tolist()) for rows, kept in training_size_batches(10, 4, seed=7)]
    assert batches == [(order[0:4], [0, 1, 2, 3]), (order[4:8], [0, 1, 2, 3]), (order[8:10] + order[0:2], [0, 1])]
    assert [r.tolist() for r, _ in training_size_batches(3, 4, seed=7)] == [
        np.random.default_rng(7).permutation(3).tolist()]
    assert training_size_batches(10, 4, seed=7)[0][0].tolist() != training_size_batches(10, 4, seed=8)[0][0].tolist()


def eq37_by_hand(method: ActCLR, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ActCLR's training actionlet of x (N, C, T, V, M), written out: every BatchNorm of the offline encoder
    normalising with this batch's (x and the batch-mean anchor) own statistics, eq. 3's objective, eqs. 4-5
    with G, max-normalised, threshold 0.5; person 0 at the input frame rate."""
    encoder, head = method.encoder_k, method.projector_k
    saved = {}
    for module in encoder.modules():  # batch statistics, by hand: train-mode BN without running statistics
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            saved[module] = (module.running_mean, module.running_var)
            module.running_mean, module.running_var = None, None
    try:
        encoder.train()
        stream = method.to_stream(x)
        with torch.no_grad():
            dense = encoder.features(torch.cat([stream, stream.mean(dim=0, keepdim=True)]))
    finally:
        for module, (mean, var) in saved.items():
            module.running_mean, module.running_var = mean, var
    anchor = head(dense[-1:].mean(dim=(3, 4)).mean(dim=1)).detach()
    h = dense[:-1].clone().requires_grad_(True)
    loss = -F.cosine_similarity(head(h.mean(dim=(3, 4)).mean(dim=1)), anchor.expand(h.shape[0], -1)).sum()
    (grad,) = torch.autograd.grad(loss, h)
    alpha = grad.clamp_min(0).mean(dim=(3, 4), keepdim=True)
    adjacency = torch.as_tensor(np.asarray(method.layout.adjacency(self_loops=True)), dtype=torch.float32)
    cam = ((alpha * h.detach()).sum(dim=2).clamp_min(0)) @ (adjacency / adjacency.sum(dim=0, keepdim=True))
    scores = cam / cam.amax(dim=(1, 2, 3), keepdim=True)
    frames = torch.arange(x.shape[2]) * cam.shape[2] // x.shape[2]
    return (scores >= 0.5).float()[:, 0][:, frames], scores[:, 0][:, frames]


def test_analysis_uses_batch_statistics_of_training_size_batches_not_running_statistics():
    torch.manual_seed(0)
    method = ActCLR(tiny_config(ActCLR, anchor="batch"), "ntu25")
    method.cfg.trainer.batch_size = 4
    for module in method.encoder_k.modules():  # running statistics far from any batch's (as after sheared keys)
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.add_(3.0)
            module.running_var.mul_(50.0)
    before = {k: v.clone() for k, v in method.encoder_k.state_dict().items()}
    x = tiny_batch(n=10)["x"]
    method.eval()  # as a checkpoint is loaded for analysis
    masks, scores = predict_actionlets(method, x.numpy())
    assert not method.training  # the mode is restored
    for key, value in method.encoder_k.state_dict().items():  # no running statistic moved
        torch.testing.assert_close(value, before[key])
    # the batches of training_size_batches (tested above), each row's map from the batch that keeps it
    expected_masks, expected_scores = torch.zeros_like(masks), torch.zeros_like(scores)
    for rows, kept in training_size_batches(10, 4, seed=int(method.cfg.trainer.seed)):
        mask, score = eq37_by_hand(method, x[torch.as_tensor(rows)])
        expected_masks[torch.as_tensor(rows[kept])] = mask[torch.as_tensor(kept)]
        expected_scores[torch.as_tensor(rows[kept])] = score[torch.as_tensor(kept)]
    torch.testing.assert_close(masks, expected_masks)
    torch.testing.assert_close(scores, expected_scores, atol=1e-5, rtol=1e-4)
