"""Sequences of a few customers without Polars queries: the Python API's small-input path.

:func:`journeyformer.data.features.sequences.build_sequences` plans several Polars queries per call: the
right trade for a million customers, but for one customer's twenty events the planning is most
of the time. :func:`few_sequences` finds the per-event arrays (vocabulary ids, action flags)
with small Python lookups and hands them to the batch path's own evaluator of every feature,
:func:`journeyformer.data.features.sequences.sequences_of` (shared with the service's
per-customer state through its parts). ``tests/unit/test_sequences_numpy.py`` compares every
field with the batch path.

Applies when :func:`applies` says so (event features in UTC); the caller falls back to
:func:`~journeyformer.data.features.sequences.build_sequences` otherwise. Needs only Polars and NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from journeyformer.data.events.timestamps import epoch_micros
from journeyformer.data.features.definitions import ITEM, FeatureConfig
from journeyformer.data.features.sequences import (
    Sequences,
    build_sequences,
    coded_columns,
    sequences_of,
)
from journeyformer.data.features.vocab import PAD_ID, UNK_ID, Vocabularies
from journeyformer.data.labels.lifecycle import LabelConfig, as_utc, flag_actions


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
    ts = events.get_column("timestamp").cast(pl.Int64).to_numpy()  # epoch us (cast: no query plan)
    kept = ts <= epoch_micros(cutoff)
    if not kept.all():
        events = events.filter(pl.Series(kept))
        ts = ts[kept]
    if len(ts) == 0:  # nobody has history: the Polars path's empty Sequences
        return build_sequences(events, cutoff, vocabs, features, labels, with_labels=False, source=source)
    actions = events.get_column("action").to_list()
    ids = {
        c: _vocab_ids(actions if c == "action" else events.get_column(c).to_list(), vocabs[c].tokens)
        for c in coded_columns(features)
    }
    if features.has_item:  # an event without an item has item id 0 (padding), as in sequences.py
        ids[ITEM][events.get_column(ITEM).is_null().to_numpy()] = PAD_ID
    flags = {k: _per_value(actions, frozenset(a).__contains__, bool) for k, a in flag_actions(labels).items()}
    return sequences_of(events, cutoff, vocabs, features, labels, ids, flags, ts, ts, source=source)


def _vocab_ids(values: list, tokens: tuple[str, ...]) -> np.ndarray:
    """(E,) int64 vocabulary ids as :meth:`journeyformer.data.features.vocab.Vocab.encode` gives them:
    known tokens (never the literal ``<pad>``/``<unk>``) by index, anything else 1."""
    index = {t: i for i, t in enumerate(tokens) if i >= 2}
    return _per_value(values, lambda v: index.get(v, UNK_ID), np.int64)


def _per_value(values: list, fn: Callable[[Any], Any], dtype: type) -> np.ndarray:
    """(E,) ``fn`` of each value, called once per distinct value."""
    local: dict = {}
    codes = np.fromiter((local.setdefault(v, len(local)) for v in values), np.int64, len(values))
    return np.asarray([fn(v) for v in local], dtype=dtype)[codes]


__all__ = ["applies", "few_sequences"]
