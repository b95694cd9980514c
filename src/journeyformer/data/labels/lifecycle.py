"""Lifecycle rules, per-customer history summaries and the four labels at a cutoff.

Everything here is a function of events and a time ``at``: the summary at a cutoff uses only
events at or before it, and the labels use only events in ``(cutoff, cutoff + horizon]``
(plus the history up to ``cutoff + horizon`` for the stage there).

:func:`customer_table` computes the summary and the label facts in one pass over events sorted
by (customer_id, timestamp, _row); :func:`~journeyformer.data.features.sequences.build_sequences` uses
it. The plain Polars definitions of the same columns, for events in any order, are the
reference implementations in :mod:`journeyformer.data.labels.reference` (used by the tests and
the benchmark only); the tests check that both give the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import polars as pl

from journeyformer.data.events.timestamps import UTC_US, epoch_micros
from journeyformer.errors import ConfigError

STAGES = ("acquisition", "consideration", "first_purchase", "retention", "loyalty", "churned")
ITEM_TARGETS = ("next", "basket")
IGNORE_INDEX = -100  # next_action label when there is no event in the horizon
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
    # The next-item target (data.columns.item only): "next", the first catalogue item after
    # the cutoff, or "basket", the set of catalogue items in the horizon (up to basket_size,
    # in time order). item_actions: the events whose item counts (None: every event with an
    # item). item_exclude_seen: rank only items the customer has not had (None: the target's
    # default, true for next, false for basket, where repeat purchase matters).
    item_target: str = "next"
    item_actions: tuple[str, ...] | None = None
    item_exclude_seen: bool | None = None
    basket_size: int = 20

    def __post_init__(self) -> None:
        for name in ("purchase_actions", "intent_actions", "value_actions", "activity_actions", "item_actions"):
            value = getattr(self, name)
            if isinstance(value, str):  # a single name written without brackets
                value = (value,)
            if value is not None:
                object.__setattr__(self, name, tuple(str(v) for v in value))
        if self.horizon_days <= 0:
            raise ConfigError(f"labels.horizon_days must be > 0, got {self.horizon_days}")
        if self.churned_after_days <= 0 or self.loyalty_window_days <= 0:
            raise ConfigError("labels.churned_after_days and labels.loyalty_window_days must be > 0")
        if self.loyalty_min_purchases < 2:
            raise ConfigError("labels.loyalty_min_purchases must be at least 2")
        if self.item_target not in ITEM_TARGETS:
            raise ConfigError(f"labels.item_target={self.item_target!r} is not one of {list(ITEM_TARGETS)}")
        if self.basket_size < 1:
            raise ConfigError(f"labels.basket_size must be >= 1, got {self.basket_size}")

    @property
    def exclude_seen(self) -> bool:
        """Whether next items exclude the customer's own (``item_exclude_seen`` or the
        target's default: true for next, false for basket)."""
        if self.item_exclude_seen is not None:
            return bool(self.item_exclude_seen)
        return self.item_target == "next"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> LabelConfig:
        keys = cls.__dataclass_fields__
        values = {k: cfg[k] for k in keys if k in cfg and cfg[k] is not None}
        for key in ("activity_actions", "item_actions", "item_exclude_seen"):  # null is a value
            if key in cfg:
                values[key] = cfg[key]
        return cls(**values)

    @property
    def horizon(self) -> timedelta:
        return timedelta(days=self.horizon_days)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

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


SUMMARY_COLUMNS = (
    "customer_id", "n_events", "spend", "n_purchases", "n_purchases_window", "has_intent",
    "first_ts", "last_ts", "last_activity_ts", "tenure_days", "recency_days", "stage",
)  # fmt: skip


def as_utc(t: datetime) -> datetime:
    """Aware UTC datetime; naive input is taken as UTC."""
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _is_in(col: str, values: Sequence[str] | None) -> pl.Expr:
    if values is None:
        return pl.col(col).is_not_null() | pl.col(col).is_null()  # every row, as a column
    return pl.col(col).is_in(pl.Series(values, dtype=pl.String).implode())


def _days_before(at: datetime, col: str | pl.Expr) -> pl.Expr:
    expr = pl.col(col) if isinstance(col, str) else col
    return (pl.lit(as_utc(at), UTC_US) - expr).dt.total_microseconds() / 1e6 / _DAY_S


# --- One pass over sorted events: the summary at the cutoff and the labels together. ---------

_NO_TIME = np.iinfo(np.int64).min


class _Segments:
    """Per-customer row ranges of a frame sorted by (customer_id, timestamp, _row).

    Customer k owns rows ``start[k]:end[k]``; ``split[k]`` is its first row after the cutoff,
    so its history is rows ``start:split`` and its label window rows ``split:end``.
    """

    def __init__(self, new: np.ndarray, ts: np.ndarray, cutoff_us: int) -> None:
        self.n = len(ts)
        self.start = np.flatnonzero(new)
        self.end = np.append(self.start[1:], self.n).astype(np.int64)
        n_history = (
            np.add.reduceat(ts <= cutoff_us, self.start, dtype=np.int64)
            if self.n
            else np.zeros(0, dtype=np.int64)
        )
        self.split = self.start + n_history
        self._bounds = np.empty(2 * len(self.start), dtype=np.int64)
        self._bounds[0::2], self._bounds[1::2] = self.start, self.split

    def reduce(
        self, values: np.ndarray, ufunc: np.ufunc = np.add, empty: Any = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """``ufunc`` over each customer's history rows and over its window rows, ``empty``
        for a range without rows. Booleans are counted (as int64)."""
        dtype = np.int64 if values.dtype == bool and ufunc is np.add else None
        if self.n == 0:
            nothing = np.zeros(0, dtype=dtype or values.dtype)
            return nothing, nothing
        # reduceat: ranges between consecutive bounds, the last one to the end; bounds < n.
        out = ufunc.reduceat(values, np.minimum(self._bounds, self.n - 1), dtype=dtype)
        history, window = out[0::2].copy(), out[1::2].copy()
        if self.split[-1] == self.n:  # the last customer's history was cut short by the clip
            history[-1] = ufunc.reduce(values[self.start[-1] :], dtype=dtype)
        history[self.split == self.start] = empty
        window[self.end == self.split] = empty
        return history, window


def _days(cut_us: int, micros: np.ndarray) -> np.ndarray:
    """Days from ``micros`` to the cutoff, bit for bit as Polars evaluates
    ``total_microseconds() / 1e6 / 86400`` (multiplying by the reciprocals; the aggregates and
    the reference definitions use that expression)."""
    return (cut_us - micros).astype(np.float64) * (1 / 1e6) * (1 / _DAY_S)


def _masked(name: str, values: np.ndarray, valid: np.ndarray, dtype: pl.DataType = UTC_US) -> pl.Series:
    """``values`` as ``dtype`` (epoch microseconds: times), null where not ``valid``."""
    out = pl.Series(name, values).cast(dtype)
    return out if valid.all() else out.scatter(np.flatnonzero(~valid), None)


def summary_frame(
    customer_id: pl.Series,
    cutoff: datetime,
    labels: LabelConfig,
    n_events: np.ndarray,
    spend: np.ndarray,
    n_purchases: np.ndarray,
    n_window: np.ndarray,
    n_intent: np.ndarray,
    first_ts: np.ndarray,
    last: np.ndarray,
    activity: np.ndarray,
) -> pl.DataFrame:
    """The history summary (:data:`SUMMARY_COLUMNS`) from its per-customer reductions (arrays
    of N; times in epoch microseconds, ``activity`` ``_NO_TIME`` for none): recency, tenure
    and the lifecycle stage (the first rule of :class:`LabelConfig` that holds). The one
    definition of the summary and the stage rules, used by :func:`customer_table` and the
    service's per-customer state (:mod:`journeyformer.service.features`). A customer without
    history at the cutoff (``n_events`` 0) has null times, tenure and recency."""
    cut_us = epoch_micros(cutoff)
    has = n_events > 0
    has_activity = activity != _NO_TIME
    recency = np.where(has, _days(cut_us, np.where(has_activity, activity, first_ts)), np.nan)
    tenure = np.where(has, _days(cut_us, first_ts), np.nan)
    rules = {
        "churned": recency >= labels.churned_after_days,
        "loyalty": n_window >= labels.loyalty_min_purchases,
        "retention": n_purchases >= 2,
        "first_purchase": n_purchases == 1,
        "consideration": n_intent > 0,
    }
    stage = np.select(list(rules.values()), [STAGES.index(k) for k in rules], STAGES.index("acquisition"))
    return pl.DataFrame(
        [
            customer_id.alias("customer_id"),
            pl.Series("n_events", n_events, dtype=pl.UInt32),
            pl.Series("spend", spend, dtype=pl.Float64),
            pl.Series("n_purchases", n_purchases, dtype=pl.UInt32),
            pl.Series("n_purchases_window", n_window, dtype=pl.UInt32),
            pl.Series("has_intent", n_intent > 0, dtype=pl.Boolean),
            _masked("first_ts", first_ts, has),
            _masked("last_ts", last, has),
            _masked("last_activity_ts", activity, has_activity & has),
            pl.Series("tenure_days", tenure, dtype=pl.Float64, nan_to_null=True),
            pl.Series("recency_days", recency, dtype=pl.Float64, nan_to_null=True),
            pl.Series("stage", stage, dtype=pl.Int64),
        ]
    )


def customer_table(
    events: pl.DataFrame,
    cutoff: datetime,
    cfg: LabelConfig,
    next_action_ids: Callable[[np.ndarray], np.ndarray] | None = None,
    flags: Mapping[str, np.ndarray] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame | None, np.ndarray]:
    """Summary at ``cutoff`` and labels, in one pass over sorted events.

    Args:
        events: canonical events sorted by (customer_id, timestamp, _row), none after
            cutoff + horizon (none after the cutoff is enough when no labels are wanted).
        next_action_ids: row indices -> action vocabulary ids; labels are built when given.
        flags: the events' :func:`action_flags`, when the caller has them (the small-input
            path finds them without a Polars query).
    Returns:
        summary: one row per customer in ``events``, sorted, columns as :func:`history_summary`
            (n_events 0 for a customer whose events all lie after the cutoff).
        labels: the :func:`compute_labels` columns for the same rows, or None.
        split: (N,) int64, each customer's first row after the cutoff; its history rows are
            ``split - n_events : split``.
    """
    cutoff = as_utc(cutoff)
    later_at = cutoff + cfg.horizon
    ts = events.get_column("timestamp").to_physical().to_numpy()
    cid = events.get_column("customer_id")
    seg = _Segments(first_rows(cid), ts, epoch_micros(cutoff))
    customer_id = cid.gather(seg.start)
    flags = action_flags(events, cfg) if flags is None else flags
    purchase = flags["purchase"]
    n_history = seg.split - seg.start
    spend, value = seg.reduce(np.where(flags["value"], events.get_column("amount").cast(pl.Float64).to_numpy(), 0.0))
    n_purchases, purchases_after = seg.reduce(purchase)
    n_intent, intent_after = seg.reduce(flags["intent"])
    last_history = np.where(
        n_history > 0, ts[np.maximum(seg.split - 1, 0)] if len(ts) else 0, _NO_TIME
    )
    last_window = np.where(seg.end > seg.split, ts[seg.end - 1] if len(ts) else 0, _NO_TIME)
    if cfg.activity_actions is None:
        activity, activity_after = last_history, last_window
    else:
        active_ts = np.where(flags["activity"], ts, _NO_TIME)
        activity, activity_after = seg.reduce(active_ts, np.maximum, _NO_TIME)

    def in_loyalty_window(at: datetime) -> np.ndarray:
        start_us = epoch_micros(at - timedelta(days=cfg.loyalty_window_days))
        return purchase & (ts > start_us)

    first_ts = ts[seg.start] if len(ts) else np.zeros(0, dtype=np.int64)
    summary = summary_frame(
        customer_id, cutoff, cfg, n_history, spend, n_purchases,
        seg.reduce(in_loyalty_window(cutoff))[0], n_intent, first_ts, last_history, activity,
    )  # fmt: skip
    if next_action_ids is None:
        return summary, None, seg.split
    later = summary_frame(
        customer_id, later_at, cfg, seg.end - seg.start, spend + value, n_purchases + purchases_after,
        sum(seg.reduce(in_loyalty_window(later_at))), n_intent + intent_after, first_ts,
        np.maximum(last_history, last_window), np.maximum(activity, activity_after),
    )  # fmt: skip
    has_next = seg.end > seg.split
    first_after = np.zeros(len(has_next), dtype=np.int64)
    first_after[has_next] = next_action_ids(seg.split[has_next])
    labels = pl.DataFrame(
        {
            "customer_id": customer_id,
            "next_action": _masked("next_action", first_after, has_next, pl.Int64),
            "churn": pl.Series(activity_after == _NO_TIME, dtype=pl.Int8),
            "stage": later.get_column("stage"),
            "value": pl.Series(value, dtype=pl.Float64),
        }
    )
    return summary, labels, seg.split


def samples_at(
    events: pl.DataFrame | pl.LazyFrame, cutoff: datetime, cfg: LabelConfig, active_within_days: float | None
) -> int:
    """The samples the sequence builder makes of ``events`` at ``cutoff``: customers with an
    event by then whose last activity (``recency_days``, as :func:`customer_table` has it) is
    within ``active_within_days`` (None: all). A few streaming aggregates."""
    at = as_utc(cutoff)
    lf = events.lazy().filter(pl.col("timestamp") <= pl.lit(at, UTC_US))
    if active_within_days is None:
        return int(lf.select(pl.col("customer_id").n_unique()).collect(engine="streaming").item())
    ts = pl.col("timestamp")
    activity = ts if cfg.activity_actions is None else ts.filter(_is_in("action", cfg.activity_actions))
    last = lf.group_by("customer_id").agg(pl.coalesce(activity.max(), ts.min()).alias("last"))
    recent = last.filter(_days_before(at, "last") <= active_within_days)
    return int(recent.select(pl.len()).collect(engine="streaming").item())


def first_rows(cid: pl.Series) -> np.ndarray:
    """(E,) bool, True at each customer's first row of sorted events."""
    if cid.dtype.is_integer():
        ids = cid.to_numpy()
        new = np.empty(len(ids), dtype=bool)
        new[:1] = True
        np.not_equal(ids[1:], ids[:-1], out=new[1:])
        return new
    return (cid != cid.shift(1)).fill_null(True).to_numpy()


def flag_actions(cfg: LabelConfig) -> dict[str, tuple[str, ...]]:
    """The per-event flags and the actions that raise them: purchase, intent, value and, when
    ``activity_actions`` are set, activity."""
    sets = {"purchase": cfg.purchase_actions, "intent": cfg.intent_actions, "value": cfg.value_actions}
    return sets if cfg.activity_actions is None else {**sets, "activity": cfg.activity_actions}


def action_flags(events: pl.DataFrame, cfg: LabelConfig) -> dict[str, np.ndarray]:
    """(E,) bool per :func:`flag_actions` key: whether each event's action is one of them."""
    flags = events.select(_is_in("action", actions).alias(k) for k, actions in flag_actions(cfg).items())
    return {name: flags.get_column(name).to_numpy() for name in flags.columns}


@dataclass(frozen=True)
class LabelWindow:
    """What a task's label function reads: every sample's events after its cutoff.

    Attributes:
        events: canonical events sorted by (customer_id, timestamp, _row), up to cutoff +
            horizon (more customers than the samples).
        start, end: (N,) int64 row range of each sample's window, (cutoff, cutoff + horizon].
        facts: the label facts of :func:`compute_labels` for the N samples, as arrays:
            next_action int64 (IGNORE_INDEX without an event in the horizon), churn float32
            (1 = no activity in the horizon), stage int64 (index into STAGES at cutoff +
            horizon), value float32 (value-action amount in the horizon, currency units).
        cfg: the label settings.
        vocabs: the vocabularies the samples are encoded with (labels over a vocabulary,
            such as the next item, use them; None where nothing needs them).
    """

    events: pl.DataFrame
    start: np.ndarray
    end: np.ndarray
    facts: Mapping[str, np.ndarray]
    cfg: LabelConfig
    vocabs: Mapping[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.start)

    def window_sum(self, expr: pl.Expr) -> np.ndarray:
        """(N,) sum of ``expr`` (numeric or boolean, one value per event) over each window.

        Example: purchases in the horizon,
        ``window.window_sum(pl.col("action").is_in(window.cfg.purchase_actions))``.
        """
        values = self.events.select(expr.cast(pl.Float64)).to_series().to_numpy()
        cum = np.concatenate([[0.0], np.cumsum(values)])
        return cum[self.end] - cum[self.start]


def label_facts(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """The :func:`customer_table` label columns as the arrays of :class:`LabelWindow.facts`."""
    facts = {"next_action": frame.get_column("next_action").fill_null(IGNORE_INDEX).to_numpy().astype(np.int64)}
    for name, dtype in (("churn", np.float32), ("stage", np.int64), ("value", np.float32)):
        facts[name] = frame.get_column(name).to_numpy().astype(dtype)
    return facts
