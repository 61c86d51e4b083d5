"""The deterministic linear probe: full-batch multinomial logistic regression on cached frozen features.

The papers' probe (skelssl.evaluation.linear: 100 epochs of mini-batch SGD) depends on the shuffling, the
initialisation and the summation order of its threads, so the same features give probes a few points apart. For
comparing encoders we also offer a probe whose result depends on the features alone:

- the features are z-scored with the train part's per-dimension mean and standard deviation (constant
  dimensions left at 0), in float64;
- the classifier minimises the mean cross-entropy + λ/2 ‖W‖² (the bias not penalised): a strictly convex
  problem with one minimum, found to a tight tolerance by scikit-learn's `LogisticRegression` (multinomial), so
  neither the start nor the thread count changes the answer beyond rounding. The solver is Newton's method with
  a Cholesky solve (`eval.logistic.solver=newton-cholesky`, our default) rather than the L-BFGS the issue named
  (`solver=lbfgs`): on 840 × 256 ActCLR features L-BFGS needed 1413 iterations at λ = 1e-3 (and did not
  converge in 1000, where the answer can depend on the thread count), Newton 11, to the same predictions;
- λ is chosen by stratified k-fold cross-validation on the train part only (folds drawn with trainer.seed,
  the z-scoring recomputed on each fold's own train rows), the best mean fold accuracy, ties to the larger λ;
  the test part is scored once, with the classifier refitted on the whole train part.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from skelssl.errors import UserError
from skelssl.protocol_configs import LogisticProbeConfig

__all__ = ["Standardizer", "LogisticProbe", "fit_logistic", "fit_logistic_path", "choose_l2", "logistic_probe"]


@dataclass
class Standardizer:
    """z = (x − mean) / std with the statistics of the rows it was fitted on; a constant dimension stays 0."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardizer":
        mean, std = x.mean(axis=0), x.std(axis=0)
        floor = max(float(std.max(initial=0.0)) * 1e-6, np.finfo(np.float64).tiny)  # relative: tiny random features
        return cls(mean, np.where(std > floor, std, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


@dataclass
class LogisticProbe:
    """A fitted probe: its standardiser, weights (K, D), bias (K,) and the class labels of its K rows."""

    standardizer: Standardizer
    weight: np.ndarray
    bias: np.ndarray
    classes: np.ndarray
    l2: float
    iterations: int

    def logits(self, features: ArrayLike) -> np.ndarray:
        return self.standardizer(_float64(features)) @ self.weight.T + self.bias

    def predict(self, features: ArrayLike) -> np.ndarray:
        return self.classes[self.logits(features).argmax(axis=1)]

    def accuracy(self, features: ArrayLike, labels: ArrayLike) -> float:
        return float((self.predict(features) == np.asarray(labels)).mean())


def _float64(values: ArrayLike) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def fit_logistic(features: ArrayLike, labels: ArrayLike, l2: float, max_iter: int = 1000,
                 tolerance: float = 1e-8, solver: str = "newton-cholesky") -> LogisticProbe:
    """The minimiser of mean cross-entropy + l2/2 ‖W‖² on the z-scored features (bias unpenalised)."""
    return fit_logistic_path(features, labels, (l2,), max_iter, tolerance, solver)[0]


def fit_logistic_path(features: ArrayLike, labels: ArrayLike, l2s: tuple[float, ...], max_iter: int = 1000,
                      tolerance: float = 1e-8, solver: str = "newton-cholesky") -> list[LogisticProbe]:
    """fit_logistic for each λ of `l2s` (in that order), on one standardisation, each fit started from the
    previous one's optimum (fewer solver steps; the optimum of a strictly convex problem does not depend on
    the start). Strongest penalty first is fastest."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x, y = _float64(features), np.asarray(labels).astype(np.int64)
    standardizer = Standardizer.fit(x)
    z = standardizer(x)
    # scikit-learn minimises C Σ CE + ½ ‖W‖²: the same minimiser as mean CE + λ/2 ‖W‖² for C = 1 / (λ n). With
    # two classes it keeps one row w, and the multinomial optimum is (−w/2, w/2), whose ‖·‖² is ‖w‖²/2: C doubles
    binary = len(np.unique(y)) == 2
    model = LogisticRegression(solver=solver, max_iter=max_iter, tol=tolerance, warm_start=True)
    probes = []
    for l2 in l2s:
        model.set_params(C=(2.0 if binary else 1.0) / (float(l2) * len(y)))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(z, y)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            warnings.warn(f"logistic probe (l2={l2:g}): {solver} stopped at max_iter={max_iter} before the tolerance "
                          f"{tolerance:g}; the result may depend on the thread count (raise eval.logistic.max_iter)",
                          stacklevel=2)
        weight, bias = model.coef_.copy(), model.intercept_.copy()
        if binary:
            weight, bias = np.stack([-weight[0], weight[0]]) / 2, np.array([-bias[0], bias[0]]) / 2
        probes.append(LogisticProbe(standardizer, weight, bias, model.classes_, float(l2),
                                    int(np.max(model.n_iter_))))
    return probes


def choose_l2(features: ArrayLike, labels: ArrayLike, grid: tuple[float, ...], folds: int = 5, seed: int = 0,
              max_iter: int = 1000, tolerance: float = 1e-8, solver: str = "newton-cholesky"
              ) -> tuple[float, dict[float, float]]:
    """(the chosen λ, {λ: mean accuracy over the folds}): stratified `folds`-fold cross-validation on these
    rows only; fewer folds when a class has fewer rows than `folds` (at least 2)."""
    from sklearn.model_selection import StratifiedKFold

    x, y = _float64(features), np.asarray(labels).astype(np.int64)
    smallest = int(np.unique(y, return_counts=True)[1].min())
    if smallest < 2:
        raise UserError("the logistic probe's cross-validation needs at least 2 training sequences of every class "
                        f"(one class has {smallest})")
    splitter = StratifiedKFold(n_splits=min(int(folds), smallest), shuffle=True, random_state=int(seed))
    splits = list(splitter.split(x, y))
    path = sorted((float(v) for v in grid), reverse=True)  # strongest penalty first: warm starts
    accuracies = np.array([[probe.accuracy(x[held], y[held])
                            for probe in fit_logistic_path(x[fit], y[fit], tuple(path), max_iter, tolerance, solver)]
                           for fit, held in splits])
    scores = dict(sorted(zip(path, accuracies.mean(axis=0).tolist())))  # ascending λ
    best = max(scores.values())
    return max(l2 for l2, score in scores.items() if score == best), scores


def logistic_probe(train_features: ArrayLike, train_labels: ArrayLike, test_features: ArrayLike,
                   test_labels: ArrayLike, cfg: LogisticProbeConfig | None = None) -> dict:
    """λ by cross-validation on the train part, the probe refitted on all of it, the test part scored once.

    Returns {"top1" (fraction), "l2", "cv" ({λ: mean fold accuracy}), "probe" (LogisticProbe)}."""
    cfg = cfg or LogisticProbeConfig()
    l2, cv = choose_l2(train_features, train_labels, tuple(cfg.l2), cfg.folds, cfg.seed, cfg.max_iter,
                       cfg.tolerance, cfg.solver)
    probe = fit_logistic(train_features, train_labels, l2, cfg.max_iter, cfg.tolerance, cfg.solver)
    return {"top1": probe.accuracy(test_features, test_labels), "l2": l2, "cv": cv, "probe": probe}
