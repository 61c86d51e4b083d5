"""Action segmentation: metrics against hand-computed values, frame features against the whole-sequence
encoding, the untrimmed synthetic generator, and the protocol end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from skelssl.cli import main
from skelssl.data.synthetic_untrimmed import generate_untrimmed, prepare_synthetic_untrimmed
from skelssl.evaluation.segmentation import confusion_matrix, frame_features, segmentation_scores
from skelssl.models.stgcn import STGCN
from tests.conftest import SHARED, tiny_overrides

PKU_SAMPLE = SHARED / "data" / "pkummd_sample" / "A10N08-L.txt"


# ------------------------------------------------------------------------------------------------- metrics

def test_scores_on_a_hand_counted_sequence():
    truth = [0, 0, 1, 1, 1, 2, 2, -1]  # the last frame is padding
    predicted = [0, 1, 1, 1, 0, 2, 0, 2]
    confusion = confusion_matrix(truth, predicted, 3)
    np.testing.assert_array_equal(confusion, [[1, 1, 0], [1, 2, 0], [1, 0, 1]])
    scores = segmentation_scores(confusion)
    # hits 4 of 7 frames; per class 1/2, 2/3, 1/2; IoU 1/(2+3-1), 2/(3+3-2), 1/(2+1-1)
    assert scores["acc"] == pytest.approx(4 / 7)
    assert scores["macc"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    assert scores["miou"] == pytest.approx((1 / 4 + 1 / 2 + 1 / 2) / 3)
    assert scores["fwiou"] == pytest.approx((2 * 1 / 4 + 3 * 1 / 2 + 2 * 1 / 2) / 7)


def test_scores_with_a_class_predicted_but_absent_and_classes_never_seen():
    # classes 2 and 4 never occur nor are predicted; class 3 is predicted once but absent: IoU 0, no accuracy
    scores = segmentation_scores(confusion_matrix([0, 0, 1, 1], [0, 3, 1, 1], 5))
    assert scores["acc"] == pytest.approx(3 / 4)
    assert scores["macc"] == pytest.approx((1 / 2 + 1) / 2)
    assert scores["miou"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert scores["fwiou"] == pytest.approx((2 * 1 / 2 + 2 * 1) / 4)


def test_confusion_rejects_bad_labels():
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0, 5], 3)
    with pytest.raises(ValueError):
        confusion_matrix([0, 1, 2], [0, 1], 3)
    with pytest.raises(ValueError):
        segmentation_scores(confusion_matrix([-1, -1], [0, 1], 2))


# ------------------------------------------------------------------------------------------ frame features

class FeatureFrameIndex(nn.Module):
    """A dense 'encoder' of temporal stride 4 whose feature at feature frame j is j (its window's index)."""

    dense = True

    def feature_frames(self, num_frames: int) -> int:
        return -(-num_frames // 4)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        t_out = self.feature_frames(x.shape[2])
        return torch.arange(t_out, dtype=torch.float32).view(1, 1, 1, t_out, 1).expand(1, x.shape[4], 1, t_out,
                                                                                       x.shape[3])


def test_each_frame_takes_the_nearest_feature_frame():
    x = torch.zeros(1, 3, 10, 5, 2)
    got = frame_features(FeatureFrameIndex(), x, chunk_frames=1000)[:, 0]
    # feature frame j is centred on input frame 4j: frames 0-1 -> 0, 2-5 -> 1, 6-9 -> 2
    assert got.tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    # every 2nd frame encoded: encoded frame u is input frame 2u, so feature frame j is centred on frame 8j
    got = frame_features(FeatureFrameIndex(), x, chunk_frames=1000, frame_step=2)[:, 0]
    assert got.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]


def _tiny_stgcn() -> STGCN:
    torch.manual_seed(0)
    encoder = STGCN("ntu25", hidden_channels=4, out_channels=8, dropout=0.0)
    with torch.no_grad():  # non-trivial running statistics, as a trained encoder has
        for module in encoder.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return encoder.eval()


def _assert_chunks_equal_whole(sequence: torch.Tensor) -> None:
    encoder = _tiny_stgcn()
    whole = frame_features(encoder, sequence, chunk_frames=100_000)
    chunked = frame_features(encoder, sequence, chunk_frames=40, context_frames=80)
    assert whole.shape == (sequence.shape[2], 8)
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-5)
    # too little context (under the receptive radius of 76 frames) changes the features near chunk borders
    assert not torch.allclose(frame_features(encoder, sequence, chunk_frames=40, context_frames=8), whole,
                              rtol=1e-4, atol=1e-5)


def test_chunked_features_equal_the_whole_sequence_encoding():
    generator = torch.Generator().manual_seed(0)
    _assert_chunks_equal_whole(torch.randn(1, 3, 203, 25, 2, generator=generator).cumsum(dim=2) * 0.05)


@pytest.mark.skipif(not PKU_SAMPLE.is_file(), reason=f"the PKU-MMD sample is not at {PKU_SAMPLE}")
def test_real_pku_mmd_sequence_through_the_feature_path():
    from skelssl.data.pkummd import read_pku_skeleton

    frames = read_pku_skeleton(PKU_SAMPLE)  # (T, 2, 25, 3)
    sequence = torch.from_numpy(frames.transpose(3, 0, 2, 1)[None].copy())
    assert sequence.shape == (1, 3, 1040, 25, 2)
    _assert_chunks_equal_whole(sequence[:, :, :400])


# ---------------------------------------------------------------------------------------- untrimmed data

SMALL = dict(num_sequences_per_subject=2, num_subjects=3, num_train_subjects=2, actions_per_sequence=(2, 4),
             clip_frames=20)


def test_untrimmed_sequences_alternate_idle_and_actions():
    made = generate_untrimmed(**SMALL, seed=3)
    again = generate_untrimmed(**SMALL, seed=3)
    np.testing.assert_array_equal(made.data, again.data)
    assert made.data.shape[0] == 6 and made.frame_labels.shape == made.data.shape[:1] + made.data.shape[2:3]
    for sequence, row, length in zip(made.data, made.frame_labels, made.lengths):
        assert (row[length:] == -1).all() and (row[:length] >= 0).all()
        valid = row[:length]
        # runs of equal labels: idle first and last, idle between every two actions, no class twice in a row
        change = np.flatnonzero(np.diff(valid)) + 1
        runs = [int(r[0]) for r in np.split(valid, change)]
        assert runs[0] == 0 and runs[-1] == 0 and all(a * b == 0 for a, b in zip(runs, runs[1:]))
        actions = [r for r in runs if r > 0]
        assert 2 <= len(actions) <= 4 and all(a != b for a, b in zip(actions, actions[1:]))
        assert (sequence[:, length:] == 0).all()
    assert set(made.subjects[made.train_indices]) == {0, 1} and set(made.subjects[made.test_indices]) == {2}


def test_untrimmed_labels_mark_where_the_body_moves():
    made = generate_untrimmed(**SMALL, seed=4, noise_std=0.0, second_person_prob=0.0)
    # Joint speed relative to the spine base (root motion and view left out), person 0.
    joints = made.data[..., 0].transpose(0, 2, 3, 1)  # (S, T, V, 3)
    local = joints - joints[:, :, :1]
    speed = np.linalg.norm(np.diff(local, axis=1), axis=-1).max(axis=-1)  # (S, T-1) fastest joint
    labels = made.frame_labels[:, 1:]
    acting, idle = speed[labels > 0].mean(), speed[labels == 0].mean()
    assert acting > 2.5 * idle


# ------------------------------------------------------------------------------------------ end to end

def test_segmentation_protocol_end_to_end(tiny_dataset, tmp_path):
    untrimmed = prepare_synthetic_untrimmed(tmp_path / "untrimmed", **SMALL, seed=0)
    run_dir = tmp_path / "run"
    assert main(["pretrain", *tiny_overrides(tiny_dataset, run_dir, **{"trainer.epochs": 1})]) == 0
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    assert main(["evaluate", "segmentation", "--checkpoint", ckpt, f"data.root={untrimmed}",
                 "eval.seg.epochs=3", "eval.seg.chunk_frames=32"]) == 0
    records = [r for r in json.loads((run_dir / "results.json").read_text()) if r["protocol"] == "segmentation"]
    assert {r["metric"] for r in records} == {"acc", "macc", "fwiou", "miou"}
    assert all(r["dataset"] == "synthetic-untrimmed" and 0 <= r["value"] <= 100 for r in records)
    # a trimmed dataset has no frame labels: a clear error, not a crash
    assert main(["evaluate", "segmentation", "--checkpoint", ckpt]) == 2
