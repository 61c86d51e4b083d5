"""ActCLR: similarity mining, the anchor, the hinge share and the prototypes by hand; a fit and its resume."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from skelssl.methods.actclr import ActCLR, similarity_mining_loss
from tests.methods.test_aimclr import tiny_batch, tiny_config


def anchored(method, batch):
    method.update_anchor(batch["x"].numpy())
    return method


def test_similarity_mining_hand_computed():
    bank = torch.eye(3)
    z_q = torch.tensor([[1.0, 0.0, 0.0]])
    z_k = torch.tensor([[0.0, 1.0, 0.0]])
    p_k = torch.softmax(torch.tensor([0.0, 1.0, 0.0]) / 0.04, dim=0)
    log_p_q = torch.log_softmax(torch.tensor([1.0, 0.0, 0.0]) / 0.1, dim=0)
    expected = -(p_k * log_p_q).sum()
    assert similarity_mining_loss(z_q, z_k, bank).item() == pytest.approx(expected.item(), rel=1e-5)
    # top-1 of the key's similarities: one column on both sides -> cross-entropy 0
    assert similarity_mining_loss(z_q, z_k, bank, topk=1).item() == pytest.approx(0.0, abs=1e-6)
    # exclusion: the key's duplicate (similarity 1 > 0.95) becomes -1 and drops out of the target
    loss = similarity_mining_loss(z_q, z_k, bank, exclude_above=0.95)
    p_k = torch.softmax(torch.tensor([0.0, -1.0, 0.0]) / 0.04, dim=0)
    assert loss.item() == pytest.approx(-(p_k * log_p_q).sum().item(), rel=1e-5)


class _Data:
    def __init__(self, x: np.ndarray):
        self.data = x

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return {"x": torch.from_numpy(self.data[i]), "index": i, "label": 0}


class _DataModule(L.LightningDataModule):
    def __init__(self, x: np.ndarray):
        super().__init__()
        self.train_dataset = _Data(x)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.train_dataset, batch_size=8, shuffle=False)


def test_actclr_fits_with_lightning_and_computes_the_dataset_anchor():
    x = tiny_batch(n=16)["x"].numpy()
    cfg = tiny_config(ActCLR)
    cfg.optim.name = "adam"
    cfg.optim.lr = 1e-3
    method = ActCLR(cfg, "ntu25")
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(method, datamodule=_DataModule(x))
    assert torch.allclose(method.static_anchor.sequence, torch.from_numpy(x).mean(dim=0), atol=1e-6)  # eq. 2
    assert int(method.queue.ptr) == 16  # two steps of 8 keys enqueued


# ----- ActCLR+: hinge share (eq. 36) and fresh prototypes ------------------------------------------------------
def test_triplet_hinge_active_share_by_hand():
    """P = {e1, e2}, b = (1, 1)/√2, γ = 0.2: z = e1 gives 1 − 0.707 + 0.2 > 0; z ∥ b gives 0.707 − 1 + 0.2 < 0;
    z ∥ (1, 0.5) gives 0.894 − 0.949 + 0.2 > 0; z ∥ (0.7, 0.72) gives 0.717 − 1.000 + 0.2 < 0: share 1/2."""
    from skelssl.methods.actclr.prototypes import ActionPrototypes, triplet_objective

    prototypes = ActionPrototypes()
    prototypes.set(torch.eye(2), epoch=0)
    objective = triplet_objective(lambda h: h, prototypes, torch.tensor([[1.0, 1.0]]), margin=0.2)
    objective(torch.tensor([[1.0, 0.0], [2.0, 2.0], [1.0, 0.5], [0.7, 0.72]]))
    assert objective.active.tolist() == [True, False, True, False]
    assert objective.active_share.item() == 0.5


def test_training_logs_the_hinge_active_share():
    """With the static anchor's own embedding as the one prototype, eq. 36's argument is exactly γ: with γ = 0
    no hinge is active (share 0), with γ = 0.5 every one is (share 1)."""
    from skelssl.methods.actclr import ActCLRPlus

    for margin, share in ((0.0, 0.0), (0.5, 1.0)):
        torch.manual_seed(0)
        method = ActCLRPlus(tiny_config(ActCLRPlus, num_prototypes=1, anchor="batch", triplet_margin=margin,
                                        adversarial=False, inter_sd=False, sam=False), "ntu25").train()
        batch = tiny_batch()
        method.prototypes.set(torch.ones(1, 128), epoch=0)  # any, to build the first objective
        method.actionlet_maps(method.to_stream(batch["x"]))
        method.prototypes.set(method.anchor_embedding, epoch=0)  # b itself: sim(z, p) = sim(z, b)
        _, logs = method.training_loss(batch)
        assert logs["hinge_active"].item() == share


def test_prototypes_are_refreshed_every_epoch_after_the_warmup():
    from skelssl.methods.actclr import ActCLRPlus

    method = ActCLRPlus(tiny_config(ActCLRPlus, num_prototypes=2, warmup={"epochs": 1}), "ntu25").train()
    data = tiny_batch()["x"].numpy()
    assert method.prototypes_due(1)
    method.refresh_prototypes(data, epoch=1)
    first = method.prototypes.centers.clone()
    assert not method.prototypes_due(1)  # done for this epoch
    for epoch in (2, 3):
        assert method.prototypes_due(epoch)
        with torch.no_grad():  # the encoder moved during the epoch
            for p in method.encoder_k.parameters():
                p.add_(0.05 * torch.randn_like(p))
        method.refresh_prototypes(data, epoch=epoch)
        assert int(method.prototypes.epoch) == epoch
    assert not torch.allclose(method.prototypes.centers, first, atol=1e-3)


def test_update_anchor_is_the_mean_of_the_given_rows():
    torch.manual_seed(0)
    method = ActCLR(tiny_config(ActCLR), "ntu25")
    data = tiny_batch(n=6)["x"].numpy()
    method.update_anchor(data, rows=np.array([4, 1, 2]))
    np.testing.assert_allclose(method.static_anchor.sequence.numpy(), data[[1, 2, 4]].mean(axis=0), atol=1e-6)
