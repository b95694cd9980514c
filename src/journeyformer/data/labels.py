"""Lifecycle rules, per-customer history summaries and the four labels at a cutoff.

Everything here is a function of events and a time ``at``: the summary at a cutoff uses only
events at or before it, and the labels use only events in ``(cutoff, cutoff + horizon]``
(plus the history up to ``cutoff + horizon`` for the stage there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from journeyformer.data.vocab import Vocab

STAGES = ("acquisition", "consideration", "first_purchase", "retention", "loyalty", "churned")
TASKS = ("next_action", "churn", "stage", "value")
_DAY_S = 86_400.0


@dataclass(frozen=True)
class LabelConfig:
    """What the labels mean. Action names are the data's own; days are calendar days.

    A customer's stage at time t, first rule that holds:
    churned (no activity for ``churned_after_days``), loyalty (``loyalty_min_purchases``
    purchases within ``loyalty_window_days``), retention (2+ purchases), first_purchase
    (exactly one), consideration (no purchase, an intent action), acquisition (otherwise).
    """

    horizon_days: float = 30.0
    purchase_actions: tuple[str, ...] = ("purchase",)
    intent_actions: tuple[str, ...] = ("product_view", "add_to_cart")
    activity_actions: tuple[str, ...] | None = None  # None: every action counts as activity
    value_actions: tuple[str, ...] = ("purchase",)
    churned_after_days: float = 60.0
    loyalty_min_purchases: int = 4
    loyalty_window_days: float = 90.0

    def __post_init__(self) -> None:
        for name in ("purchase_actions", "intent_actions", "value_actions", "activity_actions"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(str(v) for v in value))
        if self.horizon_days <= 0:
            raise ValueError(f"labels.horizon_days must be > 0, got {self.horizon_days}")
        if self.churned_after_days <= 0 or self.loyalty_window_days <= 0:
            raise ValueError("labels.churned_after_days and labels.loyalty_window_days must be > 0")
        if self.loyalty_min_purchases < 2:
            raise ValueError("labels.loyalty_min_purchases must be at least 2")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> LabelConfig:
        keys = cls.__dataclass_fields__
        values = {k: cfg[k] for k in keys if k in cfg and cfg[k] is not None}
        if "activity_actions" in cfg:
            values["activity_actions"] = cfg["activity_actions"]
        return cls(**values)

    @property
    def horizon(self) -> timedelta:
        return timedelta(days=self.horizon_days)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in ((k, getattr(self, k)) for k in self.__dataclass_fields__)
        }

    def check_actions(self, actions: Sequence[str], source: str) -> list[str]:
        """Warnings for configured action names that never occur in the data."""
        seen = set(actions)
        out = []
        for name in ("purchase_actions", "intent_actions", "value_actions", "activity_actions"):
            missing = [a for a in (getattr(self, name) or ()) if a not in seen]
            if missing:
                out.append(
                    f"{source}: labels.{name} {missing} never occur in column 'action' "
                    f"(seen e.g. {sorted(seen)[:8]}); set labels.{name} to your action names"
                )
        return out


def _is_in(col: str, values: Sequence[str] | None) -> pl.Expr:
    if values is None:
        return pl.lit(True)
    return pl.col(col).is_in(pl.Series(values, dtype=pl.String).implode())


def _days_before(at: datetime, col: str | pl.Expr) -> pl.Expr:
    expr = pl.col(col) if isinstance(col, str) else col
    return (pl.lit(at, pl.Datetime("us", "UTC")) - expr).dt.total_microseconds() / 1e6 / _DAY_S


def history_summary(events: pl.LazyFrame, at: datetime, cfg: LabelConfig) -> pl.LazyFrame:
    """One row per customer with an event at or before ``at``.

    Columns: customer_id, n_events, spend (value-action amount), n_purchases,
    n_purchases_window (within ``loyalty_window_days`` before ``at``), has_intent,
    first_ts, last_ts, last_activity_ts (null when no activity), tenure_days, recency_days
    (days since last activity, or since the first event if there was none), stage (Int64 index
    into STAGES).
    """
    at_lit = pl.lit(at, pl.Datetime("us", "UTC"))
    window_start = pl.lit(at - timedelta(days=cfg.loyalty_window_days), pl.Datetime("us", "UTC"))
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


def stage_expr(cfg: LabelConfig) -> pl.Expr:
    """The lifecycle rules over :func:`history_summary` columns -> index into STAGES."""
    index = {name: i for i, name in enumerate(STAGES)}
    return (
        pl.when(pl.col("recency_days") >= cfg.churned_after_days)
        .then(index["churned"])
        .when(pl.col("n_purchases_window") >= cfg.loyalty_min_purchases)
        .then(index["loyalty"])
        .when(pl.col("n_purchases") >= 2)
        .then(index["retention"])
        .when(pl.col("n_purchases") == 1)
        .then(index["first_purchase"])
        .when(pl.col("has_intent"))
        .then(index["consideration"])
        .otherwise(index["acquisition"])
        .cast(pl.Int64)
    )


def window_labels(
    events: pl.LazyFrame, cutoff: datetime, cfg: LabelConfig, action_vocab: Vocab
) -> pl.LazyFrame:
    """Labels from events in (cutoff, cutoff + horizon], for customers with such events.

    Columns: customer_id, next_action (Int64 vocab id), value (Float64), active (Boolean).
    Customers without events in the window are absent; :func:`compute_labels` fills them.
    """
    start = pl.lit(cutoff, pl.Datetime("us", "UTC"))
    end = pl.lit(cutoff + cfg.horizon, pl.Datetime("us", "UTC"))
    window = events.filter((pl.col("timestamp") > start) & (pl.col("timestamp") <= end))
    # arg_min takes the first of tied timestamps, i.e. input order (events are in _row order).
    return window.group_by("customer_id").agg(
        action_vocab.encode(pl.col("action").get(pl.col("timestamp").arg_min())).alias(
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
