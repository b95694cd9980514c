"""Metrics against brute-force definitions, baselines, and churn temperature scaling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from journeyformer.metrics import scores as m
from journeyformer.metrics.calibration import apply_temperature, fit_temperature

rng = np.random.default_rng(0)


def brute_auroc(s, y):
    pos, neg = s[y == 1], s[y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def brute_ap(s, y):
    """Average precision: precision at each positive, thresholds at distinct scores."""
    total = 0.0
    for t in np.unique(s)[::-1]:
        sel = s >= t
        new_pos = np.sum((s == t) & (y == 1))
        total += new_pos / y.sum() * (y[sel].sum() / sel.sum())
    return total


def test_auroc_and_auprc_match_brute_force_with_ties():
    s = np.round(rng.random(60), 1)  # many ties
    y = (rng.random(60) < 0.4).astype(int)
    assert m.auroc(s, y) == pytest.approx(brute_auroc(s, y))
    assert m.auprc(s, y) == pytest.approx(brute_ap(s, y))
    assert np.isnan(m.auroc(s, np.zeros(60)))


def test_ranking_metrics_by_hand():
    scores = np.array([[0.1, 0.2, 0.7, 0.0], [0.5, 0.1, 0.3, 0.1], [0.2, 0.3, 0.1, 0.4]])
    y = np.array([2, 2, -100])  # the last is masked (no next event)
    assert m.accuracy_at_k(scores, y, 1) == pytest.approx(0.5)
    assert m.accuracy_at_k(scores, y, 2) == pytest.approx(1.0)
    assert m.mean_reciprocal_rank(scores, y) == pytest.approx((1 + 1 / 2) / 2)


def test_macro_f1_and_recall_by_hand():
    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    f1 = [2 * 1 / (2 + 2), 2 * 2 / (3 + 2), 0.0]
    assert m.macro_f1(pred, y) == pytest.approx(np.mean(f1))
    assert m.per_class_recall(pred, y, 4)[:3] == [0.5, 1.0, 0.0]


def test_spearman_gini_ece():
    y = rng.lognormal(size=200)
    assert m.spearman(y * 3 + 1, y) == pytest.approx(1.0)
    assert m.normalized_gini(y, y) == pytest.approx(1.0)
    assert m.normalized_gini(-y, y) < 0
    assert m.normalized_gini(np.ones_like(y), y) <= 0  # constant predictions earn nothing
    p = np.full(1000, 0.8)
    yy = (rng.random(1000) < 0.5).astype(float)
    assert m.expected_calibration_error(p, yy) == pytest.approx(abs(0.8 - yy.mean()))


def test_temperature_scaling_recovers_temperature_and_lowers_ece():
    z = rng.normal(0, 3, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-z / 2.5))).astype(float)
    overconfident = 1 / (1 + np.exp(-z))
    t = fit_temperature(np.log(overconfident / (1 - overconfident)), y)
    assert t == pytest.approx(2.5, rel=0.1)
    calibrated = apply_temperature(overconfident, t)
    assert m.expected_calibration_error(calibrated, y) < 0.5 * m.expected_calibration_error(overconfident, y)
    assert m.auroc(calibrated, y) == pytest.approx(m.auroc(overconfident, y))
