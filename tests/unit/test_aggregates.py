"""Aggregate features: values on hand-made journeys, and no event after the cutoff leaks in."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import polars as pl
from support import event_frame

from journeyformer.data.features.aggregates import CATEGORICAL_AGGREGATES, context_transform
from journeyformer.data.features.definitions import FeatureConfig
from journeyformer.data.features.sequences import build_sequences
from journeyformer.data.features.vocab import Vocabularies
from journeyformer.data.labels.lifecycle import LabelConfig

UTC = timezone.utc
CUTOFF = datetime(2025, 3, 1, tzinfo=UTC)
LABELS = LabelConfig(purchase_actions=("buy",), intent_actions=("cart",), value_actions=("buy",))


def frame(rows: list[tuple]) -> pl.DataFrame:
    return event_frame(rows, ("customer_id", "timestamp", "action", "amount", "channel"))


HISTORY = [
    (1, "2025-01-01 10:00", "view", 0.0, "web"),
    (1, "2025-02-10 10:00", "cart", 0.0, "app"),
    (1, "2025-02-25 10:00", "buy", 40.0, "app"),
    (1, "2025-02-28 10:00", "buy", 60.0, "web"),
    (2, "2025-02-27 00:00", "view", 0.0, "web"),
]
LATER = [
    (1, "2025-03-02 10:00", "buy", 999.0, "web"),
    (2, "2025-03-01 00:01", "cart", 0.0, "app"),
    (3, "2025-03-03 00:00", "view", 0.0, "web"),
]


def build(rows: list[tuple]):
    events = frame(rows)
    vocabs = Vocabularies.build(frame(HISTORY), ["action", "channel"])
    features = FeatureConfig(max_len=8, context="aggregates")
    seqs = build_sequences(events, CUTOFF, vocabs, features, LABELS)
    names = features.aggregate_names(vocabs)
    return seqs, {n: seqs.aggregates[:, i] for i, n in enumerate(names)}, names, features, vocabs


def test_values_by_hand():
    seqs, a, names, features, vocabs = build(HISTORY)
    assert seqs.customer_id.to_list() == [1, 2]
    np.testing.assert_allclose(a["n_events"], [4, 1])
    np.testing.assert_allclose(a["n_events_7d"], [2, 1])  # 02-25 and 02-28 within 7 days
    np.testing.assert_allclose(a["n_events_30d"], [3, 1])
    np.testing.assert_allclose(a["n_purchases_30d"], [2, 0])
    np.testing.assert_allclose(a["spend_7d"], [100.0, 0.0])
    np.testing.assert_allclose(a["spend"], [100.0, 0.0])
    np.testing.assert_allclose(a["purchase_amount_max"][:1], [60.0])
    assert np.isnan(a["purchase_amount_mean"][1])  # never bought
    np.testing.assert_allclose(a["days_since_action=buy"][:1], [1 - 10 / 24], rtol=1e-5)
    assert np.isnan(a["days_since_action=buy"][1])
    np.testing.assert_allclose(a["gap_max_days"][:1], [40.0], rtol=1e-5)  # 01-01 -> 02-10
    np.testing.assert_allclose(a["gap_last_days"][:1], [3.0], rtol=1e-5)
    assert np.isnan(a["gap_mean_days"][1])  # a single event has no gap
    np.testing.assert_allclose(a["n_channel=app"], [2, 0])
    np.testing.assert_allclose(a["n30_channel=web"], [1, 1])
    np.testing.assert_allclose(a["n_active_days"], [4, 1])
    ids = vocabs["action"].index
    assert a["last_action"].tolist() == [ids["buy"], ids["view"]]
    assert names[-len(CATEGORICAL_AGGREGATES) :] == CATEGORICAL_AGGREGATES
    # the model's context: the numeric columns, log-scaled, "never" below every real value
    assert seqs.context.shape == (2, len(features.context_names(vocabs)))
    assert np.isfinite(seqs.context).all() and seqs.context.min() == -1.0


def test_no_event_after_the_cutoff_changes_the_features():
    before, _, _, _, _ = build(HISTORY)
    after, _, _, _, _ = build(HISTORY + LATER)
    assert after.customer_id.to_list() == [1, 2]  # customer 3 has no history yet
    np.testing.assert_array_equal(before.aggregates, after.aggregates)
    np.testing.assert_array_equal(before.context, after.context)
    assert after.labels is not None and after.labels["value"][0] == 999.0  # labels do see them


def test_context_transform_keeps_order_and_sign():
    names = ("a", "b", *CATEGORICAL_AGGREGATES)
    x = np.array([[0.0, np.nan, 3, 1, 2], [9.0, -2.0, 3, 1, 2]], dtype=np.float32)
    out = context_transform(x, names)
    np.testing.assert_allclose(out, [[0.0, -1.0], [np.log1p(9.0), -np.log1p(2.0)]], rtol=1e-6)
