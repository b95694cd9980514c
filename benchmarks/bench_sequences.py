"""Events -> model-ready arrays and labels for one cutoff: journeyformer (Polars) vs pandas.

Generates ``--events`` synthetic events for ``--customers`` customers, writes them to a temporary
Parquet file, then times, on the same file and in the same run:

  polars  ``load_events`` (read + validate) + ``build_sequences(..., with_labels=True)``
  pandas  a straightforward pandas version of the same work: read, sort, per-event features,
          last ``max_len`` events per customer, history summary, the four labels

checks that both give the same arrays (floats to 1e-5), and prints events/s (input events per
second of wall time) for each and the ratio. Our path runs once to warm up and then ``--repeat``
times, pandas ``--pandas-repeat`` times; best and median are shown, since a shared machine makes
single timings noisy. The vocabularies (built on events up to the cutoff, as training would) are
made beforehand and are not timed. The pandas version skips the validation that
``load_events`` does (types, null keys, duplicates), which favours pandas.

    python benchmarks/bench_sequences.py                       # 10M events, 500k customers
    python benchmarks/bench_sequences.py --events 1000000 --customers 50000 --repeat 1
    python benchmarks/bench_sequences.py --shuffle             # input not in customer/time order
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from journeyformer.data.events.load import load_events
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.features.definitions import FeatureConfig
from journeyformer.data.features.sequences import Sequences, build_sequences
from journeyformer.data.features.vocab import Vocabularies
from journeyformer.data.labels.lifecycle import IGNORE_INDEX, STAGES, LabelConfig
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_journeys

SCHEMA = EventSchema(extra_categorical=("device",), extra_numeric=("items",))
FEATURES = FeatureConfig(
    max_len=64, categorical=("action", "channel", "device"), numeric=("items",)
)
LABELS = LabelConfig()
# Events per customer over the generator's year at intensity 1 (about 50; slightly low on
# purpose, so one generation gives enough events).
EVENTS_PER_CUSTOMER_AT_1 = 48.0


def make_events(n_events: int, n_customers: int, seed: int) -> pl.DataFrame:
    """Exactly ``n_events`` synthetic events of exactly ``n_customers`` customers.

    The generator gives a few more events than asked; a random subset of everything but each
    customer's first event is dropped (keeping customer/time order).
    """
    if n_events < n_customers:
        raise ValueError(f"need at least one event per customer: {n_events} < {n_customers}")
    intensity = 1.05 * n_events / n_customers / EVENTS_PER_CUSTOMER_AT_1
    for _ in range(5):
        events = generate_journeys(
            SyntheticConfig(n_customers=n_customers, seed=seed, intensity=intensity)
        ).events
        if events.height >= n_events:
            break
        intensity *= 1.2 * n_events / events.height
    else:
        raise RuntimeError(f"could not generate {n_events} events")
    first = (pl.col("customer_id") != pl.col("customer_id").shift(1)).fill_null(True)
    is_first = events.select(first).to_series().to_numpy()
    rest = np.flatnonzero(~is_first)
    rng = np.random.default_rng(seed)
    drop = rng.choice(rest, events.height - n_events, replace=False)
    keep = np.ones(events.height, dtype=bool)
    keep[drop] = False
    return events.filter(pl.Series(keep))


# --- pandas: the same work, written the obvious way ---------------------------------------------


def _signed_log1p(x: pd.Series) -> np.ndarray:
    return np.sign(x.to_numpy()) * np.log1p(np.abs(x.to_numpy()))


def _summary_pandas(events: pd.DataFrame, at: pd.Timestamp, cfg: LabelConfig) -> pd.DataFrame:
    """history_summary at ``at`` for customers with events at or before it (index customer_id)."""
    ev = events[events["timestamp"] <= at]
    window_start = at - pd.Timedelta(days=cfg.loyalty_window_days)
    purchase = ev["action"].isin(cfg.purchase_actions)
    activity = (
        ev["action"].isin(cfg.activity_actions)
        if cfg.activity_actions is not None
        else pd.Series(True, index=ev.index)
    )
    frame = pd.DataFrame(
        {
            "customer_id": ev["customer_id"],
            "spend": ev["amount"].where(ev["action"].isin(cfg.value_actions), 0.0),
            "purchase": purchase,
            "purchase_window": purchase & (ev["timestamp"] > window_start),
            "intent": ev["action"].isin(cfg.intent_actions),
            "ts": ev["timestamp"],
            "activity_ts": ev["timestamp"].where(activity),
        }
    )
    g = frame.groupby("customer_id", sort=True)
    out = pd.DataFrame(
        {
            "n_events": g.size(),
            "spend": g["spend"].sum(),
            "n_purchases": g["purchase"].sum(),
            "n_purchases_window": g["purchase_window"].sum(),
            "has_intent": g["intent"].any(),
            "first_ts": g["ts"].min(),
            "last_ts": g["ts"].max(),
            "last_activity_ts": g["activity_ts"].max(),
        }
    )
    out["tenure_days"] = (at - out["first_ts"]).dt.total_seconds() / 86_400
    recency_from = out["last_activity_ts"].fillna(out["first_ts"])
    out["recency_days"] = (at - recency_from).dt.total_seconds() / 86_400
    out["stage"] = np.select(
        [
            out["recency_days"] >= cfg.churned_after_days,
            out["n_purchases_window"] >= cfg.loyalty_min_purchases,
            out["n_purchases"] >= 2,
            out["n_purchases"] == 1,
            out["has_intent"],
        ],
        [
            STAGES.index(s)
            for s in ("churned", "loyalty", "retention", "first_purchase", "consideration")
        ],
        default=STAGES.index("acquisition"),
    )
    return out


def pandas_pipeline(path: Path, cutoff: datetime, vocabs: Vocabularies) -> dict[str, np.ndarray]:
    cfg, features = LABELS, FEATURES
    cut = pd.Timestamp(cutoff)
    end = cut + pd.Timedelta(days=cfg.horizon_days)
    events = pd.read_parquet(path)
    events["_row"] = np.arange(len(events))
    events = events[events["timestamp"] <= end]
    events = events.sort_values(["customer_id", "timestamp", "_row"], kind="stable")
    events = events.reset_index(drop=True)

    # per-event features on the history (gaps use the previous event of the same customer)
    hist = events[events["timestamp"] <= cut].copy()
    first = hist["customer_id"].ne(hist["customer_id"].shift())
    gap_s = hist["timestamp"].diff().dt.total_seconds().where(~first, 0.0)
    local = hist["timestamp"].dt.tz_convert(features.time_zone)
    hour = (local.dt.hour + local.dt.minute / 60.0) * (2 * math.pi / 24)
    dow = local.dt.day_of_week * (2 * math.pi / 7)
    for name in features.categorical:
        index = vocabs[name].index
        hist[f"{name}__id"] = hist[name].map(index).fillna(1).astype(np.int64)
        hist.loc[hist[f"{name}__id"] < 2, f"{name}__id"] = 1
    hist["log_amount"] = _signed_log1p(hist["amount"])
    hist["log_gap"] = np.log1p(gap_s) / 10
    hist["log_age"] = np.log1p((cut - hist["timestamp"]).dt.total_seconds()) / 10
    hist["hour_sin"], hist["hour_cos"] = np.sin(hour), np.cos(hour)
    hist["dow_sin"], hist["dow_cos"] = np.sin(dow), np.cos(dow)
    for name in features.numeric:
        hist[name] = _signed_log1p(hist[name])
    kept = hist.groupby("customer_id", sort=False).tail(features.max_len)
    lengths = kept.groupby("customer_id", sort=True).size().to_numpy()

    summary = _summary_pandas(events, cut, cfg)
    later = _summary_pandas(events, end, cfg)
    window = events[(events["timestamp"] > cut) & (events["timestamp"] <= end)]
    wg = window.groupby("customer_id", sort=True)
    next_action = wg["action"].first().map(vocabs["action"].index).fillna(1)
    value = window["amount"].where(window["action"].isin(cfg.value_actions), 0.0)
    activity = (
        window["action"].isin(cfg.activity_actions)
        if cfg.activity_actions is not None
        else pd.Series(True, index=window.index)
    )
    labels = pd.DataFrame(index=summary.index)
    labels["next_action"] = next_action.reindex(summary.index).fillna(IGNORE_INDEX)
    labels["churn"] = 1.0 - activity.groupby(window["customer_id"]).any().reindex(
        summary.index, fill_value=False
    )
    labels["stage"] = later["stage"].reindex(summary.index)
    labels["value"] = (
        value.groupby(window["customer_id"]).sum().reindex(summary.index, fill_value=0.0)
    )

    context_cols = [
        "n_events",
        "spend",
        "n_purchases",
        "n_purchases_window",
        "tenure_days",
        "recency_days",
    ]
    return {
        "customer_id": summary.index.to_numpy(),
        "lengths": lengths,
        "categorical": kept[[f"{c}__id" for c in features.categorical]].to_numpy(np.int32),
        "numeric": kept[list(features.numeric_names)].to_numpy(np.float32),
        "stage_now": summary["stage"].to_numpy(np.int64),
        "context": np.log1p(summary[context_cols].astype(float).clip(lower=0)).to_numpy(np.float32),
        "next_action": labels["next_action"].to_numpy(np.int64),
        "churn": labels["churn"].to_numpy(np.float32),
        "stage": labels["stage"].to_numpy(np.int64),
        "value": labels["value"].to_numpy(np.float32),
    }


# --- ours -------------------------------------------------------------------------------------


def polars_pipeline(path: Path, cutoff: datetime, vocabs: Vocabularies) -> Sequences:
    events = load_events(path, SCHEMA)
    return build_sequences(events, cutoff, vocabs, FEATURES, LABELS, with_labels=True)


def as_arrays(seqs: Sequences) -> dict[str, np.ndarray]:
    assert seqs.labels is not None
    return {
        "customer_id": seqs.customer_id.to_numpy(),
        "lengths": seqs.lengths,
        "categorical": seqs.categorical,
        "numeric": seqs.numeric,
        "stage_now": seqs.stage_now,
        "context": seqs.context,
        **seqs.labels,
    }


def check_same(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    for name, expected in theirs.items():
        got = ours[name]
        assert got.shape == expected.shape, f"{name}: shape {got.shape} != {expected.shape}"
        if np.issubdtype(expected.dtype, np.floating):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(got, expected, err_msg=name)


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=500_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs of our path (best is reported)"
    )
    parser.add_argument("--pandas-repeat", type=int, default=1)
    parser.add_argument(
        "--shuffle", action="store_true", help="write the events in random row order"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    events = make_events(args.events, args.customers, args.seed)
    if args.shuffle:
        events = events.sample(fraction=1.0, shuffle=True, seed=args.seed)
    last = events.get_column("timestamp").max()
    cutoff = (last - timedelta(days=LABELS.horizon_days)).astimezone(timezone.utc)
    vocabs = Vocabularies.build(events.filter(pl.col("timestamp") <= cutoff), FEATURES.categorical)
    order = "shuffled rows" if args.shuffle else "rows in customer/time order (as generated)"
    print(
        f"data: {events.height:,} events, {events.get_column('customer_id').n_unique():,} "
        f"customers, {order}; generated in {time.perf_counter() - start:.1f} s"
    )
    print(
        f"work: cutoff {cutoff:%Y-%m-%d %H:%M} UTC, horizon {LABELS.horizon_days:g} days, "
        f"max_len {FEATURES.max_len}, features {list(FEATURES.categorical)} + "
        f"{list(FEATURES.numeric_names)}, labels next_action/churn/stage/value"
    )
    print(
        f"machine: {os.cpu_count()} cores, polars {pl.__version__} "
        f"({pl.thread_pool_size()} threads), pandas {pd.__version__}, numpy {np.__version__}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.parquet"
        events.write_parquet(path)
        del events
        polars_pipeline(path, cutoff, vocabs)  # warm-up: first touch of memory, lazy imports
        ours, seqs = timed(lambda: polars_pipeline(path, cutoff, vocabs), args.repeat)
        theirs, expected = timed(lambda: pandas_pipeline(path, cutoff, vocabs), args.pandas_repeat)
    check_same(as_arrays(seqs), expected)
    print(
        f"same arrays: yes ({len(seqs):,} samples, {seqs.n_events:,} kept events; categorical "
        f"{seqs.categorical.shape}, numeric {seqs.numeric.shape}, context {seqs.context.shape})"
    )
    n = args.events
    for name, times in (("polars (journeyformer)", ours), ("pandas", theirs)):
        best, median = min(times), statistics.median(times)
        print(
            f"{name:<22} best {best:6.2f} s -> {n / best / 1e6:5.2f} M events/s   "
            f"median {median:6.2f} s -> {n / median / 1e6:5.2f} M events/s   ({len(times)} runs)"
        )
    ratio_best = min(theirs) / min(ours)
    ratio_median = statistics.median(theirs) / statistics.median(ours)
    print(f"ratio: {ratio_best:.1f}x faster than pandas (best), {ratio_median:.1f}x (median)")


if __name__ == "__main__":
    main()
