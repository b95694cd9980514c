"""Customer states -> :class:`~journeyformer.data.features.sequences.Sequences` at a cutoff: the model
inputs ``journeyformer predict`` builds from the same events, read from the running state.

The per-event features are :mod:`journeyformer.data.features.few`'s own functions over the
tail's last ``max_len`` events (with the predecessor's time for the first one's gap); the
history summary and lifecycle stage are :func:`journeyformer.data.labels.lifecycle.summary_frame`; the aggregates are assembled
by its :func:`aggregate_table` from the state's running values, the tail's windowed counts and
the same float expressions (ages as ``(cutoff - t) / 86400e6`` days). One batch of N customers
costs O(N x (max_len + tail)), independent of how long their histories are.

Only cutoffs at or after each customer's newest event are answered (the service scores the
present; the past is ``journeyformer predict``'s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from journeyformer.data.events.timestamps import epoch_micros
from journeyformer.data.features.aggregates import (
    WINDOWS_DAYS,
    aggregate_table,
    category_count_columns,
    days_since_columns,
)
from journeyformer.data.features.definitions import numeric_event_features
from journeyformer.data.features.sequences import Sequences, model_inputs
from journeyformer.data.labels.lifecycle import _NO_TIME, as_utc, summary_frame
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.service.state import PURCHASE, VALUE, CustomerState

_US_PER_DAY = 86_400e6


def tail_days(pre: Preprocessing) -> int:
    """Days of recent events a state keeps: the longest window any feature reads."""
    return math.ceil(max(*WINDOWS_DAYS, 30, pre.labels.loyalty_window_days))


def sequences_at(states: Sequence[CustomerState], cutoff: datetime, pre: Preprocessing) -> Sequences:
    """The model inputs of ``states`` (N >= 1) at ``cutoff``, in the given order.

    Raises ValueError when ``cutoff`` is before a customer's newest event.
    """
    cutoff = as_utc(cutoff)
    cut_us = epoch_micros(cutoff)
    features, labels, vocabs = pre.features, pre.labels, pre.vocabs
    window_start = epoch_micros(cutoff - timedelta(days=labels.loyalty_window_days))
    n = len(states)
    n_extra = len(features.numeric)
    # (ts, first, keep, amount, extras): the predecessor (when there is one) + the sequence events
    seq: list[tuple] = []
    cats: list[tuple[int, ...]] = []
    tail_rows: list[tuple] = []  # (ts, owner, flags, amount, ids) of every tail event
    lengths = np.zeros(n, dtype=np.int64)
    scalars = {k: np.zeros(n, dtype=np.int64) for k in ("n_events", "n_purchases", "n_window", "n_intent", "first", "last", "activity", "n_days", "n_value")}
    floats = {"spend": np.zeros(n), "value_max": np.zeros(n)} | {k: np.full(n, math.nan) for k in ("gap_mean", "gap_std", "gap_max", "gap_last")}
    extras_mean = np.zeros((n, n_extra))
    totals = [np.zeros((n, len(vocabs[c].tokens)), dtype=np.int64) for c in features.categorical]
    action_last = np.full((n, len(vocabs["action"].tokens)), np.inf)
    for k, s in enumerate(states):
        newest = s.times[-1]
        if newest > cut_us:
            raise ValueError(
                f"as_of {cutoff.isoformat()} is before customer {s.customer}'s newest event "
                f"({np.datetime64(newest, 'us')}Z): the service scores at or after a customer's "
                "newest event; score the past with `journeyformer predict as_of=...`"
            )
        length = min(s.n_events, s.max_len)
        lengths[k] = length
        if s.n_events > length:
            seq.append((s.times[-length - 1], True, False, 0.0, (0.0,) * n_extra))
        tail = s.tail  # unpacked once
        seq += [(e.ts, j == 0 and s.n_events == length, True, e.amount, e.extras) for j, e in enumerate(tail[-length:])]
        cats += [e.ids for e in tail[-length:]]
        tail_rows += [(e.ts, k, e.flags, e.amount, e.ids) for e in tail]
        for name in ("n_events", "n_purchases", "n_intent", "n_value", "n_days"):
            scalars[name][k] = getattr(s, name)
        scalars["first"][k], scalars["last"][k] = s.times[0], newest
        scalars["activity"][k] = _NO_TIME if s.activity_last is None else s.activity_last
        floats["spend"][k], floats["value_max"][k] = s.spend, s.value_max
        n_gaps = s.n_events - 1
        if n_gaps >= 1:
            span = newest - s.times[0]  # the sum of the gaps
            floats["gap_mean"][k] = span / _US_PER_DAY / n_gaps
            floats["gap_max"][k] = s.gap_max / _US_PER_DAY
            floats["gap_last"][k] = (newest - s.times[-2]) / _US_PER_DAY
            if n_gaps >= 2:  # sum of squared deviations = S2 - S1^2 / n, exact in integers
                floats["gap_std"][k] = math.sqrt(max(n_gaps * s.gap_s2 - span * span, 0) / n_gaps / (n_gaps - 1)) / _US_PER_DAY
        if n_extra:
            extras_mean[k] = np.asarray(s.extras_sum) / s.n_events
        for c, counts in enumerate(s.counts):
            totals[c][k] = counts
        action_last[k] = [math.inf if t is None else (cut_us - t) / _US_PER_DAY for t in s.action_last]

    t_ts, owner, flags, t_amount, t_ids = (
        np.asarray(c, dtype=d) for c, d in zip(zip(*tail_rows, strict=True), (np.int64, np.int64, np.int64, np.float64, np.int64), strict=True)
    )
    age = (cut_us - t_ts).astype(np.float64) / _US_PER_DAY
    purchase = (flags & PURCHASE) != 0
    value = (flags & VALUE) != 0
    scalars["n_window"] = np.bincount(owner, weights=purchase & (t_ts > window_start), minlength=n).astype(np.int64)


    customer_id = pl.Series("customer_id", [s.customer for s in states])
    summary = summary_frame(
        customer_id, cutoff, labels, scalars["n_events"], floats["spend"], scalars["n_purchases"],
        scalars["n_window"], scalars["n_intent"], scalars["first"], scalars["last"], scalars["activity"],
    )  # fmt: skip

    # Per-event numeric features over the sequence rows (predecessors give the first gap).
    seq_ts, first, keep, amount, extras = zip(*seq, strict=True)
    ts_arr = np.asarray(seq_ts, dtype=np.int64)
    extras_arr = np.asarray(extras, dtype=np.float64).reshape(len(seq), n_extra)
    numeric_all = numeric_event_features(
        ts_arr, ts_arr, np.asarray(first), cut_us, np.asarray(amount, dtype=np.float64),
        {c: extras_arr[:, j] for j, c in enumerate(features.numeric)}, features,
    )  # fmt: skip
    numeric = numeric_all[np.asarray(keep)]
    categorical = np.asarray(cats, dtype=np.int32).reshape(len(cats), len(features.categorical))

    # Aggregates, named as features.few._aggregates names them.
    out: dict[str, np.ndarray] = {}
    val = np.where(value, t_amount, 0.0)
    for w in WINDOWS_DAYS:
        within = age < w
        out[f"n_events_{w}d"] = np.bincount(owner, weights=within, minlength=n)
        out[f"n_purchases_{w}d"] = np.bincount(owner, weights=purchase & within, minlength=n)
        out[f"spend_{w}d"] = np.bincount(owner, weights=np.where(within, val, 0.0), minlength=n)
    for name in ("n_events", "n_purchases", "spend", "tenure_days", "recency_days"):
        out[name] = summary.get_column(name).to_numpy().astype(np.float64)
    out["n_active_days"] = scalars["n_days"].astype(np.float64)
    for g in ("mean", "std", "max", "last"):
        out[f"gap_{g}_days"] = floats[f"gap_{g}"]
    n_value = scalars["n_value"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["purchase_amount_mean"] = np.where(n_value > 0, floats["spend"] / n_value, np.nan)
    out["purchase_amount_max"] = np.where(n_value > 0, floats["value_max"], np.nan)
    for j, c in enumerate(features.numeric):
        out[f"mean_{c}"] = extras_mean[:, j]
    recent = age < 30
    for c, col in enumerate(features.categorical):
        tokens = vocabs[col].tokens
        last30 = np.zeros((n, len(tokens)), dtype=np.int64)
        np.add.at(last30, (owner[recent], t_ids[recent, c]), 1)
        category_count_columns(out, col, tokens, totals[c], last30)
    days_since_columns(out, action_last, vocabs["action"].tokens)
    last_rows = np.cumsum(lengths) - 1
    out["last_action"] = categorical[last_rows, 0]
    out["last_channel"] = categorical[last_rows, features.categorical.index("channel")]
    out["stage_now"] = summary.get_column("stage").to_numpy()
    aggregates = aggregate_table(out, n, features.aggregate_names(vocabs))
    return model_inputs(customer_id, cutoff, lengths, categorical, numeric, summary, aggregates, vocabs, features)


__all__ = ["sequences_at", "tail_days"]
