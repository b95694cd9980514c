"""Per-customer aggregate features at a cutoff: the whole-history summary a practitioner would
hand to gradient boosting, computed by Polars in the same pass that builds the customer table.

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

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import polars as pl

from journeyformer.data.labels import LabelConfig, _is_in, as_utc
from journeyformer.data.timestamps import UTC_US
from journeyformer.data.vocab import PAD, Vocabularies

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
    frame: pl.DataFrame,
    cutoff: datetime,
    vocabs: Vocabularies,
    categorical: Sequence[str],
    numeric: Sequence[str],
    labels: LabelConfig,
    summary: pl.DataFrame,
) -> np.ndarray:
    """(N, K) float32 aggregates for the N rows of ``summary``, columns :func:`aggregate_names`.

    Args:
        frame: canonical events sorted by (customer_id, timestamp, _row); rows after the
            cutoff are ignored.
        summary: the customer table at ``cutoff`` (customer_id, recency_days, stage, ...);
            its row order is the output's.
    """
    cutoff = as_utc(cutoff)
    cut = pl.lit(cutoff, UTC_US)
    cid, ts = pl.col("customer_id"), pl.col("timestamp")
    same = (cid == cid.shift(1)).fill_null(False)
    value = pl.when(_is_in("action", labels.value_actions)).then(pl.col("amount"))
    prepared = frame.lazy().select(
        "customer_id",
        ((cut - ts).dt.total_microseconds() / _US_PER_DAY).alias("_age"),
        pl.when(same).then(ts.dt.epoch("us").diff() / _US_PER_DAY).alias("_gap"),
        (ts.dt.epoch("us") // int(_US_PER_DAY)).alias("_day"),
        _is_in("action", labels.purchase_actions).alias("_purchase"),
        value.alias("_value"),
        *[vocabs[c].encode(c, pl.Int32).alias(f"_{c}") for c in categorical],
        *[pl.col(c).cast(pl.Float64).alias(f"_x_{c}") for c in numeric],
    ).filter(pl.col("_age") >= 0)
    age, purchase = pl.col("_age"), pl.col("_purchase")
    aggs: list[pl.Expr] = []
    for key, expr in (("n_events", pl.lit(1)), ("n_purchases", purchase.cast(pl.Int64))):
        aggs += [expr.filter(age < w).sum().alias(f"{key}_{w}d") for w in WINDOWS_DAYS]
    aggs += [pl.col("_value").filter(age < w).sum().alias(f"spend_{w}d") for w in WINDOWS_DAYS]
    aggs += [
        pl.col("_day").n_unique().alias("n_active_days"),
        pl.col("_gap").mean().alias("gap_mean_days"),
        pl.col("_gap").std().alias("gap_std_days"),
        pl.col("_gap").max().alias("gap_max_days"),
        pl.col("_gap").last().alias("gap_last_days"),
        pl.col("_value").mean().alias("purchase_amount_mean"),
        pl.col("_value").max().alias("purchase_amount_max"),
        *[pl.col(f"_x_{c}").mean().alias(f"mean_{c}") for c in numeric],
    ]
    for col in categorical:
        ids = pl.col(f"_{col}")
        for i, t in enumerate(vocabs[col].tokens):
            if t == PAD:
                continue
            aggs.append((ids == i).sum().alias(f"n_{col}={t}"))
            aggs.append(((ids == i) & (age < 30)).sum().alias(f"n30_{col}={t}"))
    action = pl.col("_action")
    for i, t in enumerate(vocabs["action"].tokens):
        if t != PAD:
            aggs.append(age.filter(action == i).min().alias(f"days_since_action={t}"))
    aggs.append(action.last().alias("last_action"))
    aggs.append(pl.col("_channel").last().alias("last_channel"))
    per_customer = prepared.group_by("customer_id").agg(aggs)
    names = aggregate_names(vocabs, categorical, numeric)
    whole = summary.lazy().select(
        "customer_id",
        pl.col("n_events"),
        pl.col("n_purchases"),
        pl.col("spend"),
        pl.col("tenure_days"),
        pl.col("recency_days"),
        pl.col("stage").alias("stage_now"),
    )
    out = (
        whole.join(per_customer, on="customer_id", how="left", maintain_order="left")
        .select([pl.col(n).cast(pl.Float64) for n in names])
        .collect()
    )
    counts = [n for n in names if n.startswith(("n_", "n30_", "spend")) or n == "n_active_days"]
    out = out.with_columns(pl.col(counts).fill_null(0.0))
    return out.to_numpy().astype(np.float32, copy=False).reshape(summary.height, len(names))


def context_transform(aggregates: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(N, K) aggregates -> (N, K') float32 model context: the numeric columns only, as
    signed log1p (counts, days and money span orders of magnitude), NaN -> -1 (below every
    real value, so "never" stays distinct from "today")."""
    keep = [i for i, n in enumerate(names) if n not in CATEGORICAL_AGGREGATES]
    x = aggregates[:, keep].astype(np.float64)
    out = np.sign(x) * np.log1p(np.abs(x))
    return np.where(np.isnan(out), -1.0, out).astype(np.float32)


def context_names(names: Sequence[str]) -> tuple[str, ...]:
    """The columns :func:`context_transform` keeps, in order."""
    return tuple(n for n in names if n not in CATEGORICAL_AGGREGATES)


__all__ = [
    "CATEGORICAL_AGGREGATES",
    "WINDOWS_DAYS",
    "aggregate_features",
    "aggregate_names",
    "context_names",
    "context_transform",
]
