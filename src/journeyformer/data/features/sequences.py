"""Events -> model-ready per-customer sequences at a cutoff, with Polars.

For each customer with an event at or before the cutoff we keep the most recent ``max_len``
events in time order (ties keep input order) and store them ragged: flat event arrays plus
offsets, so memory is proportional to real events, not to ``customers x max_len``. Padding
happens per batch (:func:`journeyformer.data.features.batch.pad`), after length bucketing.

How: the events up to cutoff + horizon are sorted once by (customer_id, timestamp, _row) (a
cheap check when they already are, as ``load_events`` leaves them); Polars computes the
per-event features in one select (:mod:`journeyformer.data.features.definitions`); each customer's rows are then a contiguous range, so the
history summary and the labels are NumPy reductions over those ranges
(:func:`journeyformer.data.labels.lifecycle.customer_table`), and truncation to ``max_len`` is a slice.

This module needs only Polars and NumPy (the ONNX predictor uses it without torch).
"""


from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from journeyformer.data.events.order import ROW, sort_events
from journeyformer.data.features.aggregates import aggregate_features, context_transform
from journeyformer.data.features.definitions import FeatureConfig, context_features, event_features
from journeyformer.data.features.vocab import UNK_ID, Vocabularies
from journeyformer.data.labels.lifecycle import (
    LabelConfig,
    LabelWindow,
    _is_in,
    _micros,
    as_utc,
    customer_table,
    label_facts,
)
from journeyformer.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Sequences:
    """Ragged sequences for N samples (a customer at a cutoff) with E kept events in all.

    Attributes:
        customer_id: (N,) Polars Series, the input's dtype.
        cutoff: (N,) datetime64[us], UTC.
        offsets: (N + 1,) int64; sample i owns flat rows ``offsets[i]:offsets[i + 1]``.
        categorical: (E, C) int32 vocabulary ids, columns as ``FeatureConfig.categorical``.
        numeric: (E, F) float32, columns as ``FeatureConfig.numeric_names``.
        stage_now: (N,) int64 lifecycle stage at the cutoff (index into STAGES).
        context: (N, S) float32, columns as ``FeatureConfig.context_names``.
        summary: N-row Polars frame from :func:`history_summary` (recency_days, spend, ...).
        aggregates: (N, K) float32, columns as ``FeatureConfig.aggregate_names`` (the
            gradient-boosting baseline's features; see :mod:`journeyformer.data.features.aggregates`).
        labels: task -> (N,) label array, or None (see ``build_sequences(labelers=...)``).
    """

    customer_id: pl.Series
    cutoff: np.ndarray
    offsets: np.ndarray
    categorical: np.ndarray
    numeric: np.ndarray
    stage_now: np.ndarray
    context: np.ndarray
    summary: pl.DataFrame
    aggregates: np.ndarray
    labels: dict[str, np.ndarray] | None = None
    unknown_counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """(N,) int64 number of kept events per sample (1..max_len)."""
        return np.diff(self.offsets)

    @property
    def n_events(self) -> int:
        return int(self.offsets[-1])

    def take(self, index: np.ndarray) -> Sequences:
        """The samples at ``index`` (in that order), as a new compact Sequences."""
        index = np.asarray(index, dtype=np.int64)
        starts, lengths = self.offsets[:-1][index], self.lengths[index]
        rows = ragged_rows(starts, lengths)
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Sequences(
            customer_id=self.customer_id.gather(index),
            cutoff=self.cutoff[index],
            offsets=offsets,
            categorical=self.categorical[rows],
            numeric=self.numeric[rows],
            stage_now=self.stage_now[index],
            context=self.context[index],
            summary=self.summary[index],
            aggregates=self.aggregates[index],
            labels=None if self.labels is None else {k: v[index] for k, v in self.labels.items()},
            unknown_counts=dict(self.unknown_counts),
        )

    @staticmethod
    def concat(parts: Sequence[Sequences]) -> Sequences:
        if not parts:
            raise ValueError("nothing to concatenate: no samples were built")
        sizes = np.array([p.n_events for p in parts])
        shifts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        offsets = np.concatenate(
            [[0]] + [p.offsets[1:] + s for p, s in zip(parts, shifts, strict=True)]
        )
        has_labels = all(p.labels is not None for p in parts)
        unknown: dict[str, int] = {}
        for p in parts:
            for k, v in p.unknown_counts.items():
                unknown[k] = unknown.get(k, 0) + v
        return Sequences(
            customer_id=pl.concat([p.customer_id for p in parts]),
            cutoff=np.concatenate([p.cutoff for p in parts]),
            offsets=offsets.astype(np.int64),
            categorical=np.concatenate([p.categorical for p in parts]),
            numeric=np.concatenate([p.numeric for p in parts]),
            stage_now=np.concatenate([p.stage_now for p in parts]),
            context=np.concatenate([p.context for p in parts]),
            summary=pl.concat([p.summary for p in parts]),
            aggregates=np.concatenate([p.aggregates for p in parts]),
            labels=(
                {k: np.concatenate([p.labels[k] for p in parts]) for k in parts[0].labels}
                if has_labels
                else None
            ),
            unknown_counts=unknown,
        )


def ragged_rows(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + n)`` for each (s, n), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    within = np.arange(total, dtype=np.int64) - np.repeat(ends - lengths, lengths)
    return np.repeat(starts, lengths) + within


def _check_columns(
    schema: pl.Schema,
    needed: Sequence[str],
    categorical: Sequence[str],
    vocabs: Vocabularies,
    source: str,
) -> None:
    missing = [c for c in needed if c not in schema]
    if missing:
        raise ConfigError(
            f"{source}: events lack column(s) {missing}; build_sequences takes the canonical frame "
            "from load_events (check data.extra_categorical / data.extra_numeric)"
        )
    no_vocab = [c for c in categorical if c not in vocabs]
    if no_vocab:
        raise ConfigError(f"{source}: no vocabulary for categorical column(s) {no_vocab}")


def build_sequences(
    events: pl.DataFrame | pl.LazyFrame,
    cutoff: datetime,
    vocabs: Vocabularies,
    features: FeatureConfig,
    labels: LabelConfig,
    *,
    customers: pl.Series | None = None,
    active_within_days: float | None = None,
    with_labels: bool = True,
    labelers: Mapping[str, Callable[[LabelWindow], np.ndarray]] | None = None,
    source: str = "events",
) -> Sequences:
    """Sequences (and labels) for every customer with an event at or before ``cutoff``.

    Args:
        events: canonical events (see :mod:`journeyformer.data.events.schema`); any row order, though
            frames from ``load_events`` are already sorted and skip the sort. Without a ``_row``
            column, the frame's row order breaks timestamp ties.
        cutoff: datetime (naive means UTC); features use events at or before it only.
        customers: restrict to these customer ids (e.g. one split).
        active_within_days: keep only customers active within this many days before cutoff.
        with_labels: also build labels from events in (cutoff, cutoff + horizon].
        labelers: label name -> function of the :class:`LabelWindow` (the tasks' ``label``
            methods); None: the label facts (next_action, churn, stage, value) themselves.
    Returns samples sorted by customer_id. ``unknown_counts`` counts kept events whose value
    was not in the vocabulary (mapped to id 1), per column.
    """
    cutoff = as_utc(cutoff)
    end = cutoff + labels.horizon if with_labels else cutoff
    lf = events.lazy()
    if ROW not in lf.collect_schema():
        lf = lf.with_row_index(ROW)
    needed = ["customer_id", "timestamp", "action", "amount", ROW]
    needed += [c for c in (*features.categorical, *features.numeric) if c not in needed]
    _check_columns(lf.collect_schema(), needed, features.categorical, vocabs, source)
    if customers is not None:
        lf = lf.filter(pl.col("customer_id").is_in(customers.implode()))
    lf = lf.filter(pl.col("timestamp") <= pl.lit(end, pl.Datetime("us", "UTC")))
    frame = sort_events(lf.select(needed).collect())

    def next_action(rows: np.ndarray) -> np.ndarray:
        actions = frame.select(pl.col("action").gather(rows))
        return actions.select(vocabs["action"].encode("action")).to_series().to_numpy()

    summary, label_frame, split = customer_table(
        frame, cutoff, labels, next_action if with_labels else None
    )
    n_history = summary.get_column("n_events").to_numpy().astype(np.int64)
    keep = n_history > 0
    # Each customer's rows end where the next one's begin: its label window is split:end.
    window_end = np.append((split - n_history)[1:], frame.height).astype(np.int64)
    if active_within_days is not None:
        keep &= summary.get_column("recency_days").to_numpy() <= active_within_days
    summary = summary.filter(pl.Series(keep))
    lengths = np.minimum(
        summary.get_column("n_events").to_numpy().astype(np.int64), features.max_len
    )
    # Features for every row (gaps need the previous event even when it is dropped), then the
    # last ``max_len`` history rows of each kept customer.
    flat = event_features(frame, cutoff, features, vocabs)
    rows = ragged_rows(split[keep] - lengths, lengths)
    if len(rows) < flat.height:
        chosen = np.zeros(flat.height, dtype=bool)
        chosen[rows] = True
        flat = flat.filter(pl.Series(chosen))
    aggregates = _aggregates(frame, split[keep] - n_history[keep], n_history[keep], cutoff, vocabs, features, labels, summary)
    seq = model_inputs(
        summary.get_column("customer_id"),
        cutoff,
        lengths,
        _as_array(flat, [f"{c}__id" for c in features.categorical], np.int32),
        _as_array(flat, features.numeric_names, np.float32),
        summary,
        aggregates,
        vocabs,
        features,
    )
    if seq.unknown_counts:
        log.info(
            "%s: values unseen in training mapped to <unk> (kept events): %s",
            source,
            seq.unknown_counts,
        )
    if label_frame is not None:
        facts = label_facts(label_frame.filter(pl.Series(keep)))
        if labelers is None:
            seq.labels = facts
        else:
            window = LabelWindow(frame, split[keep], window_end[keep], facts, labels, vocabs)
            seq.labels = {name: np.asarray(fn(window)) for name, fn in labelers.items()}
    return seq


def _aggregates(
    frame: pl.DataFrame,
    starts: np.ndarray,
    lengths: np.ndarray,
    cutoff: datetime,
    vocabs: Vocabularies,
    features: FeatureConfig,
    labels: LabelConfig,
    summary: pl.DataFrame,
) -> np.ndarray:
    """:func:`~journeyformer.data.features.aggregates.aggregate_features` over each kept customer's
    whole history (rows ``starts[k]`` to ``starts[k] + lengths[k]`` of the sorted ``frame``),
    the arrays prepared by Polars in one query."""
    rows = ragged_rows(starts, lengths)
    first = np.zeros(len(rows), dtype=bool)
    first[np.cumsum(lengths) - lengths] = True  # every kept customer has history
    coded = sorted({*features.aggregate_categorical, "action", "channel"})
    cols = frame.select(
        pl.col("timestamp").dt.epoch("us").alias("_ts"),
        pl.col("amount").cast(pl.Float64).alias("_amount"),
        _is_in("action", labels.purchase_actions).alias("_purchase"),
        _is_in("action", labels.value_actions).alias("_value"),
        *[vocabs[c].encode(c).alias(f"_id_{c}") for c in coded],
        *[pl.col(c).cast(pl.Float64).alias(f"_x_{c}") for c in features.numeric],
    )[rows]
    return aggregate_features(
        cols.get_column("_ts").to_numpy(),
        first,
        _micros(cutoff),
        {c: cols.get_column(f"_id_{c}").to_numpy() for c in coded},
        {"purchase": cols.get_column("_purchase").to_numpy(), "value": cols.get_column("_value").to_numpy()},
        cols.get_column("_amount").to_numpy(),
        {c: cols.get_column(f"_x_{c}").to_numpy() for c in features.numeric},
        summary,
        vocabs,
        features.aggregate_categorical,
        features.numeric,
    )


def _as_array(frame: pl.DataFrame, columns: Sequence[str], dtype: type) -> np.ndarray:
    """(rows, len(columns)) C-ordered array."""
    out = frame.select(columns).to_numpy(order="c")
    return np.ascontiguousarray(out.astype(dtype, copy=False).reshape(frame.height, len(columns)))


def model_inputs(
    customer_id: pl.Series,
    cutoff: datetime,
    lengths: np.ndarray,
    categorical: np.ndarray,
    numeric: np.ndarray,
    summary: pl.DataFrame,
    aggregates: np.ndarray,
    vocabs: Vocabularies,
    features: FeatureConfig,
) -> Sequences:
    """The :class:`Sequences` of N customers from their kept event rows (``lengths`` each, in
    order) and customer tables: context, offsets and the counts of unseen values. The one
    assembly of the batch path (:func:`build_sequences`), the small-input path
    (:mod:`journeyformer.data.features.few`) and the service's state (:mod:`journeyformer.service`)."""
    if features.context == "summary":
        context = context_features(summary)
    else:
        context = context_transform(aggregates, features.aggregate_names(vocabs))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    unknown = {
        c: int(m)
        for c, m in zip(features.categorical, (categorical == UNK_ID).sum(axis=0), strict=True)
        if m
    }
    return Sequences(
        customer_id=customer_id,
        cutoff=np.full(len(lengths), np.datetime64(as_utc(cutoff).replace(tzinfo=None), "us")),
        offsets=offsets,
        categorical=np.ascontiguousarray(categorical),
        numeric=np.ascontiguousarray(numeric),
        stage_now=summary.get_column("stage").to_numpy().astype(np.int64),
        context=context,
        summary=summary,
        aggregates=aggregates,
        unknown_counts=unknown,
    )
