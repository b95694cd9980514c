"""Paired bootstrap of model minus baseline and its verdict."""

from __future__ import annotations

import numpy as np
import pytest

from journeyformer.data.labels.lifecycle import IGNORE_INDEX
from journeyformer.metrics.bootstrap import paired_bootstrap, verdict
from journeyformer.metrics.scores import accuracy_at_k, auroc, macro_f1, spearman


def headline_metric(task: str, prediction: np.ndarray, y: np.ndarray) -> float:
    """The headline metric of each built-in task (what the registry's tasks report)."""
    prediction = np.asarray(prediction)
    if task == "next_action":
        return accuracy_at_k(prediction, y, 1)
    if task == "churn":
        return auroc(prediction, y)
    if task == "stage":
        return macro_f1(prediction.argmax(axis=1) if prediction.ndim == 2 else prediction, y)
    return spearman(prediction, y)


def boot(task: str, *args, **kwargs) -> dict:
    return paired_bootstrap(lambda p, yy: headline_metric(task, p, yy), *args, **kwargs)


def test_verdict_logic():
    assert verdict(0.001, 0.02) == "beats"
    assert verdict(-0.001, 0.02) == "ties"
    assert verdict(-0.02, -0.001) == "loses"
    assert verdict(0.0, 0.01) == "ties"  # an interval touching zero does not beat
    assert verdict(float("nan"), 0.1) == "no verdict"


@pytest.fixture
def churn_data():
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.4
    good = y + rng.normal(0, 0.6, len(y))
    weak = y + rng.normal(0, 1.5, len(y))
    return y.astype(float), good, weak


def test_clearly_better_beats_and_worse_loses(churn_data):
    y, good, weak = churn_data
    up = boot("churn", good, weak, y, n_boot=200)
    assert up["verdict"] == "beats" and up["low"] > 0 and up["low"] <= up["delta"] <= up["high"]
    assert up["delta"] == pytest.approx(headline_metric("churn", good, y) - headline_metric("churn", weak, y))
    down = boot("churn", weak, good, y, n_boot=200)
    assert down["verdict"] == "loses" and down["high"] < 0


def test_identical_predictions_tie(churn_data):
    y, good, _ = churn_data
    same = boot("churn", good, good.copy(), y, n_boot=100)
    assert same["delta"] == 0.0 and same["verdict"] == "ties"


def test_tiny_difference_ties():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    a = rng.random((300, 3))
    b = a.copy()
    b[:3] = rng.random((3, 3))  # three rows differ
    assert boot("stage", a, b, y, n_boot=200)["verdict"] == "ties"


def test_next_action_ignores_unlabelled_rows_and_groups_resample_whole_customers():
    rng = np.random.default_rng(2)
    n = 600
    y = rng.integers(0, 4, n)
    y[::5] = IGNORE_INDEX
    perfect = np.eye(4)[np.where(y < 0, 0, y)]
    noise = rng.random((n, 4))
    groups = np.repeat(np.arange(n // 3), 3)  # three samples per customer
    out = boot("next_action", perfect, noise, y, groups=groups, n_boot=200)
    assert out["verdict"] == "beats"
    assert out["delta"] == pytest.approx(1.0 - headline_metric("next_action", noise, y))


def test_same_seed_same_interval(churn_data):
    y, good, weak = churn_data
    a = boot("value", good, weak, y, n_boot=100, seed=5)
    b = boot("value", good, weak, y, n_boot=100, seed=5)
    assert a == b
