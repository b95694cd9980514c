"""PSI, KS and the reference profiles (metrics/drift.py) and their thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from journeyformer.metrics.drift import (
    CATEGORICAL,
    CONTINUOUS,
    OTHER,
    Counts,
    Profile,
    compare,
    profile,
    psi,
)
from journeyformer.monitoring.drift import Thresholds, drift_report


def test_psi_of_equal_shares_is_zero_and_grows_with_the_shift():
    ref = np.array([0.25, 0.25, 0.25, 0.25])
    assert psi(ref, ref) == 0.0
    small, large = psi(ref, [0.3, 0.25, 0.25, 0.2]), psi(ref, [0.7, 0.1, 0.1, 0.1])
    assert 0 < small < 0.1 < 0.25 < large
    assert np.isfinite(psi(ref, [1.0, 0.0, 0.0, 0.0]))  # empty bins stay finite


def test_a_sample_of_the_same_distribution_is_stable_and_a_shifted_one_drifts():
    rng = np.random.default_rng(0)
    ref = profile(rng.lognormal(size=5000), CONTINUOUS)
    same = compare(Counts(ref).add(rng.lognormal(size=5000)))
    shifted = compare(Counts(ref).add(rng.lognormal(mean=0.5, size=5000)))
    assert same.psi < 0.02 and same.ks < 0.04
    assert shifted.psi > 0.25 and shifted.ks > 0.15
    # the KS statistic on the percentile grid matches the exact two-sample statistic
    x, y = rng.lognormal(size=5000), rng.lognormal(mean=0.5, size=5000)
    grid = np.sort(np.concatenate([x, y]))
    exact = np.max(np.abs(np.searchsorted(np.sort(x), grid, "right") / 5000 - np.searchsorted(np.sort(y), grid, "right") / 5000))
    approx = compare(Counts(profile(x, CONTINUOUS)).add(y)).ks
    assert abs(approx - exact) < 0.02


def test_mostly_zero_counts_do_not_look_like_drift():
    """Tied percentiles (a count that is 0 for 70% of customers) keep PSI and KS near 0."""
    rng = np.random.default_rng(1)

    def draw(n):
        return np.where(rng.random(n) < 0.7, 0.0, rng.poisson(3, n) + 1.0)

    ref = profile(draw(4000), CONTINUOUS)
    got = compare(Counts(ref).add(draw(4000)))
    assert got.psi < 0.02 and got.ks < 0.04
    more_zeros = compare(Counts(ref).add(np.where(rng.random(4000) < 0.95, 0.0, 2.0)))
    assert more_zeros.psi > 0.25


def test_counts_add_up_over_chunks_and_missing_values_have_their_bin():
    rng = np.random.default_rng(2)
    x = rng.normal(size=3000)
    x[::10] = np.nan
    ref = profile(x, CONTINUOUS)
    assert ref.missing == pytest.approx(0.1)
    whole = Counts(ref).add(x)
    parts = Counts(ref)
    for chunk in np.array_split(x, 7):
        parts.add(chunk)
    assert np.array_equal(whole.bins, parts.bins) and np.array_equal(whole.grid, parts.grid)
    assert whole.shares()[-1] == pytest.approx(0.1)
    assert compare(whole).psi < 1e-3


def test_categorical_profiles_pool_unseen_categories():
    ref = profile(["web"] * 60 + ["app"] * 40, CATEGORICAL)
    assert ref.shares == {"app": 0.4, "web": 0.6}
    got = compare(Counts(ref).add(["web"] * 30 + ["app"] * 20 + ["kiosk"] * 50))
    assert got.bins[-1] == OTHER and got.shares[-1] == 0.5
    assert got.psi > 0.25 and got.ks is None
    assert Profile.from_dict(ref.to_dict()) == ref


def test_thresholds_set_the_status_and_the_report_sorts_worst_first():
    rng = np.random.default_rng(3)
    x = rng.normal(size=2000)
    ref = profile(x, CONTINUOUS)
    counts = {"a": Counts(ref).add(rng.normal(size=2000)), "b": Counts(ref).add(rng.normal(1.0, size=2000))}
    report = drift_report(counts, Thresholds(), 2000, 2000)
    assert [c.name for c in report.columns] == ["b", "a"]
    assert report.status == "drift" and report.columns[1].status == "ok"
    assert report.to_dict()["columns_by_status"] == {"ok": 1, "warn": 0, "drift": 1}
    assert Thresholds(0.1, 0.25).status(0.15) == "warn"
    with pytest.raises(ValueError, match="psi_warn <= psi_drift"):
        Thresholds(0.3, 0.2)
