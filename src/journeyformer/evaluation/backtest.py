"""Backtests: the same evaluation at several as_of dates, and every headline metric over time.

``journeyformer evaluate as_of=[2025-09-01,2025-10-01,2025-11-01]`` (a list), or
``backtest.every_days=14 backtest.start=2025-06-01 [backtest.end=...]`` (a range; the end
defaults to the last as_of with a complete label window: the end of the data minus the
horizon). Each date is evaluated exactly as a single ``evaluate`` run would be (baselines refit
one horizon before it), so a dip shows when the model, not the protocol, changed.

:func:`backtest_series` collects, per task, the headline metric of the model and of every
baseline at each date: the ``backtest`` entry of metrics.json and the metric-over-time plot.

Needs only NumPy (the plot: matplotlib, in :mod:`journeyformer.evaluation.plots`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from journeyformer.data.labels.samples import parse_time
from journeyformer.errors import ConfigError

MAX_DATES = 60  # a backtest longer than this is most likely a typo in every_days


def backtest_dates(
    as_of: Any,
    backtest: Mapping[str, Any] | None,
    default_end: datetime,
) -> list[datetime] | None:
    """The as_of dates of a backtest, oldest first, or None for a single evaluation.

    ``as_of``: a list of dates (a backtest), or one date / None. ``backtest``: ``every_days``,
    ``start``, ``end`` (None: ``default_end``).
    """
    bt = dict(backtest or {})
    every = bt.get("every_days")
    if isinstance(as_of, (list, tuple)):
        if every:
            raise ConfigError("give as_of as a list or backtest.every_days, not both")
        try:
            dates = sorted({parse_time(a) for a in as_of})
        except ValueError as err:
            raise ConfigError(f"as_of: {err}") from None
        if not dates:
            raise ConfigError("as_of=[]: give at least one date")
        return dates
    if not every:
        if bt.get("start") or bt.get("end"):
            raise ConfigError("backtest.start/end need backtest.every_days (days between as_of dates)")
        return None
    if as_of is not None:
        raise ConfigError("give as_of or backtest.every_days, not both")
    if float(every) <= 0:
        raise ConfigError(f"backtest.every_days must be > 0, got {every}")
    if not bt.get("start"):
        raise ConfigError("backtest.every_days needs backtest.start (the first as_of date)")
    try:
        start = parse_time(bt["start"])
        end = parse_time(bt["end"]) if bt.get("end") else default_end
    except ValueError as err:
        raise ConfigError(f"backtest: {err}") from None
    if end < start:
        raise ConfigError(f"backtest: end {end:%Y-%m-%d} is before start {start:%Y-%m-%d}")
    dates, step = [], timedelta(days=float(every))
    while start + len(dates) * step <= end:
        dates.append(start + len(dates) * step)
        if len(dates) > MAX_DATES:
            raise ConfigError(f"backtest: more than {MAX_DATES} as_of dates; raise backtest.every_days")
    return dates


def backtest_series(
    runs: Sequence[tuple[datetime, Mapping[str, Any]]], headline: Mapping[str, str]
) -> dict[str, Any]:
    """metrics.json's ``backtest``: ``as_of`` (ISO dates) and, per task, its headline metric
    and the values of the model and each baseline at each date (None where not computed)."""
    out: dict[str, Any] = {"as_of": [d.isoformat() for d, _ in runs], "tasks": {}}
    for task, metric in headline.items():
        names = list(dict.fromkeys(n for _, m in runs for n in m.get("baselines", {}).get(task, {})))
        series = {"model": [_get(m, ("model", task, metric)) for _, m in runs]}
        for n in names:
            series[n] = [_get(m, ("baselines", task, n, metric)) for _, m in runs]
        out["tasks"][task] = {"metric": metric, "values": series}
    return out


def _get(d: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return float(d) if isinstance(d, (int, float)) else None
