"""Pretraining end to end on tiny data: SkeletonCLR learns, checkpoints resume exactly, bad input is named."""

from __future__ import annotations

import torch

from skelssl.config import load_config
from skelssl.methods import get_method
from skelssl.checkpoints import LAST_CHECKPOINT
from skelssl.train import pretrain
from tests.conftest import tiny_overrides


def _state(run_dir):
    ckpt = torch.load(run_dir / LAST_CHECKPOINT, map_location="cpu", weights_only=False)
    return ckpt


def test_skeletonclr_loss_falls_on_a_fixed_batch(tiny_dataset, tmp_path):
    cfg = load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{"optim.lr": 0.05}))
    torch.manual_seed(0)
    method = get_method("skeletonclr")(cfg, layout="ntu25")
    x = torch.randn(8, 3, 16, 25, 2) * 0.3
    batch = {"x": x, "index": torch.arange(8), "label": torch.zeros(8, dtype=torch.long)}
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    # Negatives: keys of other sequences, so the loss starts near its chance level, not at a random bank's.
    others = torch.randn(64, 3, 16, 25, 2) * 0.3
    method.queue.enqueue(method.encode_key(method.to_stream(others)))

    def loss_at_fixed_augmentation() -> float:
        method.generator.manual_seed(123)  # the same views each time; dropout is 0 in the tiny config
        with torch.no_grad():
            loss, _ = method.training_loss(batch)
        return loss.item()

    before = loss_at_fixed_augmentation()
    for _ in range(15):
        method.generator.manual_seed(123)
        loss, _ = method.training_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = loss_at_fixed_augmentation()
    assert torch.isfinite(torch.tensor(after))
    assert after < before - 0.05, (before, after)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_dataset, tmp_path):
    straight = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "straight")), command=[])
    interrupted_dir = tmp_path / "interrupted"
    pretrain(load_config(None, tiny_overrides(tiny_dataset, interrupted_dir)), command=[], max_epochs=1)
    half = _state(interrupted_dir)["global_step"]
    pretrain(load_config(None, tiny_overrides(tiny_dataset, interrupted_dir, resume="true")), command=[])
    a, b = _state(straight), _state(interrupted_dir)
    assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"] == 2 * half
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert torch.equal(a["state_dict"]["queue.bank"], b["state_dict"]["queue.bank"])
    opt_a = a["optimizer_states"][0]["state"]
    opt_b = b["optimizer_states"][0]["state"]
    for k in opt_a:
        assert torch.equal(opt_a[k]["momentum_buffer"], opt_b[k]["momentum_buffer"])
    assert a["lr_schedulers"] == b["lr_schedulers"]


def test_init_from_starts_a_new_method_from_another_runs_encoder(tiny_dataset, tmp_path):
    """model.init_from (the official ActCLR starts from AimCLR's weights): both query and key networks get
    the source run's query encoder and projector; an imported encoder (no projector) starts the encoder only; a
    run with other shapes is refused, naming the tensor."""
    import pytest

    from skelssl.errors import UserError
    from skelssl.checkpoints import initialize_from_checkpoint

    source_dir = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "aimclr", **{
        "method.name": "aimclr", "trainer.epochs": 1})), command=[])
    source = _state(source_dir)["state_dict"]
    overrides = {"method.name": "actclr", "trainer.epochs": 1, "optim.name": "adam", "optim.lr": 1e-3,
                 "model.init_from": str(source_dir / LAST_CHECKPOINT)}
    cfg = load_config(None, tiny_overrides(tiny_dataset, tmp_path / "actclr", **overrides))
    method = get_method("actclr")(cfg, layout="ntu25")
    initialize_from_checkpoint(method, cfg.model.init_from)
    for name, value in method.state_dict().items():
        prefix, _, rest = name.partition(".")
        if prefix in ("encoder_q", "encoder_k", "projector_q", "projector_k"):
            torch.testing.assert_close(value, source[f"{prefix[:-2]}_q.{rest}"], rtol=0, atol=0)
    assert pretrain(cfg, command=[]).joinpath(LAST_CHECKPOINT).is_file()  # and the run itself trains

    # an encoder without a projector (what `skelssl import` writes), given as a run directory: the encoder is
    # taken, the projector keeps the new method's own initialisation
    encoder_only = _state(source_dir)
    encoder_only["state_dict"] = {k: v for k, v in source.items() if k.startswith("encoder_q.")}
    imported_dir = tmp_path / "imported"
    (imported_dir / "checkpoints").mkdir(parents=True)
    torch.save(encoder_only, imported_dir / LAST_CHECKPOINT)
    fresh = get_method("actclr")(cfg, layout="ntu25")
    own_projector = {k: v.clone() for k, v in fresh.projector_q.state_dict().items()}
    assert initialize_from_checkpoint(fresh, imported_dir) == ["encoder"]
    for name, value in fresh.encoder_k.state_dict().items():
        torch.testing.assert_close(value, source[f"encoder_q.{name}"], rtol=0, atol=0)
    for name, value in fresh.projector_k.state_dict().items():
        torch.testing.assert_close(value, own_projector[name], rtol=0, atol=0)
        assert not torch.equal(value, source[f"projector_q.{name}"])

    wider = load_config(None, tiny_overrides(tiny_dataset, tmp_path / "wider", **{
        **overrides, "model.stgcn.hidden_channels": 8}))
    with pytest.raises(UserError, match=r"model.init_from=.*encoder does not fit.*blocks\.0\."):
        initialize_from_checkpoint(get_method("actclr")(wider, layout="ntu25"), wider.model.init_from)


def test_random_init_baseline_is_the_runs_own_starting_point(tiny_dataset, tmp_path):
    """method_from_checkpoint(load_weights=False) redraws the encoder pretraining started from (same seed),
    whatever the caller's RNG state, so the random-init rows are reproducible."""
    import lightning as L

    from skelssl.methods import method_from_checkpoint

    class RecordStart(L.Callback):
        def on_train_start(self, trainer, pl_module):
            self.start = {k: v.clone() for k, v in pl_module.encoder_q.state_dict().items()}

    record = RecordStart()
    run_dir = pretrain(load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{
        "trainer.epochs": 1, "trainer.seed": 3})), command=[], callbacks=[record])
    torch.manual_seed(12345)  # the caller's RNG state must not matter, and is left as it was
    baseline = method_from_checkpoint(run_dir / LAST_CHECKPOINT, load_weights=False)
    drawn_after = torch.rand(3)
    for name, value in baseline.encoder_q.state_dict().items():
        torch.testing.assert_close(value, record.start[name], rtol=0, atol=0)
    torch.manual_seed(12345)
    assert torch.equal(drawn_after, torch.rand(3))
    # overrides, dotted or nested, reach the rebuilt method's config (a dotted key once became a new top-level
    # key that nothing read: bench_actionlets.py's --maps analysed every map as the default)
    dotted = method_from_checkpoint(run_dir / LAST_CHECKPOINT, {"method.temperature": 0.5}, load_weights=False)
    nested = method_from_checkpoint(run_dir / LAST_CHECKPOINT, {"method": {"temperature": 0.25}}, load_weights=False)
    assert (dotted.cfg.method.temperature, nested.cfg.method.temperature) == (0.5, 0.25)
    assert "method.temperature" not in dotted.cfg


class _PoisonBatches:
    """A callback that turns the input of the given (epoch, batch) steps into NaN."""

    def __new__(cls, steps):
        import lightning as L

        class Poison(L.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                if (trainer.current_epoch, batch_idx) in steps:
                    batch["x"].fill_(float("nan"))

        return Poison()


def test_a_nan_loss_stops_the_run_naming_epoch_step_and_terms_and_keeps_the_last_checkpoint(tiny_dataset, tmp_path):
    import lightning as L
    import pytest

    from skelssl.errors import NonFiniteError

    class PoisonProjector(L.Callback):  # the projector's output, hence the loss, becomes NaN at (1, 1)
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if (trainer.current_epoch, batch_idx) == (1, 1):
                with torch.no_grad():
                    module.projector_q[2].bias.fill_(float("nan"))

    run_dir = tmp_path / "run"
    cfg = load_config(None, tiny_overrides(tiny_dataset, run_dir, **{"trainer.epochs": 3}))
    with pytest.raises(NonFiniteError) as err:
        pretrain(cfg, command=[], callbacks=[PoisonProjector()])
    message = str(err.value)
    steps_per_epoch = _state(run_dir)["global_step"]  # the last good checkpoint: the end of epoch 0
    assert "at epoch 1, step" in message and f"step {steps_per_epoch + 1} (batch 1)" in message
    assert "the loss became nan (info_nce nan)" in message and "last good checkpoint is kept" in message
    assert _state(run_dir)["epoch"] == 0


def test_nonfinite_skip_counts_skipped_steps_and_keeps_the_bank_clean(tiny_dataset, tmp_path):
    """NaN input batches: the steps are skipped (no update, no keys enqueued), counted, and the run goes on."""
    import pytest

    from skelssl.errors import NonFiniteError

    cfg = load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{
        "trainer.epochs": 2, "trainer.nonfinite": "skip", "trainer.max_nonfinite_skips": 2}))
    run_dir = pretrain(cfg, command=[], callbacks=[_PoisonBatches({(0, 1), (1, 0)})])
    state = _state(run_dir)
    assert state["skelssl"]["skipped_steps"] == 2
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    cfg = load_config(None, tiny_overrides(tiny_dataset, tmp_path / "again", **{
        "trainer.epochs": 2, "trainer.nonfinite": "skip", "trainer.max_nonfinite_skips": 1}))
    with pytest.raises(NonFiniteError, match="stopped after 1 skipped steps"):
        pretrain(cfg, command=[], callbacks=[_PoisonBatches({(0, 1), (1, 0)})])


def test_a_nan_gradient_with_a_finite_loss_stops_the_run(tiny_dataset, tmp_path):
    import lightning as L
    import pytest

    from skelssl.errors import NonFiniteError

    class PoisonGradient(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.current_epoch == 0 and batch_idx == 1:
                weight = module.projector_q[0].weight
                handle = weight.register_hook(lambda grad: grad * float("nan"))
                module._poison = handle

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if getattr(module, "_poison", None) is not None:
                module._poison.remove()
                module._poison = None

    cfg = load_config(None, tiny_overrides(tiny_dataset, tmp_path / "run", **{"trainer.epochs": 1}))
    with pytest.raises(NonFiniteError, match="at epoch 0, step 1 .batch 1., a gradient became infinite or NaN"):
        pretrain(cfg, command=[], callbacks=[PoisonGradient()])
