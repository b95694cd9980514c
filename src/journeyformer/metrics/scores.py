"""Metrics in NumPy, one definition used for the model and every baseline alike.

The tasks (:mod:`journeyformer.tasks`) say which of them score which task.

Conventions: ``y`` are labels, ``p``/``scores`` predictions. Class labels below 0 (the data's
IGNORE_INDEX: no event in the horizon) are left out of the class-ranking metrics.

NumPy only: this module imports nothing from the package.
"""

from __future__ import annotations

import numpy as np


def rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties share their mean rank (like scipy.stats.rankdata)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1..end
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auroc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U); NaN when only one class is present."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(scores)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(scores: np.ndarray, y: np.ndarray) -> float:
    """Average precision: sum over thresholds of (recall step) x precision, ties grouped."""
    y = np.asarray(y).astype(bool)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    s, yy = np.asarray(scores)[order], y[order]
    last_of_tie = np.append(np.flatnonzero(np.diff(s)), len(s) - 1)
    tp = np.cumsum(yy)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, np.float64) - np.asarray(y, np.float64)) ** 2))


def expected_calibration_error(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """Mean |observed rate - mean probability| over equal-width bins, weighted by bin size."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.sum() * abs(y[m].mean() - p[m].mean())
    return float(total / len(p))


def _rank_of_true(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1-based rank of the true class among the scores (ties count against the model)."""
    true = scores[np.arange(len(y)), y][:, None]
    return (scores >= true).sum(axis=1)


def accuracy_at_k(scores: np.ndarray, y: np.ndarray, k: int) -> float:
    keep = y >= 0
    if not keep.any():
        return float("nan")
    return float(np.mean(_rank_of_true(scores[keep], y[keep]) <= k))


def mean_reciprocal_rank(scores: np.ndarray, y: np.ndarray) -> float:
    keep = y >= 0
    if not keep.any():
        return float("nan")
    return float(np.mean(1.0 / _rank_of_true(scores[keep], y[keep])))


def macro_f1(pred: np.ndarray, y: np.ndarray) -> float:
    """Macro F1 over the classes present in labels or predictions (scikit-learn's default)."""
    classes = np.union1d(np.unique(y), np.unique(pred))
    f1s = []
    for c in classes:
        tp = np.sum((pred == c) & (y == c))
        denom = np.sum(pred == c) + np.sum(y == c)
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s))


def per_class_recall(pred: np.ndarray, y: np.ndarray, n_classes: int) -> list[float]:
    return [float(np.mean(pred[y == c] == c)) if np.any(y == c) else float("nan") for c in range(n_classes)]


def spearman(pred: np.ndarray, y: np.ndarray) -> float:
    rp, ry = rankdata(pred), rankdata(y)
    if rp.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rp, ry)[0, 1])


def normalized_gini(pred: np.ndarray, y: np.ndarray) -> float:
    """Gini of ``y`` ordered by ``pred`` over the Gini of the perfect order (1 = perfect).

    Ties in ``pred`` are ordered by ``y`` ascending, so constant predictions score <= 0
    rather than borrowing the perfect order.
    """
    y = np.asarray(y, np.float64)
    if y.sum() <= 0:
        return float("nan")

    def gini(order_by: np.ndarray) -> float:
        order = np.lexsort((y, -np.asarray(order_by, np.float64)))
        cum = np.cumsum(y[order]) / y.sum()
        n = len(y)
        return float(cum.sum() / n - (n + 1) / (2 * n))

    return gini(pred) / gini(y)


def threshold_metrics(p: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of ``p >= threshold`` against binary ``y``."""
    pred = p >= threshold
    tp = float(np.sum(pred & (y == 1)))
    precision = tp / max(pred.sum(), 1)
    recall = tp / max((y == 1).sum(), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1}


def best_f1_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The probability threshold with the highest F1 (searched over the observed values)."""
    candidates = np.unique(np.quantile(p, np.linspace(0, 1, 201)))
    return float(max(candidates, key=lambda t: threshold_metrics(p, y, t)["f1"]))
