"""Experiment and uplift definitions on randomised data. NumPy and the standard library only.

Inputs are per customer: ``y`` the outcome (churn 0/1, spend in currency, ...), ``t`` the arm
(1 treatment, 0 control), ``x`` a pre-exposure covariate, ``score`` a predicted effect.

Effects (:func:`difference`, :func:`cuped`) are treatment mean minus control mean with a normal
(Welch) interval. CUPED subtracts ``theta (x - mean(x))`` from ``y`` with
``theta = cov(y, x) / var(x)`` on both arms pooled; randomisation makes ``x`` independent of
the arm, so the effect is unchanged in expectation and its variance shrinks by about
``corr(y, x)^2``.

Uplift curves rank customers by ``score`` (highest first). With ``N_t(k), N_c(k)`` the treated
and control customers among the top ``k`` and ``Y_t(k), Y_c(k)`` their outcome sums:

* Qini curve ``Q(k) = Y_t(k) - Y_c(k) N_t(k) / N_c(k)`` (0 while ``N_c(k) = 0``): the
  incremental outcome of treating the top ``k``, in outcome units, scaled to the treated;
* uplift (gain) curve ``G(k) = (Y_t(k) / N_t(k) - Y_c(k) / N_c(k)) k`` (0 while either arm is
  empty): the incremental outcome if all top ``k`` were treated;
* :func:`qini_coefficient`: the area between the Qini curve and the straight line from 0 to
  ``Q(N)`` (random targeting), x in fractions of the population, divided by N so it is per
  customer: ``sum_k (Q(k) - k Q(N) / N) / N^2``; 0 for a random ranking;
* :func:`auuc`: the area under the uplift curve, per customer: ``sum_k G(k) / N^2``; a random
  ranking gets about ``G(N) / (2 N)``;
* :func:`uplift_at_k`: the treatment minus control mean among the top fraction ``k``.

Customers with equal scores are one step of the curves: within a run of ties the cumulative
counts are interpolated linearly, so the order of tied rows does not matter.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np


def _arms(y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, t = np.asarray(y, float), np.asarray(t).astype(bool)
    if y.shape != t.shape:
        raise ValueError(f"y has shape {y.shape} and t {t.shape}; one value each per customer")
    return y[t], y[~t]


def difference(y: np.ndarray, t: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Treatment mean - control mean, its standard error (Welch) and a normal interval."""
    yt, yc = _arms(y, t)
    if len(yt) < 2 or len(yc) < 2:
        nan = math.nan
        return {"effect": nan, "se": nan, "low": nan, "high": nan, "n_treatment": len(yt),
                "n_control": len(yc), "mean_treatment": nan, "mean_control": nan}  # fmt: skip
    effect = float(yt.mean() - yc.mean())
    se = math.sqrt(yt.var(ddof=1) / len(yt) + yc.var(ddof=1) / len(yc))
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return {
        "effect": effect, "se": se, "low": effect - z * se, "high": effect + z * se,
        "n_treatment": len(yt), "n_control": len(yc),
        "mean_treatment": float(yt.mean()), "mean_control": float(yc.mean()),
    }  # fmt: skip


def cuped(y: np.ndarray, t: np.ndarray, x: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """:func:`difference` of ``y - theta (x - mean x)``, plus ``theta``, the plain standard
    error and ``variance_reduction = 1 - se_cuped^2 / se_plain^2``."""
    y, x = np.asarray(y, float), np.asarray(x, float)
    plain = difference(y, t, level)
    vx = x.var()
    theta = float(np.cov(y, x, bias=True)[0, 1] / vx) if vx > 0 else 0.0
    out = difference(y - theta * (x - x.mean()), t, level)
    out["theta"] = theta
    out["se_plain"] = plain["se"]
    out["variance_reduction"] = 1.0 - (out["se"] / plain["se"]) ** 2 if plain["se"] > 0 else math.nan
    return out


def sample_size(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8,
                treated_share: float = 0.5) -> dict[str, int]:  # fmt: skip
    """Customers needed to detect ``effect`` (absolute, outcome units) with a two-sided test
    at ``alpha`` with probability ``power``, for an outcome of standard deviation ``sd`` and
    ``treated_share`` of customers treated: ``n = (z_{1-a/2} + z_power)^2 sd^2
    (1/p + 1/(1-p)) / effect^2`` in total."""
    if effect == 0 or not 0 < treated_share < 1:
        raise ValueError("sample_size needs a nonzero effect and 0 < treated_share < 1")
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    total = z**2 * sd**2 * (1 / treated_share + 1 / (1 - treated_share)) / effect**2
    n = math.ceil(total)
    return {"total": n, "treatment": math.ceil(n * treated_share), "control": math.ceil(n * (1 - treated_share))}


def minimum_detectable_effect(sd: float, n_treatment: int, n_control: int, alpha: float = 0.05,
                              power: float = 0.8) -> float:  # fmt: skip
    """The smallest absolute effect a test of these arm sizes detects with ``power``."""
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return z * sd * math.sqrt(1 / n_treatment + 1 / n_control)


def standardized_difference(x: np.ndarray, t: np.ndarray) -> float:
    """(mean_t - mean_c) / sqrt((var_t + var_c) / 2); |d| > 0.1 is the usual imbalance flag."""
    xt, xc = _arms(x, t)
    pooled = math.sqrt((xt.var(ddof=1) + xc.var(ddof=1)) / 2) if len(xt) > 1 and len(xc) > 1 else 0.0
    if pooled == 0:
        return 0.0 if xt.mean() == xc.mean() else math.inf
    return float((xt.mean() - xc.mean()) / pooled)


SMD_FLAG = 0.1  # |standardized difference| above which a feature is called unbalanced ...
SMD_CHANCE_Z = 3.0  # ... when also beyond what a random split of these arm sizes gives


def imbalance_threshold(n_treatment: int, n_control: int) -> float:
    """|standardized difference| above which arms of these sizes differ: the usual 0.1, or,
    for small arms, SMD_CHANCE_Z standard errors of the difference under random assignment
    (about sqrt(1 / n_t + 1 / n_c)): 100 against 400 customers differ by more than 0.1 on a
    feature a third of the time by chance alone."""
    if min(n_treatment, n_control) < 1:
        return SMD_FLAG
    return max(SMD_FLAG, SMD_CHANCE_Z * math.sqrt(1 / n_treatment + 1 / n_control))


def sample_ratio_pvalue(n_treatment: int, n_control: int, treated_share: float) -> float:
    """Chi-square (1 df) p-value that the split came from ``treated_share``: a small value
    (sample ratio mismatch) means the assignment was not what was planned."""
    n = n_treatment + n_control
    et, ec = n * treated_share, n * (1 - treated_share)
    chi2 = (n_treatment - et) ** 2 / et + (n_control - ec) ** 2 / ec
    return math.erfc(math.sqrt(chi2 / 2))


def _cumulative(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cumulative (N_t, N_c, Y_t, Y_c) at k = 1..N by descending score, ties interpolated."""
    y, t, score = np.asarray(y, float), np.asarray(t).astype(bool), np.asarray(score, float)
    order = np.argsort(-score, kind="stable")
    y, t, s = y[order], t[order], score[order]
    sums = [np.cumsum(t), np.cumsum(~t), np.cumsum(y * t), np.cumsum(y * ~t)]
    n = len(y)
    last = np.r_[s[1:] != s[:-1], True]  # the last row of each run of equal scores
    ends = np.flatnonzero(last)
    if len(ends) == n:
        return tuple(c.astype(float) for c in sums)
    k = np.arange(1, n + 1, dtype=float)
    xp = np.r_[0.0, ends + 1.0]
    return tuple(np.interp(k, xp, np.r_[0.0, c[ends]]) for c in sums)


def qini_curve(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Q(k) for k = 1..N (see the module doc), outcome units."""
    nt, nc, yt, yc = _cumulative(y, t, score)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(nc > 0, yt - yc * nt / np.where(nc > 0, nc, 1.0), 0.0)


def uplift_curve(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> np.ndarray:
    """G(k) for k = 1..N (see the module doc), outcome units."""
    nt, nc, yt, yc = _cumulative(y, t, score)
    k = np.arange(1, len(nt) + 1)
    ok = (nt > 0) & (nc > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, (yt / np.where(ok, nt, 1) - yc / np.where(ok, nc, 1)) * k, 0.0)


def qini_coefficient(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    """Area between the Qini curve and random targeting, per customer (module doc)."""
    q = qini_curve(y, t, score)
    n = len(q)
    if n == 0:
        return math.nan
    k = np.arange(1, n + 1)
    return float(np.sum(q - k * q[-1] / n) / n**2)


def auuc(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    """Area under the uplift curve, per customer (module doc)."""
    g = uplift_curve(y, t, score)
    return float(g.sum() / len(g) ** 2) if len(g) else math.nan


def uplift_at_k(y: np.ndarray, t: np.ndarray, score: np.ndarray, k: float = 0.3) -> float:
    """Treatment mean - control mean among the top fraction ``k`` by score (ties by order)."""
    order = np.argsort(-np.asarray(score, float), kind="stable")
    top = order[: max(1, int(round(k * len(order))))]
    yt, yc = _arms(np.asarray(y, float)[top], np.asarray(t)[top])
    return float(yt.mean() - yc.mean()) if len(yt) and len(yc) else math.nan


def incremental_value(y: np.ndarray, t: np.ndarray, score: np.ndarray, k: float) -> float:
    """Incremental outcome per customer of the population from treating the top fraction
    ``k`` by score: ``k * uplift_at_k`` (an estimate on randomised data)."""
    return k * uplift_at_k(y, t, score, k)


def select_by_net_value(uplift_value: np.ndarray, cost: float, budget: float) -> np.ndarray:
    """Whom to treat: customers in decreasing order of ``uplift_value - cost`` (expected
    incremental value of treating them minus the cost of a contact, currency), while that net
    is positive and the contacts' total cost stays within ``budget`` (currency). Returns a
    boolean mask. Example: uplift in retention probability times the customer's value gives
    ``uplift_value``."""
    net = np.asarray(uplift_value, float) - cost
    order = np.argsort(-net, kind="stable")
    n_max = len(net) if cost <= 0 else min(len(net), int(budget // cost))
    chosen = order[:n_max]
    chosen = chosen[net[chosen] > 0]
    mask = np.zeros(len(net), bool)
    mask[chosen] = True
    return mask


def policy_value(y: np.ndarray, t: np.ndarray, target: np.ndarray, cost: float = 0.0) -> float:
    """Incremental outcome per customer of the population from treating the ``target`` mask,
    minus the contact cost, estimated on randomised data: ``share * (mean_t - mean_c within
    the target) - cost * share``, share = the targeted fraction (0 when nobody is targeted)."""
    target = np.asarray(target, bool)
    share = float(target.mean()) if len(target) else 0.0
    if share == 0:
        return 0.0
    yt, yc = _arms(np.asarray(y, float)[target], np.asarray(t)[target])
    if not len(yt) or not len(yc):
        return math.nan
    return share * float(yt.mean() - yc.mean()) - cost * share
