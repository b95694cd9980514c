"""Features: the one place to add one. Which columns are inputs, and how events become numbers.

Per event: the categorical columns as vocabulary ids and the numeric features
``EVENT_NUMERIC`` plus the extra numeric columns (:func:`numeric_event_features`). Per customer
(the model's context input): the history summary (``CONTEXT_NUMERIC``, :func:`context_features`)
or the aggregate table (:mod:`journeyformer.data.features.aggregates`). :class:`FeatureConfig`
says which, and how many events a sequence keeps. Adding a per-event feature is one column in
:func:`numeric_event_features` and its name in ``EVENT_NUMERIC`` (then bump the feature version
in :mod:`journeyformer.data.preprocessing`).

This module needs only Polars and NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from journeyformer.data.events.timestamps import check_time_zone
from journeyformer.data.features.aggregates import aggregate_names, context_names, signed_log1p
from journeyformer.data.features.vocab import Vocabularies
from journeyformer.errors import ConfigError

# Per-event numeric features, in this order, then the extra numeric columns (signed log1p).
EVENT_NUMERIC = ("log_amount", "log_gap", "log_age", "hour_sin", "hour_cos", "dow_sin", "dow_cos")
# Per-customer numeric features from the whole history (not only the kept events).
CONTEXT_NUMERIC = (
    "log_n_events",
    "log_spend",
    "log_n_purchases",
    "log_n_purchases_window",
    "log_tenure_days",
    "log_recency_days",
)
CONTEXTS = ("summary", "aggregates")
ITEM = "item"  # the item column (data.columns.item), when mapped the last categorical feature  # what the model's per-customer context input holds


@dataclass(frozen=True)
class FeatureConfig:
    """Which columns become features and how long sequences are.

    ``categorical`` lists the embedded columns, ``action`` first (it is also the next-action
    target), then ``channel``, any extras and, with ``data.columns.item``, ``item`` last (the
    next-item target; left out of the per-value aggregate counts). ``context`` is what the model sees of the whole
    history besides its last ``max_len`` events: ``summary`` (the six CONTEXT_NUMERIC columns)
    or ``aggregates`` (the numeric columns of :mod:`journeyformer.data.features.aggregates`, the same
    table the gradient-boosting baseline is fitted on).
    """

    max_len: int = 64
    categorical: tuple[str, ...] = ("action", "channel")
    numeric: tuple[str, ...] = ()  # extra numeric columns
    time_zone: str = "UTC"
    context: str = "summary"

    def __post_init__(self) -> None:
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "numeric", tuple(self.numeric))
        if self.max_len < 1:
            raise ConfigError(f"data.max_len must be >= 1, got {self.max_len}")
        if self.categorical[:1] != ("action",):
            raise ConfigError(f"categorical features start with 'action', got {self.categorical}")
        if len(set(self.categorical)) != len(self.categorical):
            raise ConfigError(f"categorical features must be distinct, got {self.categorical}")
        check_time_zone(self.time_zone, "data.time_zone")
        if self.context not in CONTEXTS:
            raise ValueError(f"data.context must be one of {CONTEXTS}, got {self.context!r}")

    @property
    def numeric_names(self) -> tuple[str, ...]:
        return (*EVENT_NUMERIC, *self.numeric)

    @property
    def has_item(self) -> bool:
        """The events carry an item (``data.columns.item``): the last categorical column."""
        return ITEM in self.categorical

    @property
    def aggregate_categorical(self) -> tuple[str, ...]:
        """The categorical columns counted per value in the aggregates: all but the item
        (one count column per item of a 50,000-item catalogue would swamp the table)."""
        return tuple(c for c in self.categorical if c != ITEM)

    def aggregate_names(self, vocabs: Vocabularies) -> tuple[str, ...]:
        """Columns of ``Sequences.aggregates`` (they depend on the vocabularies)."""
        return aggregate_names(vocabs, self.aggregate_categorical, self.numeric)

    def context_names(self, vocabs: Vocabularies) -> tuple[str, ...]:
        """Columns of ``Sequences.context``, the model's per-customer input."""
        if self.context == "summary":
            return CONTEXT_NUMERIC
        return context_names(self.aggregate_names(vocabs))

    @classmethod
    def from_config(cls, data_cfg: Mapping[str, Any]) -> FeatureConfig:
        return cls(
            max_len=int(data_cfg.get("max_len", 64)),
            categorical=(
                "action",
                "channel",
                *(data_cfg.get("extra_categorical") or ()),
                *([ITEM] if (data_cfg.get("columns") or {}).get(ITEM) else []),
            ),
            numeric=tuple(data_cfg.get("extra_numeric") or ()),
            time_zone=str(data_cfg.get("time_zone", "UTC")),
            context=str(data_cfg.get("context", "summary")),
        )



def _periodic(period: int) -> tuple[np.ndarray, np.ndarray]:
    """Float32 lookup tables of sin and cos over ``period`` equal steps of a circle."""
    angle = np.arange(period) * (2 * math.pi / period)
    return np.sin(angle).astype(np.float32), np.cos(angle).astype(np.float32)


_TABLES = {1440: _periodic(1440), 7: _periodic(7)}


def numeric_event_features(
    ts: np.ndarray,
    local_us: np.ndarray,
    first: np.ndarray,
    cut_us: int,
    amount: np.ndarray,
    extras: Mapping[str, np.ndarray],
    features: FeatureConfig,
) -> np.ndarray:
    """(E, F) float32 per-event numbers, columns ``features.numeric_names``: the one definition,
    which the batch and small-input paths (:func:`~journeyformer.data.features.sequences.sequences_of`)
    and the service feed.

    ``ts``: epoch microseconds (UTC) of events sorted by (customer, time); ``local_us`` the
    same instants as wall-clock microseconds in ``features.time_zone`` (``ts`` for UTC);
    ``first``: True at each customer's first row; ``amount``, ``extras``: float64 per event.
    ``log_gap`` (seconds since the customer's previous event, 0 for the first) and ``log_age``
    (seconds before the cutoff) are log1p(s) / 10 (about 0..1.7); ``log_amount`` and the extra
    columns are signed log1p; hour of day (to the minute) and day of week as sin/cos. Divisions
    by constants are products with their reciprocals, as Polars evaluates them (bit for bit
    the former Polars definition)."""
    gap_s = np.zeros(len(ts), dtype=np.float64)
    if len(ts) > 1:
        gap_s[1:] = (ts[1:] - ts[:-1]).astype(np.float64) * (1 / 1e6)
    age_s = (cut_us - ts).astype(np.float64) * (1 / 1e6)
    # NaN where the log's argument is below -1: a first row's gap (replaced here) and rows after
    # the cutoff (the batch path computes every row, then keeps those at or before the cutoff)
    with np.errstate(invalid="ignore"):
        log_gap = np.where(first, 0.0, np.log1p(gap_s) * (1 / 10))
        log_age = np.log1p(age_s) * (1 / 10)
    minute = (local_us // 60_000_000) % 1440
    weekday = (local_us // 86_400_000_000 + 3) % 7  # Monday = 0; 1970-01-01 was a Thursday
    hour_sin, hour_cos = _TABLES[1440]
    dow_sin, dow_cos = _TABLES[7]
    columns = [
        signed_log1p(amount).astype(np.float32),
        log_gap.astype(np.float32),
        log_age.astype(np.float32),
        hour_sin[minute],
        hour_cos[minute],
        dow_sin[weekday],
        dow_cos[weekday],
        *[signed_log1p(extras[c]).astype(np.float32) for c in features.numeric],
    ]
    return np.stack(columns, axis=1) if len(ts) else np.zeros((0, len(columns)), np.float32)


def context_features(summary: pl.DataFrame) -> np.ndarray:
    """(N, S) float32 log1p of the history summary, columns as CONTEXT_NUMERIC."""
    cols = ["n_events", "spend", "n_purchases", "n_purchases_window", "tenure_days", "recency_days"]
    return (
        summary.select([pl.col(c).cast(pl.Float64).clip(0).log1p().cast(pl.Float32) for c in cols])
        .to_numpy()
        .astype(np.float32, copy=False)
        .reshape(summary.height, len(cols))
    )
