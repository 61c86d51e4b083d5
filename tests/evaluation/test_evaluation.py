"""Tests of the evaluation protocols against independent implementations and hand-built data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from skelssl.errors import UserError
from skelssl.evaluation import (LinearProbeConfig, ResultRecord, extract_features, format_table, knn_evaluate,
                                linear_probe, linear_probe_with_augmentation, nn1_cosine_predict, read_results,
                                weighted_knn_predict, write_results)


def random_features(seed: int, n_train: int = 60, n_test: int = 25, dim: int = 8, classes: int = 4):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n_train, dim)).astype(np.float32), rng.integers(0, classes, n_train),
            rng.normal(size=(n_test, dim)).astype(np.float32), rng.integers(0, classes, n_test))


def blobs(seed: int, n_per_class: int, classes: int, dim: int, spread: float = 0.3):
    """Gaussian clusters around distinct random unit-norm centres (separable in angle and linearly)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(classes), n_per_class)
    feats = centres[labels] * 3.0 + rng.normal(scale=spread, size=(len(labels), dim))
    order = rng.permutation(len(labels))
    return torch.tensor(feats[order], dtype=torch.float32), torch.tensor(labels[order])


# ---------------------------------------------------------------- KNN

@pytest.mark.parametrize("chunk_size", [1, 7, 25, 1024])
def test_nn1_matches_sklearn_cosine(chunk_size):
    train_x, train_y, test_x, _ = random_features(0)
    expected = KNeighborsClassifier(n_neighbors=1, metric="cosine").fit(train_x, train_y).predict(test_x)
    got = nn1_cosine_predict(torch.from_numpy(train_x), torch.from_numpy(train_y), torch.from_numpy(test_x),
                             chunk_size=chunk_size)
    np.testing.assert_array_equal(got.numpy(), expected)


def numpy_weighted_knn(train_x, train_y, test_x, classes, k, temperature):
    """Plain-loop InstDisc weighted kNN, written independently of the torch version."""
    predictions = []
    for query in test_x:
        sims = []
        for row in train_x:
            sims.append(float(query @ row) / (np.linalg.norm(query) * np.linalg.norm(row)))
        nearest = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        votes = [0.0] * classes
        for i in nearest:
            votes[int(train_y[i])] += np.exp(sims[i] / temperature)
        predictions.append(int(np.argmax(votes)))
    return np.array(predictions)


@pytest.mark.parametrize("chunk_size", [4, 1024])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_weighted_knn_matches_loop_reference(chunk_size, temperature):
    train_x, train_y, test_x, _ = random_features(1)
    expected = numpy_weighted_knn(train_x, train_y, test_x, 4, k=5, temperature=temperature)
    got = weighted_knn_predict(train_x, train_y, test_x, 4, k=5, temperature=temperature, chunk_size=chunk_size)
    np.testing.assert_array_equal(got.numpy(), expected)


def test_weighted_knn_with_k1_is_1nn():
    train_x, train_y, test_x, _ = random_features(2, n_test=40)
    np.testing.assert_array_equal(weighted_knn_predict(train_x, train_y, test_x, 4, k=1).numpy(),
                                  nn1_cosine_predict(train_x, train_y, test_x).numpy())


def test_weighted_knn_votes_by_weight_not_count():
    # Query along x: one very close class-1 neighbour beats two less similar class-0 neighbours.
    train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    labels = torch.tensor([1, 0, 0])
    query = torch.tensor([[1.0, 0.0]])
    # weights: exp(1/0.1) = 22026 vs 2 * exp(0.6/0.1) = 807 -> class 1
    assert weighted_knn_predict(train, labels, query, 2, k=3, temperature=0.1).item() == 1
    # a hot temperature makes the count win: exp(1/10) = 1.105 < 2 * exp(0.06) = 2.12 -> class 0
    assert weighted_knn_predict(train, labels, query, 2, k=3, temperature=10.0).item() == 0


def test_knn_evaluate_perfect_on_separable_clusters():
    train_x, train_y = blobs(3, 30, 5, 16)
    test_x, test_y = blobs(3, 10, 5, 16)  # same centres (same seed), fresh noise order
    results = knn_evaluate(train_x, train_y, test_x, test_y, 5, ks=(10, 20, 40))
    assert set(results) == {"1nn_cosine", "weighted_k10", "weighted_k20", "weighted_k40"}
    assert all(value == 1.0 for value in results.values())


def test_knn_evaluate_accuracy_fraction():
    train_x, train_y, test_x, test_y = random_features(4, n_test=30)
    results = knn_evaluate(train_x, train_y, test_x, test_y, 4, ks=(5,))
    expected = (numpy_weighted_knn(train_x, train_y, test_x, 4, 5, 0.1) == test_y).mean()
    assert results["weighted_k5"] == pytest.approx(expected)
    sk = KNeighborsClassifier(n_neighbors=1, metric="cosine").fit(train_x, train_y)
    assert results["1nn_cosine"] == pytest.approx(sk.score(test_x, test_y))


# ---------------------------------------------------------------- linear probe

FAST = dict(epochs=20, milestones=(15,), eval_every=5, batch_size=32)


@pytest.mark.parametrize("standardize", [True, False])
def test_linear_probe_separates_blobs(standardize):
    train_x, train_y = blobs(5, 40, 4, 12)
    test_x, test_y = blobs(5, 20, 4, 12)
    result = linear_probe(train_x, train_y, test_x, test_y, 4,
                          LinearProbeConfig(**FAST, standardize=standardize, lr=0.1 if not standardize else 3.0))
    assert result["final_top1"] > 0.95
    assert result["best_top1"] >= result["final_top1"]
    assert [epoch for epoch, _ in result["history"]] == [5, 10, 15, 20]
    assert result["best_epoch"] in (5, 10, 15, 20)


def test_linear_probe_random_labels_near_chance():
    gen = torch.Generator().manual_seed(6)
    train_x, test_x = torch.randn(300, 16, generator=gen), torch.randn(600, 16, generator=gen)
    train_y, test_y = torch.randint(0, 4, (300,), generator=gen), torch.randint(0, 4, (600,), generator=gen)
    result = linear_probe(train_x, train_y, test_x, test_y, 4, LinearProbeConfig(**FAST))
    assert 0.15 < result["final_top1"] < 0.35


def test_linear_probe_deterministic_and_seed_matters():
    train_x, train_y, test_x, test_y = random_features(7, n_train=100, n_test=50)
    cfg = LinearProbeConfig(**FAST)
    first = linear_probe(train_x, train_y, test_x, test_y, 4, cfg)
    assert linear_probe(train_x, train_y, test_x, test_y, 4, cfg) == first
    other = linear_probe(train_x, train_y, test_x, test_y, 4, LinearProbeConfig(**FAST, seed=1))
    assert other["history"] != first["history"]


def test_linear_probe_standardize_rescues_tiny_features():
    # Features scaled by 1e-4 (as from a random-init encoder): z-scoring makes them as good as unscaled ones.
    train_x, train_y = blobs(8, 40, 4, 12)
    test_x, test_y = blobs(8, 20, 4, 12)
    tiny = linear_probe(train_x * 1e-4, train_y, test_x * 1e-4, test_y, 4, LinearProbeConfig(**FAST))
    assert tiny["final_top1"] > 0.95


def test_linear_probe_evaluates_last_epoch_when_not_multiple():
    train_x, train_y, test_x, test_y = random_features(9)
    result = linear_probe(train_x, train_y, test_x, test_y, 4, LinearProbeConfig(epochs=7, eval_every=5))
    assert [epoch for epoch, _ in result["history"]] == [5, 7]


class FlattenLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int = 6):
        super().__init__()
        self.dropout = nn.Dropout(0.5)  # would change the output if eval mode were not set
        self.linear = nn.Linear(in_features, out_features)
        self.batch_sizes: list[int] = []

    def forward(self, x):
        self.batch_sizes.append(x.shape[0])
        return self.linear(self.dropout(x.flatten(1)))


def test_linear_probe_with_augmentation_identity_equals_cached():
    torch.manual_seed(0)
    train_x, train_y = blobs(10, 20, 3, 2 * 4 * 3 * 1)
    test_x, test_y = blobs(10, 10, 3, 2 * 4 * 3 * 1)
    train_data, test_data = train_x.reshape(-1, 2, 4, 3, 1), test_x.reshape(-1, 2, 4, 3, 1)
    encoder = FlattenLinear(24).train()
    cfg = LinearProbeConfig(epochs=10, milestones=(8,), batch_size=16)
    cached = linear_probe(extract_features(encoder, train_data), train_y, extract_features(encoder, test_data),
                          test_y, 3, cfg)
    calls = []

    def identity(batch, generator):
        calls.append(batch.shape[0])
        return batch

    # Same seed, same shuffle; batches are sorted inside but a sum of gradients ignores order.
    augmented = linear_probe_with_augmentation(encoder, train_data, train_y, test_data, test_y, 3, cfg,
                                               augment=identity)
    assert encoder.training
    assert sum(calls) == 10 * 60
    for (e1, a1), (e2, a2) in zip(cached["history"], augmented["history"]):
        assert e1 == e2 and a1 == pytest.approx(a2, abs=1e-9)
    assert augmented["final_top1"] > 0.9


def test_linear_probe_with_augmentation_uses_generator():
    train_x, train_y = blobs(11, 20, 3, 24)
    data = train_x.reshape(-1, 2, 4, 3, 1)
    encoder = FlattenLinear(24)

    def noisy(batch, generator):
        return batch + torch.randn(batch.shape, generator=generator, device=batch.device)

    cfg = LinearProbeConfig(epochs=5, milestones=(4,), batch_size=16)
    runs = [linear_probe_with_augmentation(encoder, data, train_y, data, train_y, 3, cfg, augment=noisy)
            for _ in range(2)]
    assert runs[0] == runs[1]


# ---------------------------------------------------------------- features

def test_extract_features_memmap(tmp_path):
    shape = (23, 3, 5, 4, 2)
    data = np.lib.format.open_memmap(tmp_path / "data.npy", mode="w+", dtype=np.float32, shape=shape)
    data[:] = np.random.default_rng(12).normal(size=shape)
    data.flush()
    del data
    data = np.load(tmp_path / "data.npy", mmap_mode="r")
    encoder = FlattenLinear(3 * 5 * 4 * 2).train()
    feats = extract_features(encoder, data, batch_size=10)
    assert encoder.training  # mode restored
    assert encoder.batch_sizes == [10, 10, 3]
    assert feats.dtype == torch.float32 and feats.device.type == "cpu" and feats.shape == (23, 6)
    with torch.no_grad():
        expected = encoder.linear(torch.from_numpy(np.array(data)).flatten(1))
    torch.testing.assert_close(feats, expected)


def test_extract_features_transform_and_eval_mode_kept():
    data = torch.randn(7, 3, 5, 4, 2)
    encoder = FlattenLinear(120).eval()
    feats = extract_features(encoder, data, batch_size=4, transform=lambda x: 2 * x)
    assert not encoder.training
    with torch.no_grad():
        torch.testing.assert_close(feats, encoder.linear(2 * data.flatten(1)))


# ---------------------------------------------------------------- results

def record(metric: str, value: float, model: str = "aimclr") -> ResultRecord:
    return ResultRecord("ntu60", "xsub", model, "joint", "linear", metric, value)


def test_write_results_merges_and_replaces(tmp_path):
    path = write_results(tmp_path / "run", [record("top1", 70.123), record("best_top1", 71.0)])
    assert path == tmp_path / "run" / "results.json"
    write_results(tmp_path / "run", [record("top1", 72.5), record("top1", 60.0, model="skeletonclr")])
    records = read_results(path)
    assert [(r.model, r.metric, r.value) for r in records] == [
        ("aimclr", "top1", 72.5), ("aimclr", "best_top1", 71.0), ("skeletonclr", "top1", 60.0)]
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]
    assert json.loads(path.read_text())[0]["value"] == 72.5
    assert read_results(tmp_path / "run") == records  # a run directory works too


def test_result_value_rounded_and_from_fraction():
    assert record("top1", 70.126).value == 70.13
    assert ResultRecord.from_fraction("d", "s", "m", "joint", "knn", "1nn_cosine", 0.83456).value == 83.46


def test_read_results_bad_file(tmp_path):
    (tmp_path / "results.json").write_text('[{"dataset": "x"}]')
    with pytest.raises(UserError, match="record 0 lacks"):
        read_results(tmp_path / "results.json")
    with pytest.raises(UserError, match="no results file"):
        read_results(tmp_path / "missing.json")


def test_format_table_contains_every_value():
    records = [record("top1", 70.1), record("weighted_k20", 5.0, model="a-much-longer-model-name")]
    table = format_table(records)
    lines = table.splitlines()
    assert len(lines) == 4
    for text in ("70.10", "5.00", "a-much-longer-model-name", "weighted_k20", "ntu60", "xsub", "joint", "linear"):
        assert text in table
    assert len({len(line) for line in lines}) == 1  # aligned: every line padded to the same width
    assert format_table([]) == "(no results)"
