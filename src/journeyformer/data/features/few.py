"""Sequences of a few customers without Polars queries: the Python API's small-input path.

:func:`journeyformer.data.features.sequences.build_sequences` plans several Polars queries per call: the
right trade for a million customers, but for one customer's twenty events the planning is most
of the time. :func:`few_sequences` prepares the same arrays with NumPy (vocabulary ids and
action flags through small Python lookups) and calls the one definition of each feature that
the batch path calls too: the history summary and stage
(:func:`journeyformer.data.labels.lifecycle.customer_table`), the per-event features
(:func:`journeyformer.data.features.definitions.numeric_event_features`) and the aggregates
(:func:`journeyformer.data.features.aggregates.aggregate_features`); then the same
:class:`~journeyformer.data.features.sequences.Sequences` through the batch path's own
assembly (:func:`~journeyformer.data.features.sequences.model_inputs`, shared with the service).
``tests/unit/test_sequences_numpy.py`` compares every field with the batch path.

Applies when :func:`applies` says so (event features in UTC); the caller falls back to
:func:`~journeyformer.data.features.sequences.build_sequences` otherwise. Needs only Polars and NumPy.
"""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
import polars as pl

from journeyformer.data.features.aggregates import aggregate_features
from journeyformer.data.features.definitions import (
    FeatureConfig,
    numeric_event_features,
)
from journeyformer.data.features.sequences import (
    Sequences,
    build_sequences,
    model_inputs,
    ragged_rows,
)
from journeyformer.data.features.vocab import PAD_ID, UNK_ID, Vocabularies
from journeyformer.data.labels.lifecycle import (
    LabelConfig,
    _micros,
    as_utc,
    customer_table,
    first_rows,
)

log = logging.getLogger(__name__)

_DAY_S = 86_400.0


def applies(features: FeatureConfig) -> bool:
    """Whether :func:`few_sequences` computes these features (local time other than UTC: no,
    its daylight-saving rules are Polars')."""
    return features.time_zone == "UTC"


def few_sequences(
    events: pl.DataFrame,
    cutoff: datetime,
    vocabs: Vocabularies,
    features: FeatureConfig,
    labels: LabelConfig,
    source: str = "events",
) -> Sequences:
    """What ``build_sequences(events, cutoff, ..., with_labels=False)`` returns, in NumPy.

    Args:
        events: canonical events sorted by (customer_id, timestamp, _row), as
            :func:`journeyformer.data.events.validate.validate` returns them.
        cutoff: datetime (naive means UTC); only events at or before it are read.
    Returns one sample per customer with an event at or before ``cutoff``, sorted by
    customer_id.
    """
    if not applies(features):
        raise ValueError(f"few_sequences: time_zone {features.time_zone!r} is not UTC")
    cutoff = as_utc(cutoff)
    cut_us = _micros(cutoff)
    ts = events.get_column("timestamp").cast(pl.Int64).to_numpy()  # epoch us (cast: no query plan)
    kept = ts <= cut_us
    if not kept.all():
        events = events.filter(pl.Series(kept))
        ts = ts[kept]
    if len(ts) == 0:  # nobody has history: the Polars path's empty Sequences
        return build_sequences(events, cutoff, vocabs, features, labels, with_labels=False, source=source)
    cid = events.get_column("customer_id")
    n_rows = len(ts)
    first = first_rows(cid)
    start = np.flatnonzero(first)
    end = np.append(start[1:], n_rows).astype(np.int64)
    n_events = end - start

    actions = events.get_column("action").to_list()
    flags = _action_flags(actions, labels)
    ids = {c: _encode(actions if c == "action" else events.get_column(c).to_list(), vocabs[c].tokens) for c in features.categorical}
    if features.has_item:  # an event without an item has item id 0 (padding), as in features.py
        ids["item"][events.get_column("item").is_null().to_numpy()] = PAD_ID
    amount = events.get_column("amount").to_numpy().astype(np.float64, copy=False)
    extras = {c: events.get_column(c).to_numpy().astype(np.float64, copy=False) for c in features.numeric}

    # The summary and stage as the batch path computes them, from flags found without Polars.
    summary = customer_table(events, cutoff, labels, flags={**flags, "value": np.where(flags["value"], amount, 0.0)})[0]
    lengths = np.minimum(n_events, features.max_len)
    rows = ragged_rows(end - lengths, lengths)
    numeric = numeric_event_features(ts, ts, first, cut_us, amount, extras, features)[rows]
    categorical = np.stack([ids[c] for c in features.categorical], axis=1)[rows].astype(np.int32)
    aggregates = aggregate_features(
        ts, first, cut_us, ids, flags, amount, extras, summary, vocabs, features.aggregate_categorical, features.numeric
    )
    seqs = model_inputs(summary.get_column("customer_id"), cutoff, lengths, categorical, numeric, summary, aggregates, vocabs, features)
    if seqs.unknown_counts:
        log.info("%s: values unseen in training mapped to <unk> (kept events): %s", source, seqs.unknown_counts)
    return seqs


def _encode(values: list, tokens: tuple[str, ...]) -> np.ndarray:
    """(E,) int64 vocabulary ids as :meth:`journeyformer.data.features.vocab.Vocab.encode` gives them:
    known tokens (never the literal ``<pad>``/``<unk>``) by index, anything else 1."""
    local: dict = {}
    codes = np.fromiter((local.setdefault(v, len(local)) for v in values), np.int64, len(values))
    index = {t: i for i, t in enumerate(tokens) if i >= 2}
    return np.asarray([index.get(v, UNK_ID) for v in local], dtype=np.int64)[codes] if local else codes


def _action_flags(actions: list, labels: LabelConfig) -> dict[str, np.ndarray]:
    """Per event: purchase, intent, value (a value action) and activity, as bools."""
    local: dict = {}
    codes = np.fromiter((local.setdefault(a, len(local)) for a in actions), np.int64, len(actions))
    uniq = list(local)
    sets = {
        "purchase": set(labels.purchase_actions),
        "intent": set(labels.intent_actions),
        "value": set(labels.value_actions),
        "activity": None if labels.activity_actions is None else set(labels.activity_actions),
    }
    return {
        k: (np.ones(len(actions), bool) if s is None else np.asarray([a in s for a in uniq], bool)[codes] if uniq else np.zeros(0, bool))
        for k, s in sets.items()
    }


__all__ = ["applies", "few_sequences"]
