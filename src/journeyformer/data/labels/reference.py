"""Reference implementations of the history summary and the labels, used only by the tests and
benchmarks/bench_sequences.py: plain Polars definitions for events in any order, against
which the one-pass :func:`journeyformer.data.labels.lifecycle.customer_table` is checked."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from journeyformer.data.events.order import ROW
from journeyformer.data.events.timestamps import UTC_US
from journeyformer.data.features.vocab import Vocab
from journeyformer.data.labels.lifecycle import STAGES, LabelConfig, _days_before, _is_in, as_utc


def stage_expr(cfg: LabelConfig) -> pl.Expr:
    """The lifecycle rules over :func:`history_summary` columns -> index into STAGES."""
    rules = [
        ("churned", pl.col("recency_days") >= cfg.churned_after_days),
        ("loyalty", pl.col("n_purchases_window") >= cfg.loyalty_min_purchases),
        ("retention", pl.col("n_purchases") >= 2),
        ("first_purchase", pl.col("n_purchases") == 1),
        ("consideration", pl.col("has_intent")),
    ]
    stage = pl.lit(STAGES.index("acquisition"))
    for name, holds in reversed(rules):  # the first rule that holds
        stage = pl.when(holds).then(STAGES.index(name)).otherwise(stage)
    return stage.cast(pl.Int64)


def history_summary(events: pl.LazyFrame, at: datetime, cfg: LabelConfig) -> pl.LazyFrame:
    """One row per customer with an event at or before ``at`` (in no particular order).

    Columns: customer_id, n_events, spend (value-action amount), n_purchases,
    n_purchases_window (within ``loyalty_window_days`` before ``at``), has_intent,
    first_ts, last_ts, last_activity_ts (null when no activity), tenure_days, recency_days
    (days since last activity, or since the first event if there was none), stage (Int64 index
    into STAGES).
    """
    at = as_utc(at)
    at_lit = pl.lit(at, UTC_US)
    window_start = pl.lit(at - timedelta(days=cfg.loyalty_window_days), UTC_US)
    purchase = _is_in("action", cfg.purchase_actions)
    activity = _is_in("action", cfg.activity_actions)
    summary = (
        events.filter(pl.col("timestamp") <= at_lit)
        .group_by("customer_id")
        .agg(
            pl.len().alias("n_events"),
            pl.col("amount").filter(_is_in("action", cfg.value_actions)).sum().alias("spend"),
            purchase.sum().alias("n_purchases"),
            (purchase & (pl.col("timestamp") > window_start)).sum().alias("n_purchases_window"),
            _is_in("action", cfg.intent_actions).any().alias("has_intent"),
            pl.col("timestamp").min().alias("first_ts"),
            pl.col("timestamp").max().alias("last_ts"),
            pl.col("timestamp").filter(activity).max().alias("last_activity_ts"),
        )
        .with_columns(
            _days_before(at, "first_ts").alias("tenure_days"),
            _days_before(at, pl.coalesce("last_activity_ts", "first_ts")).alias("recency_days"),
        )
    )
    return summary.with_columns(stage_expr(cfg).alias("stage"))


def window_labels(
    events: pl.LazyFrame, cutoff: datetime, cfg: LabelConfig, action_vocab: Vocab
) -> pl.LazyFrame:
    """Labels from events in (cutoff, cutoff + horizon], for customers with such events.

    Columns: customer_id, next_action (Int64 vocab id of the first event, ties broken by input
    order ``_row``), value (Float64), active (Boolean). Customers without events in the window
    are absent; :func:`compute_labels` fills them.
    """
    cutoff = as_utc(cutoff)
    start = pl.lit(cutoff, UTC_US)
    end = pl.lit(cutoff + cfg.horizon, UTC_US)
    window = events.filter((pl.col("timestamp") > start) & (pl.col("timestamp") <= end))
    order = ["timestamp", ROW] if ROW in events.collect_schema() else ["timestamp"]
    return window.group_by("customer_id").agg(
        action_vocab.encode(pl.col("action").sort_by(order, maintain_order=True).first()).alias(
            "next_action"
        ),
        pl.col("amount").filter(_is_in("action", cfg.value_actions)).sum().alias("value"),
        _is_in("action", cfg.activity_actions).any().alias("active"),
    )


def compute_labels(
    events: pl.LazyFrame,
    cutoff: datetime,
    cfg: LabelConfig,
    action_vocab: Vocab,
    customers: pl.LazyFrame,
) -> pl.LazyFrame:
    """The four labels at ``cutoff`` for ``customers`` (a frame with a customer_id column).

    Columns: customer_id, next_action (null when no event in the horizon), churn (Int8: 1 when
    no activity in the horizon), stage (Int64 index into STAGES at cutoff + horizon), value
    (Float64: value-action amount in the horizon, currency units).
    """
    cutoff = as_utc(cutoff)
    later = history_summary(events, cutoff + cfg.horizon, cfg).select(
        "customer_id", pl.col("stage").alias("stage_label")
    )
    window = window_labels(events, cutoff, cfg, action_vocab)
    return (
        customers.select("customer_id")
        .join(window, on="customer_id", how="left", maintain_order="left")
        .join(later, on="customer_id", how="left", maintain_order="left")
        .select(
            "customer_id",
            "next_action",
            (~pl.col("active").fill_null(False)).cast(pl.Int8).alias("churn"),
            pl.col("stage_label").alias("stage"),
            pl.col("value").fill_null(0.0),
        )
    )
