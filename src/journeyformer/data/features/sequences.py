"""Events -> model-ready per-customer sequences at a cutoff, with Polars.

For each customer with an event at or before the cutoff we keep the most recent ``max_len``
events in time order (ties keep input order) and store them ragged: flat event arrays plus
offsets, so memory is proportional to real events, not to ``customers x max_len``. Padding
happens per batch (:func:`journeyformer.data.features.batch.pad`), after length bucketing.

How: the events up to cutoff + horizon are sorted once by (customer_id, timestamp, _row) (a
cheap check when they already are, as ``load_events`` leaves them); one Polars select gives the
per-event vocabulary ids and action flags; each customer's rows are then a contiguous range, so
the features (:mod:`journeyformer.data.features.definitions`), the history summary and the
labels (:func:`journeyformer.data.labels.lifecycle.customer_table`) are NumPy reductions over
those ranges (:func:`sequences_of`), and truncation to ``max_len`` is a slice.

This module needs only Polars and NumPy (the ONNX predictor uses it without torch).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from journeyformer.data.events.order import ROW, sort_events
from journeyformer.data.events.timestamps import epoch_micros
from journeyformer.data.features.aggregates import aggregate_features, context_transform
from journeyformer.data.features.definitions import (
    ITEM,
    FeatureConfig,
    context_features,
    numeric_event_features,
)
from journeyformer.data.features.vocab import PAD_ID, UNK_ID, Vocabularies
from journeyformer.data.labels.lifecycle import (
    LabelConfig,
    LabelWindow,
    _is_in,
    as_utc,
    customer_table,
    flag_actions,
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
        lengths = self.lengths[index]
        rows = ragged_rows(self.offsets[:-1][index], lengths)
        return Sequences(
            customer_id=self.customer_id.gather(index),
            offsets=_offsets(lengths),
            summary=self.summary[index],
            labels=None if self.labels is None else {k: v[index] for k, v in self.labels.items()},
            unknown_counts=dict(self.unknown_counts),
            **{k: getattr(self, k)[rows] for k in _PER_EVENT},
            **{k: getattr(self, k)[index] for k in _PER_SAMPLE},
        )

    @staticmethod
    def concat(parts: Sequence[Sequences]) -> Sequences:
        if not parts:
            raise ValueError("nothing to concatenate: no samples were built")
        unknown: Counter[str] = Counter()
        for p in parts:
            unknown.update(p.unknown_counts)
        labelled = all(p.labels is not None for p in parts)
        return Sequences(
            customer_id=pl.concat([p.customer_id for p in parts]),
            offsets=_offsets(np.concatenate([p.lengths for p in parts])),
            summary=pl.concat([p.summary for p in parts]),
            labels={k: np.concatenate([p.labels[k] for p in parts]) for k in parts[0].labels} if labelled else None,
            unknown_counts=dict(unknown),
            **{k: np.concatenate([getattr(p, k) for p in parts]) for k in (*_PER_EVENT, *_PER_SAMPLE)},
        )


# The array fields of Sequences with a row per kept event, and with a row per sample.
_PER_EVENT = ("categorical", "numeric")
_PER_SAMPLE = ("cutoff", "stage_now", "context", "aggregates")


def _offsets(lengths: np.ndarray) -> np.ndarray:
    """(N + 1,) int64 offsets of samples with ``lengths`` events each."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def ragged_rows(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + n)`` for each (s, n), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    within = np.arange(total, dtype=np.int64) - np.repeat(ends - lengths, lengths)
    return np.repeat(starts, lengths) + within


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
    missing = [c for c in needed if c not in lf.collect_schema()]
    if missing:
        raise ConfigError(
            f"{source}: events lack column(s) {missing}; build_sequences takes the canonical frame "
            "from load_events (check data.extra_categorical / data.extra_numeric)"
        )
    no_vocab = [c for c in features.categorical if c not in vocabs]
    if no_vocab:
        raise ConfigError(f"{source}: no vocabulary for categorical column(s) {no_vocab}")
    if customers is not None:
        lf = lf.filter(pl.col("customer_id").is_in(customers.implode()))
    lf = lf.filter(pl.col("timestamp") <= pl.lit(end, pl.Datetime("us", "UTC")))
    frame = sort_events(lf.select(needed).collect())
    ts = pl.col("timestamp")
    local = ts
    if features.time_zone != "UTC":
        local = ts.dt.convert_time_zone(features.time_zone).dt.replace_time_zone(None)
    coded = coded_columns(features)
    cols = frame.select(
        *[_encode(c, vocabs).alias(f"{c}__id") for c in coded],
        *[_is_in("action", actions).alias(f"{k}__flag") for k, actions in flag_actions(labels).items()],
        ts.dt.epoch("us").alias("_ts"),
        local.dt.epoch("us").alias("_local"),
    )
    ids = {c: cols.get_column(f"{c}__id").to_numpy() for c in coded}
    flags = {k: cols.get_column(f"{k}__flag").to_numpy() for k in flag_actions(labels)}
    return sequences_of(
        frame, cutoff, vocabs, features, labels, ids, flags, cols.get_column("_ts").to_numpy(),
        cols.get_column("_local").to_numpy(), with_labels=with_labels, labelers=labelers,
        active_within_days=active_within_days, source=source,
    )  # fmt: skip


def coded_columns(features: FeatureConfig) -> tuple[str, ...]:
    """The columns whose vocabulary ids :func:`sequences_of` reads: the categorical features,
    and action and channel (the aggregates' last action and channel)."""
    return tuple(dict.fromkeys((*features.categorical, "action", "channel")))


def _encode(column: str, vocabs: Vocabularies) -> pl.Expr:
    """Vocabulary ids (Int64) of ``column``; an event without an item has item id 0 (padding:
    no item embedding, never a target), where other null categories are ``<null>`` values."""
    ids = vocabs[column].encode(column)
    if column == ITEM:
        return pl.when(pl.col(column).is_null()).then(pl.lit(PAD_ID, pl.Int64)).otherwise(ids)
    return ids


def sequences_of(
    frame: pl.DataFrame,
    cutoff: datetime,
    vocabs: Vocabularies,
    features: FeatureConfig,
    labels: LabelConfig,
    ids: Mapping[str, np.ndarray],
    flags: Mapping[str, np.ndarray],
    ts: np.ndarray,
    local_us: np.ndarray,
    *,
    with_labels: bool = False,
    labelers: Mapping[str, Callable[[LabelWindow], np.ndarray]] | None = None,
    active_within_days: float | None = None,
    source: str = "events",
) -> Sequences:
    """The one definition of the samples of sorted ``frame`` at ``cutoff``, from its per-event
    arrays: the batch path (:func:`build_sequences`, arrays from one Polars query) and the
    small-input path (:mod:`journeyformer.data.features.few`, arrays from Python lookups)
    differ only in how they find them.

    Args:
        frame: canonical events sorted by (customer_id, timestamp, _row), none after the
            cutoff (after cutoff + horizon ``with_labels``).
        ids: (E,) vocabulary ids of each :func:`coded_columns` column (item id 0 without one).
        flags: (E,) bool per :func:`~journeyformer.data.labels.lifecycle.flag_actions` key.
        ts, local_us: (E,) epoch microseconds, UTC and as wall-clock time in
            ``features.time_zone``.
    """
    summary, label_frame, split = customer_table(
        frame, cutoff, labels, (lambda rows: ids["action"][rows]) if with_labels else None, flags
    )
    n_history = summary.get_column("n_events").to_numpy().astype(np.int64)
    start = split - n_history
    first = np.zeros(frame.height, dtype=bool)
    first[start] = True
    keep = n_history > 0
    if active_within_days is not None:
        keep &= summary.get_column("recency_days").to_numpy() <= active_within_days
    if not keep.all():
        summary = summary.filter(pl.Series(keep))
    # Features of every row (gaps need the previous event even when it is dropped), then the
    # last ``max_len`` history rows of each kept customer; the aggregates read all of them.
    cut_us = epoch_micros(cutoff)
    amount = frame.get_column("amount").cast(pl.Float64).to_numpy()
    extras = {c: frame.get_column(c).cast(pl.Float64).to_numpy() for c in features.numeric}
    numeric = numeric_event_features(ts, local_us, first, cut_us, amount, extras, features)
    lengths = np.minimum(n_history[keep], features.max_len)
    rows = ragged_rows(split[keep] - lengths, lengths)
    history = ragged_rows(start[keep], n_history[keep])
    aggregates = aggregate_features(
        ts[history], first[history], cut_us, {c: v[history] for c, v in ids.items()},
        {k: v[history] for k, v in flags.items()}, amount[history],
        {c: x[history] for c, x in extras.items()}, summary, vocabs, features.aggregate_categorical,
        features.numeric,
    )  # fmt: skip
    categorical = np.stack([ids[c][rows] for c in features.categorical], axis=1).astype(np.int32)
    seq = model_inputs(
        summary.get_column("customer_id"), cutoff, lengths, categorical, numeric[rows], summary,
        aggregates, vocabs, features,
    )  # fmt: skip
    if seq.unknown_counts:
        log.info("%s: values unseen in training mapped to <unk> (kept events): %s", source, seq.unknown_counts)
    if label_frame is not None:
        facts = label_facts(label_frame.filter(pl.Series(keep)))
        if labelers is None:
            seq.labels = facts
        else:
            # Each customer's rows end where the next one's begin: its label window is split:end.
            window_end = np.append(start[1:], frame.height).astype(np.int64)
            window = LabelWindow(frame, split[keep], window_end[keep], facts, labels, vocabs)
            seq.labels = {name: np.asarray(fn(window)) for name, fn in labelers.items()}
    return seq


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
    unknown = {
        c: int(m)
        for c, m in zip(features.categorical, (categorical == UNK_ID).sum(axis=0), strict=True)
        if m
    }
    return Sequences(
        customer_id=customer_id,
        cutoff=np.full(len(lengths), np.datetime64(as_utc(cutoff).replace(tzinfo=None), "us")),
        offsets=_offsets(lengths),
        categorical=np.ascontiguousarray(categorical),
        numeric=np.ascontiguousarray(numeric),
        stage_now=summary.get_column("stage").to_numpy().astype(np.int64),
        context=context,
        summary=summary,
        aggregates=aggregates,
        unknown_counts=unknown,
    )
