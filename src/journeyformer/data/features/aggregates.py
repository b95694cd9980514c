"""Per-customer aggregate features at a cutoff: the whole-history summary a practitioner would
hand to gradient boosting, NumPy reductions over each customer's contiguous rows (the batch
path and the small-input path give them the same arrays).

Every feature uses only events at or before the cutoff (a leakage test checks it). Windows are
half-open, (cutoff - w days, cutoff], like the loyalty window of the lifecycle rules.
Columns, in :func:`aggregate_names` order:

================================  =============================================================
``n_events_{7,30,90}d``           events in the last 7 / 30 / 90 days
``n_purchases_{7,30,90}d``        purchase-action events in those windows
``spend_{7,30,90}d``              value-action amount in those windows (currency units)
``n_events``, ``n_purchases``     over the whole history
``spend``                         value-action amount over the whole history
``tenure_days``                   days since the first event
``recency_days``                  days since the last activity (see the label rules)
``n_active_days``                 distinct calendar days (UTC) with an event
``gap_mean_days`` ...             mean, std, max and last gap between consecutive events (days)
``purchase_amount_mean/max``      value-action amount per value event
``mean_<x>``                      mean of each extra numeric column
``n_<col>=<v>``, ``n30_<col>=<v>``  count of each vocabulary value of each categorical column,
                                  all history and last 30 days (``<unk>`` included)
``days_since_action=<a>``         days since the last event of each action (NaN: never)
``last_action``, ``last_channel``  vocabulary id of the most recent event's action / channel
``stage_now``                     lifecycle stage index at the cutoff
================================  =============================================================

The last three are categorical (:data:`CATEGORICAL_AGGREGATES`); the rest are numbers, NaN
only where a quantity does not exist (a gap with a single event, a never-seen action).
:func:`context_transform` turns the numbers into the model's ``context`` input.

This module needs only Polars and NumPy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from journeyformer.data.features.vocab import PAD, Vocabularies

WINDOWS_DAYS = (7, 30, 90)
CATEGORICAL_AGGREGATES = ("last_action", "last_channel", "stage_now")
_US_PER_DAY = 86_400e6


def aggregate_names(
    vocabs: Vocabularies, categorical: Sequence[str], numeric: Sequence[str]
) -> tuple[str, ...]:
    """Column names of :func:`aggregate_features`, numbers first, then the categorical ones."""
    names = [f"{k}_{w}d" for k in ("n_events", "n_purchases", "spend") for w in WINDOWS_DAYS]
    names += ["n_events", "n_purchases", "spend", "tenure_days", "recency_days", "n_active_days"]
    names += ["gap_mean_days", "gap_std_days", "gap_max_days", "gap_last_days"]
    names += ["purchase_amount_mean", "purchase_amount_max"]
    names += [f"mean_{c}" for c in numeric]
    for col in categorical:
        tokens = [t for t in vocabs[col].tokens if t != PAD]
        names += [f"n_{col}={t}" for t in tokens] + [f"n30_{col}={t}" for t in tokens]
    names += [f"days_since_action={t}" for t in vocabs["action"].tokens if t != PAD]
    return (*names, *CATEGORICAL_AGGREGATES)


def aggregate_features(
    ts: np.ndarray,
    first: np.ndarray,
    cut_us: int,
    ids: Mapping[str, np.ndarray],
    flags: Mapping[str, np.ndarray],
    amount: np.ndarray,
    extras: Mapping[str, np.ndarray],
    summary: pl.DataFrame,
    vocabs: Vocabularies,
    categorical: Sequence[str],
    numeric: Sequence[str],
) -> np.ndarray:
    """(N, K) float32 aggregates of the N customers of ``summary``, columns
    :func:`aggregate_names`: the one definition of the aggregates, which the batch path
    (:func:`journeyformer.data.features.sequences.build_sequences`) and the small-input path
    (:mod:`journeyformer.data.features.few`) feed with the same arrays.

    Args:
        ts: (E,) epoch microseconds of the customers' events at or before the cutoff, sorted
            by (customer, time), customers in ``summary``'s order, each with at least one.
        first: (E,) bool, True at each customer's first row.
        cut_us: the cutoff in epoch microseconds.
        ids: vocabulary ids (E,) of ``categorical`` and of ``action`` and ``channel``.
        flags: (E,) bool ``purchase`` and ``value`` (a value action) per event.
        amount: (E,) float64; extras: (E,) float64 per ``numeric`` column.
        summary: the history summary at the cutoff (``labels.summary_frame``).
    """
    start = np.flatnonzero(first)
    n, n_rows = len(start), len(ts)
    names = aggregate_names(vocabs, categorical, numeric)
    if n == 0:
        return np.zeros((0, len(names)), dtype=np.float32)
    counts = np.diff(np.append(start, n_rows))
    owner = np.cumsum(first) - 1  # (E,) the customer of each row
    # Days as Polars computes ``total_microseconds() / 86400e6`` (times the reciprocal).
    age = (cut_us - ts).astype(np.float64) * (1 / _US_PER_DAY)
    value = flags["value"]
    val = np.where(value, amount, 0.0)
    out: dict[str, np.ndarray] = {}
    for w in WINDOWS_DAYS:
        inside = age < w
        out[f"n_events_{w}d"] = np.add.reduceat(inside.astype(np.int64), start)
        out[f"n_purchases_{w}d"] = np.add.reduceat((flags["purchase"] & inside).astype(np.int64), start)
        out[f"spend_{w}d"] = np.add.reduceat(np.where(inside, val, 0.0), start)
    for name in ("n_events", "n_purchases", "spend", "tenure_days", "recency_days"):
        out[name] = summary.get_column(name).to_numpy().astype(np.float64)
    day = ts // int(_US_PER_DAY)
    new_day = first.copy()
    new_day[1:] |= day[1:] != day[:-1]
    out["n_active_days"] = np.add.reduceat(new_day.astype(np.int64), start)
    # Gaps in days between a customer's consecutive events (none before its first).
    gap = np.zeros(n_rows, dtype=np.float64)
    if n_rows > 1:
        gap[1:] = (ts[1:] - ts[:-1]) * (1 / _US_PER_DAY)
    has_gap = ~first
    n_gaps = counts - 1
    last = np.append(start[1:], n_rows) - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.add.reduceat(np.where(has_gap, gap, 0.0), start) / n_gaps
        dev = np.where(has_gap, gap - np.repeat(mean, counts), 0.0)
        std = np.sqrt(np.add.reduceat(dev * dev, start) / (n_gaps - 1))
        out["gap_mean_days"] = np.where(n_gaps >= 1, mean, np.nan)
        out["gap_std_days"] = np.where(n_gaps >= 2, std, np.nan)
        out["gap_max_days"] = np.where(n_gaps >= 1, np.maximum.reduceat(np.where(has_gap, gap, -np.inf), start), np.nan)
        out["gap_last_days"] = np.where(n_gaps >= 1, gap[last], np.nan)
        n_value = np.add.reduceat(value.astype(np.int64), start)
        out["purchase_amount_mean"] = np.where(n_value > 0, np.add.reduceat(val, start) / n_value, np.nan)
        out["purchase_amount_max"] = np.where(n_value > 0, np.maximum.reduceat(np.where(value, amount, -np.inf), start), np.nan)
        for c in numeric:
            out[f"mean_{c}"] = np.add.reduceat(extras[c], start) / counts
    recent = (age < 30).astype(np.float64)
    for col in categorical:
        size = len(vocabs[col].tokens)
        cell = owner * size + ids[col]
        total = np.bincount(cell, minlength=n * size).reshape(n, size)
        last30 = np.bincount(cell, weights=recent, minlength=n * size).reshape(n, size)
        category_count_columns(out, col, vocabs[col].tokens, total, last30)
    tokens = vocabs["action"].tokens
    since = np.full(n * len(tokens), np.inf)
    np.minimum.at(since, owner * len(tokens) + ids["action"], age)
    days_since_columns(out, since.reshape(n, len(tokens)), tokens)
    out["last_action"] = ids["action"][last]
    out["last_channel"] = ids["channel"][last]
    out["stage_now"] = summary.get_column("stage").to_numpy()
    return aggregate_table(out, n, names)


def category_count_columns(out: dict[str, np.ndarray], col: str, tokens: tuple[str, ...], total: np.ndarray, last30: np.ndarray) -> None:
    """``n_<col>=<t>`` and ``n30_<col>=<t>`` from (N, V) counts over all history and the last
    30 days (V: the vocabulary's tokens, ``<pad>`` skipped)."""
    for i, t in enumerate(tokens):
        if t != PAD:
            out[f"n_{col}={t}"] = total[:, i]
            out[f"n30_{col}={t}"] = last30[:, i]


def days_since_columns(out: dict[str, np.ndarray], since: np.ndarray, tokens: tuple[str, ...]) -> None:
    """``days_since_action=<a>`` from (N, V) days since each action's last event (inf: never)."""
    for i, t in enumerate(tokens):
        if t != PAD:
            out[f"days_since_action={t}"] = np.where(np.isinf(since[:, i]), np.nan, since[:, i])


def aggregate_table(out: Mapping[str, np.ndarray], n: int, names: Sequence[str]) -> np.ndarray:
    """(N, K) float32 in ``names`` order (:func:`aggregate_names`) from the named columns."""
    assert set(CATEGORICAL_AGGREGATES) <= set(out)
    table = np.empty((n, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        table[:, j] = out[name]
    return table.astype(np.float32)


def context_transform(aggregates: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(N, K) aggregates -> (N, K') float32 model context: the numeric columns only, as
    signed log1p (counts, days and money span orders of magnitude), NaN -> -1 (below every
    real value, so "never" stays distinct from "today")."""
    keep = [i for i, n in enumerate(names) if n not in CATEGORICAL_AGGREGATES]
    out = signed_log1p(aggregates[:, keep].astype(np.float64))
    return np.where(np.isnan(out), -1.0, out).astype(np.float32)


def signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def context_names(names: Sequence[str]) -> tuple[str, ...]:
    """The columns :func:`context_transform` keeps, in order."""
    return tuple(n for n in names if n not in CATEGORICAL_AGGREGATES)
