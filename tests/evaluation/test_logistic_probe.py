"""The deterministic linear probe (skelssl.evaluation.logistic): the minimiser of its stated objective (checked
by the gradient written out here), λ from the train part only, and the same answer on 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from skelssl.evaluation.logistic import choose_l2, fit_logistic, logistic_probe
from skelssl.protocol_configs import LogisticProbeConfig


def _clusters(n: int, dim: int, classes: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((classes, dim))
    labels = np.arange(n) % classes
    return centres[labels] * spread + g.standard_normal((n, dim)) + 5.0, labels  # offset: the z-scoring matters


def _objective_gradient(z: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray, l2: float):
    """∇ of mean CE + l2/2 ‖W‖² (bias unpenalised), written out: (softmax − onehot)ᵀ z / n + l2 W."""
    logits = z @ weight.T + bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p.T @ z / len(y) + l2 * weight, p.mean(axis=0)


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("solver", ["newton-cholesky", "lbfgs"])
def test_fit_is_the_minimiser_of_mean_cross_entropy_plus_half_l2(classes, solver):
    x, y = _clusters(200, 6, classes, spread=0.7, seed=0)
    probe = fit_logistic(x, y, l2=0.05, solver=solver)
    z = (x - x.mean(axis=0)) / x.std(axis=0)  # the train part's z-scores, by hand
    grad_w, grad_b = _objective_gradient(z, y, probe.weight, probe.bias, 0.05)
    assert np.abs(grad_w).max() < 1e-6 and np.abs(grad_b).max() < 1e-6
    assert np.abs(probe.weight).max() > 0.05  # not a trivial zero solution
    # and its predictions are the arg-max of those logits
    np.testing.assert_array_equal(probe.predict(x), (z @ probe.weight.T + probe.bias).argmax(axis=1))


def test_l2_is_chosen_on_the_train_part_alone_and_ties_go_to_the_stronger_penalty():
    x, y = _clusters(120, 5, 3, spread=6.0, seed=1)  # far-apart clusters: every λ of the grid is perfect
    chosen, scores = choose_l2(x, y, (1e-3, 1e-1, 1.0), folds=4, seed=0)
    assert scores == {1e-3: 1.0, 1e-1: 1.0, 1.0: 1.0} and chosen == 1.0
    test_x, test_y = _clusters(60, 5, 3, spread=6.0, seed=2)
    cfg = LogisticProbeConfig(l2=(1e-3, 1e-1, 1.0), folds=4)
    right = logistic_probe(x, y, test_x, test_y, cfg)
    shuffled = np.random.default_rng(5).permutation(test_y)  # test labels cannot move λ or the weights
    wrong = logistic_probe(x, y, test_x, shuffled, cfg)
    assert right["l2"] == wrong["l2"] == 1.0 and right["cv"] == wrong["cv"] == scores  # the train part's folds
    np.testing.assert_array_equal(right["probe"].weight, wrong["probe"].weight)
    assert right["top1"] == 1.0 and wrong["top1"] == pytest.approx(np.mean(shuffled == test_y))


def test_cross_validation_refuses_a_class_with_a_single_training_sequence():
    x, y = _clusters(9, 3, 2, spread=1.0, seed=0)
    y = y.copy()
    y[0] = 2  # a third class seen once
    with pytest.raises(Exception, match="at least 2 training sequences of every class"):
        choose_l2(x, y, (0.1,), folds=3)


def test_logistic_probe_is_deterministic_on_1_and_2_threads():
    """The same features give the same λ, the same test predictions and weights equal to 1e-7 whatever the
    BLAS thread count (the SGD probe's order of summation and shuffling do not enter)."""
    x, y = _clusters(600, 64, 6, spread=0.25, seed=3)
    test_x, test_y = _clusters(300, 64, 6, spread=0.25, seed=4)
    cfg = LogisticProbeConfig(l2=(1e-3, 1e-2, 1e-1), folds=3)
    runs = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            runs.append(logistic_probe(x, y, test_x, test_y, cfg))
    one, two = runs
    assert one["l2"] == two["l2"] and one["cv"] == two["cv"]
    np.testing.assert_array_equal(one["probe"].predict(test_x), two["probe"].predict(test_x))
    np.testing.assert_allclose(one["probe"].weight, two["probe"].weight, atol=1e-7)
    assert one["top1"] == two["top1"] and 0.3 < one["top1"] < 1.0  # a problem where the probe has to work
