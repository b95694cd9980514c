"""Experiment and uplift metric definitions against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from journeyformer.metrics import uplift as U

# four customers ranked 4 > 3 > 2 > 1: treated, control, treated, control
Y = np.array([1.0, 0.0, 0.0, 1.0])
T = np.array([1, 0, 1, 0])
S = np.array([4.0, 3.0, 2.0, 1.0])


def test_curves_by_hand() -> None:
    # k=1: no control yet -> 0; k=2: 1 - 0; k=3: 1 - 0*2/1; k=4: 1 - 1*2/2
    assert U.qini_curve(Y, T, S).tolist() == [0.0, 1.0, 1.0, 0.0]
    # G(k) = (mean_t - mean_c) k: 0, (1 - 0) 2, (0.5 - 0) 3, (0.5 - 0.5) 4
    assert U.uplift_curve(Y, T, S).tolist() == [0.0, 2.0, 1.5, 0.0]
    assert U.qini_coefficient(Y, T, S) == pytest.approx(2 / 16)
    assert U.auuc(Y, T, S) == pytest.approx(3.5 / 16)
    assert U.uplift_at_k(Y, T, S, 0.5) == 1.0
    assert U.incremental_value(Y, T, S, 0.5) == 0.5
    # the reversed ranking is worse
    assert U.qini_coefficient(Y, T, -S) < 0 < U.qini_coefficient(Y, T, S)


def test_ties_are_one_step() -> None:
    flat = np.zeros(4)
    # one run of ties: cumulative counts interpolated, Q(k) = k/4 - (k/4)(k/2)/(k/2) = 0
    assert U.qini_curve(Y, T, flat) == pytest.approx([0.0] * 4)
    assert U.qini_coefficient(Y, T, flat) == pytest.approx(0.0)
    assert U.qini_coefficient(Y[::-1], T[::-1], flat) == pytest.approx(0.0)  # order-free


def test_difference_and_cuped_by_hand() -> None:
    y, t = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 1, 0, 0])
    d = U.difference(y, t)
    assert d["effect"] == -2.0 and d["se"] == pytest.approx(math.sqrt(0.5))
    assert d["low"] == pytest.approx(-2 - 1.959964 * math.sqrt(0.5), abs=1e-5)
    c = U.cuped(y, t, y)  # x = y: the adjusted outcome is constant
    assert c["theta"] == pytest.approx(1.0) and c["variance_reduction"] == pytest.approx(1.0)


def test_cuped_keeps_the_effect_and_shrinks_the_variance() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    x = rng.normal(size=n)
    t = rng.random(n) < 0.5
    y = 2.0 * x + 0.3 * t + rng.normal(size=n)  # corr(y, x)^2 = 0.8
    plain, adj = U.difference(y, t), U.cuped(y, t, x)
    assert abs(adj["effect"] - 0.3) < 4 * adj["se"]  # unbiased (a fixed seed; 4 se, not a 5% coin)
    assert adj["se"] < 0.5 * plain["se"]
    assert adj["variance_reduction"] == pytest.approx(0.8, abs=0.02)


def test_power_and_balance_by_hand() -> None:
    # (1.959964 + 0.841621)^2 * 1 * (2 + 2) / 0.1^2 = 3139.6
    assert U.sample_size(0.1, 1.0) == {"total": 3140, "treatment": 1570, "control": 1570}
    assert U.minimum_detectable_effect(1.0, 1570, 1570) == pytest.approx(0.1, rel=1e-3)
    assert U.standardized_difference(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 1, 0, 0])) == pytest.approx(-2 / math.sqrt(0.5))
    # the imbalance flag: 0.1 for large arms, 3 standard errors of a random split for small ones
    assert U.imbalance_threshold(5000, 5000) == 0.1
    assert U.imbalance_threshold(400, 100) == pytest.approx(3 * math.sqrt(1 / 400 + 1 / 100))  # 0.335
    rng = np.random.default_rng(0)  # random splits of 500 into 400 / 100: the 0.1 rule cries wolf
    t = np.repeat([1, 0], [400, 100])
    d = np.array([abs(U.standardized_difference(rng.normal(size=500), t)) for _ in range(400)])
    assert (d > 0.1).mean() > 0.3 and (d > U.imbalance_threshold(400, 100)).mean() < 0.01
    assert U.sample_ratio_pvalue(500, 500, 0.5) == 1.0
    assert U.sample_ratio_pvalue(600, 400, 0.5) < 1e-8  # chi2 = 40


def test_targeting_by_net_value_under_a_budget() -> None:
    value = np.array([10.0, 2.0, 7.0, -1.0, 4.0])
    # cost 3, budget 7.5 -> at most 2 contacts, only positive nets (10-3, 7-3; 4-3 would fit a bigger budget)
    assert U.select_by_net_value(value, 3.0, 7.5).tolist() == [True, False, True, False, False]
    assert U.select_by_net_value(value, 3.0, 100.0).tolist() == [True, False, True, False, True]
    # policy value by hand: target rows 0..1 (treated y=1, control y=0) of four: 0.5 * (1 - 0) - 0.2 * 0.5
    assert U.policy_value(Y, T, np.array([True, True, False, False]), cost=0.2) == pytest.approx(0.4)
    assert U.policy_value(Y, T, np.zeros(4, bool)) == 0.0
