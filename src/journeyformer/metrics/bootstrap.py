"""Paired bootstrap over customers of a metric of the model minus the same metric of a baseline,
and the verdict it supports. NumPy only.

Example::

    out = paired_bootstrap(auroc, model_scores, baseline_scores, y, groups=customer_ids)
    out["verdict"]  # "beats" only when the whole 95% interval is above zero
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

VERDICTS = ("beats", "ties", "loses")
NO_VERDICT = "no verdict"


def verdict(low: float, high: float) -> str:
    """"beats" when the whole interval of model - baseline is above zero, "loses" when it is
    below, "ties" when it contains zero; "no verdict" when the interval is undefined."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return NO_VERDICT
    if low > 0:
        return "beats"
    if high < 0:
        return "loses"
    return "ties"


def paired_bootstrap(
    metric: Callable[[np.ndarray, np.ndarray], float],
    model: np.ndarray,
    baseline: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float | int | str]:
    """``metric(model) - metric(baseline)`` with a percentile bootstrap interval.

    Customers (``groups``: one id per row; default one customer per row) are resampled with
    replacement, all rows of a drawn customer together, and both predictions are scored on the
    same resample, so the interval is of the paired difference. ``model``/``baseline``: (N,)
    or (N, K) predictions in the form ``metric`` takes. Returns ``delta`` (on all rows),
    ``low``, ``high`` (the ``level`` interval), ``n_boot`` and the :func:`verdict`.
    """
    y, model, baseline = np.asarray(y), np.asarray(model), np.asarray(baseline)

    def diff(idx: np.ndarray) -> float:
        return float(metric(model[idx], y[idx]) - metric(baseline[idx], y[idx]))

    n = len(y)
    delta = diff(np.arange(n)) if n else float("nan")
    if groups is None:
        order, starts, sizes, n_groups = None, None, None, n
    else:
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        n_groups = int(inverse.max()) + 1 if n else 0
        order = np.argsort(inverse, kind="stable")
        sizes = np.bincount(inverse, minlength=n_groups)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    draws = np.full(n_boot, np.nan)
    for i in range(n_boot if n else 0):
        pick = rng.integers(0, n_groups, n_groups)
        idx = pick if order is None else order[_expand(starts[pick], sizes[pick])]
        draws[i] = diff(idx)
    ok = draws[np.isfinite(draws)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(ok, [tail, 100 - tail]) if len(ok) else (np.nan, np.nan)
    return {
        "delta": delta,
        "low": float(low),
        "high": float(high),
        "n_boot": int(n_boot),
        "verdict": verdict(float(low), float(high)),
    }


def _expand(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + n)`` for each (s, n)."""
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    return np.repeat(starts - (ends - lengths), lengths) + np.arange(total)
