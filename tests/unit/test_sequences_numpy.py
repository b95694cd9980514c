"""The NumPy small-input path gives the Polars path's sequences, field by field, and validate's
one-query path gives the step-by-step result on clean input."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from journeyformer.data.events.load import load_events
from journeyformer.data.events.normalize import already_canonical, normalize
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.events.validate import _validate_steps, clean, validate
from journeyformer.data.features.definitions import FeatureConfig
from journeyformer.data.features.few import applies, few_sequences
from journeyformer.data.features.sequences import Sequences, build_sequences
from journeyformer.data.features.vocab import Vocabularies
from journeyformer.data.labels.lifecycle import LabelConfig

UTC = timezone.utc
SCHEMA = {"extra_categorical": ["device"], "extra_numeric": ["items"]}


def assert_same(a: Sequences, b: Sequences) -> None:
    """Every field equal: integers, ids and the summary exactly, floats to float32 rounding
    (another summation order may move the last bit of a float64 sum)."""
    assert_series_equal(a.customer_id, b.customer_id)
    for name in ("cutoff", "offsets", "categorical", "stage_now"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    for name in ("numeric", "context", "aggregates"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=name)
    assert_frame_equal(a.summary, b.summary)
    assert a.unknown_counts == b.unknown_counts and a.labels is None and b.labels is None


@pytest.fixture(scope="module")
def canonical(events_path) -> pl.DataFrame:
    return load_events(events_path, EventSchema.from_config(SCHEMA))


@pytest.mark.parametrize(
    ("context", "labels", "max_len"),
    [
        ("aggregates", {}, 64),
        ("summary", {}, 64),
        ("aggregates", {"activity_actions": ["purchase", "add_to_cart", "product_view"]}, 8),
        ("aggregates", {"value_actions": ["purchase", "refund"], "loyalty_window_days": 45.5}, 3),
    ],
)
def test_numpy_path_matches_the_polars_path_on_many_customers(canonical, context, labels, max_len):
    # Vocabularies from part of the data, so the rest has unseen values (<unk>) too.
    early = canonical.filter(pl.col("timestamp") < datetime(2025, 3, 1, tzinfo=UTC))
    vocabs = Vocabularies.build(early.head(3000), ["action", "channel", "device"])
    features = FeatureConfig(max_len, ("action", "channel", "device"), ("items",), "UTC", context)
    cfg = LabelConfig(**labels)
    n_customers = canonical["customer_id"].n_unique()
    assert n_customers >= 1000
    for cutoff in (datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 7, 15, 12, 30, tzinfo=UTC), datetime(2026, 6, 1)):
        slow = build_sequences(canonical, cutoff, vocabs, features, cfg, with_labels=False)
        fast = few_sequences(canonical, cutoff, vocabs, features, cfg)
        assert len(slow) > 100
        assert_same(slow, fast)
    # one customer, and a few, as a service sends them
    for ids in ([canonical["customer_id"][0]], canonical["customer_id"].unique().sort().head(7).to_list()):
        part = canonical.filter(pl.col("customer_id").is_in(ids))
        cutoff = datetime(2025, 9, 1, tzinfo=UTC)
        assert_same(build_sequences(part, cutoff, vocabs, features, cfg, with_labels=False), few_sequences(part, cutoff, vocabs, features, cfg))


def test_numpy_path_on_string_ids_pad_literals_ties_and_no_history():
    rows = {
        "customer_id": ["b", "a", "a", "b", "c", "a"],
        "timestamp": ["2025-01-02T10:00", "2025-01-01T00:00", "2025-01-01T00:00", "2025-01-03T23:59", "2025-05-01", "2025-02-01"],
        "action": ["purchase", "<pad>", "product_view", "<unk>", "purchase", "purchase"],
        "channel": ["web", "app", "app", None, "web", "web"],
        "amount": [10.0, None, 0.0, -3.0, 5.0, 7.5],
    }
    schema = EventSchema.from_config({})
    frame = validate(normalize(pl.DataFrame(rows).lazy(), schema, "t").collect(), schema, "t")
    vocabs = Vocabularies.from_dict({"action": ["<pad>", "<unk>", "purchase", "product_view"], "channel": ["<pad>", "<unk>", "web", "app"]})
    features = FeatureConfig(2, ("action", "channel"), (), "UTC", "aggregates")
    cutoff = datetime(2025, 3, 1, tzinfo=UTC)  # customer c has no history yet
    slow = build_sequences(frame, cutoff, vocabs, features, LabelConfig(), with_labels=False)
    fast = few_sequences(frame, cutoff, vocabs, features, LabelConfig())
    assert fast.customer_id.to_list() == ["a", "b"] and fast.unknown_counts == slow.unknown_counts != {}
    assert_same(slow, fast)
    early = datetime(2024, 1, 1, tzinfo=UTC)
    assert len(few_sequences(frame, early, vocabs, features, LabelConfig())) == 0 == len(build_sequences(frame, early, vocabs, features, LabelConfig(), with_labels=False))


def test_numpy_path_declines_local_time_features():
    assert applies(FeatureConfig(time_zone="UTC"))
    assert not applies(FeatureConfig(time_zone="Europe/Berlin"))
    with pytest.raises(ValueError, match="not UTC"):
        few_sequences(pl.DataFrame(), datetime(2025, 1, 1), Vocabularies(), FeatureConfig(time_zone="Europe/Berlin"), LabelConfig())


@pytest.mark.parametrize("duplicates", ["drop", "keep"])
def test_validate_in_one_query_equals_the_steps_on_clean_input(events_path, duplicates):
    schema = EventSchema.from_config({**SCHEMA, "duplicates": duplicates})
    raw = pl.read_parquet(events_path).head(5000)
    raw = raw.with_columns(pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("amount")).alias("amount"))
    normalized = normalize(raw.lazy(), schema, "t").collect()
    assert_frame_equal(validate(normalized, schema, "t"), _validate_steps(normalized, schema, "t"))
    # Unsorted input and text amounts also give the same result (through the steps).
    shuffled = normalize(raw.sample(fraction=1.0, seed=1).with_columns(pl.col("amount").cast(pl.String)).lazy(), schema, "t").collect()
    assert_frame_equal(validate(shuffled, schema, "t"), _validate_steps(shuffled, schema, "t"))


def test_clean_check_in_numpy_agrees_with_the_query(events_path, monkeypatch):
    from journeyformer.data.events import validate as validation

    schema = EventSchema.from_config(SCHEMA)
    raw = pl.read_parquet(events_path).head(400).sort("customer_id", "timestamp")
    row = pl.int_range(pl.len())
    frames = {
        "clean": raw,
        "unsorted": raw.reverse(),
        "duplicate": pl.concat([raw, raw.slice(5, 1)]).sort("customer_id", "timestamp", maintain_order=True),
        "infinite": raw.with_columns(pl.when(row == 7).then(float("inf")).otherwise(pl.col("items")).alias("items")),
        "future": raw.with_columns(pl.when(row == raw.height - 1).then(pl.col("timestamp") + pl.duration(days=36500)).otherwise(pl.col("timestamp")).alias("timestamp")),
        "null id": raw.with_columns(pl.when(row == 3).then(None).otherwise(pl.col("customer_id")).alias("customer_id")),
        "NaN amount": raw.with_columns(pl.when(row == 2).then(float("nan")).otherwise(pl.col("amount")).alias("amount")),
    }
    for name, frame in frames.items():
        normalized = normalize(frame.lazy(), schema, "t").collect()
        via_numpy = validation._is_clean(normalized, schema)
        monkeypatch.setattr(validation, "SMALL_FRAME", 0)
        via_query = validation._is_clean(normalized, schema)
        monkeypatch.setattr(validation, "SMALL_FRAME", 50_000)
        assert via_numpy == via_query == (name in ("clean", "NaN amount")), name
        if via_numpy:
            assert_frame_equal(validate(normalized, schema, "t"), _validate_steps(normalized, schema, "t"))
        # Out of order but otherwise clean: sorted in NumPy, the same frame as the steps give.
        assert (clean(normalized, schema) is not None) == (name in ("clean", "NaN amount", "unsorted")), name
        if name == "unsorted":
            assert_frame_equal(clean(normalized, schema), _validate_steps(normalized, schema, "t"))


def test_a_frame_already_in_canonical_types_skips_normalize_with_the_same_result(events_path):
    schema = EventSchema.from_config(SCHEMA)
    raw = pl.read_parquet(events_path).head(300).sort("customer_id", "timestamp")
    ready = already_canonical(raw, schema)
    assert ready is not None
    assert_frame_equal(clean(ready, schema), validate(normalize(raw.lazy(), schema, "t").collect(), schema, "t"))
    # Anything normalize would change or report declines the shortcut (normalize does the work).
    declined = {
        "mapped name": (raw.rename({"action": "event"}), EventSchema.from_config({**SCHEMA, "columns": {"action": "event"}})),
        "text time": (raw.with_columns(pl.col("timestamp").dt.to_string()), schema),
        "naive time": (raw.with_columns(pl.col("timestamp").dt.replace_time_zone(None)), schema),
        "integer amount": (raw.with_columns(pl.col("amount").cast(pl.Int64)), schema),
        "null channel": (raw.with_columns(pl.when(pl.int_range(pl.len()) == 4).then(None).otherwise(pl.col("channel")).alias("channel")), schema),
    }
    for name, (frame, sch) in declined.items():
        assert already_canonical(frame, sch) is None, name
    # In any row order (as a service sends a few customers' events): the same frame.
    shuffled = raw.sample(fraction=1.0, seed=5)
    assert_frame_equal(clean(already_canonical(shuffled, schema), schema), validate(normalize(shuffled.lazy(), schema, "t").collect(), schema, "t"))
    # A problem to report (a duplicate (customer, time) under duplicates=drop): no shortcut.
    assert clean(already_canonical(pl.concat([raw, raw.head(1)]), schema), schema) is None
