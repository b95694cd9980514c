"""Events -> sequences: order, truncation, ties, padding, features, unknown values."""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from support import event_frame

from journeyformer.data.events.order import ROW
from journeyformer.data.features.batch import pad
from journeyformer.data.features.definitions import CONTEXT_NUMERIC, EVENT_NUMERIC, FeatureConfig
from journeyformer.data.features.sequences import Sequences, build_sequences
from journeyformer.data.features.vocab import PAD, UNK, Vocab, Vocabularies
from journeyformer.data.labels.lifecycle import IGNORE_INDEX, SUMMARY_COLUMNS, LabelConfig
from journeyformer.data.labels.reference import compute_labels, history_summary

UTC = timezone.utc
CUTOFF = datetime(2025, 3, 1, tzinfo=UTC)
VOCABS = Vocabularies.from_dict(
    {"action": [PAD, UNK, "view", "cart", "purchase", "email"], "channel": [PAD, UNK, "web", "app"]}
)
ACTION = {tok: i for i, tok in enumerate(VOCABS["action"].tokens)}


def events(rows: list[tuple], with_row: bool = True) -> pl.DataFrame:
    """Canonical events from (customer_id, ISO time in UTC, action[, channel[, amount]])."""
    return event_frame(rows, with_row=with_row)


def build(frame: pl.DataFrame, max_len: int = 64, cutoff: datetime = CUTOFF, **kwargs) -> Sequences:
    return build_sequences(
        frame, cutoff, VOCABS, FeatureConfig(max_len=max_len), LabelConfig(), **kwargs
    )


def actions_of(seqs: Sequences, i: int) -> list[str]:
    tokens = VOCABS["action"].tokens
    return [tokens[a] for a in seqs.categorical[seqs.offsets[i] : seqs.offsets[i + 1], 0]]


def test_events_in_time_order_per_customer_sorted_by_id() -> None:
    frame = events(
        [
            (2, "2025-02-03T00:00", "cart"),
            (1, "2025-02-02T00:00", "cart"),
            (2, "2025-02-01T00:00", "view"),
            (1, "2025-02-01T00:00", "view"),
            (1, "2025-02-05T00:00", "purchase", "app", 10.0),
        ]
    )
    seqs = build(frame)
    assert seqs.customer_id.to_list() == [1, 2]
    assert seqs.offsets.tolist() == [0, 3, 5]
    assert seqs.lengths.tolist() == [3, 2]
    assert actions_of(seqs, 0) == ["view", "cart", "purchase"]
    assert actions_of(seqs, 1) == ["view", "cart"]
    assert seqs.categorical[2].tolist() == [ACTION["purchase"], 3]  # app
    assert seqs.categorical.dtype == np.int32 and seqs.numeric.dtype == np.float32
    assert seqs.numeric.shape == (5, len(EVENT_NUMERIC)) and seqs.context.shape == (
        2,
        len(CONTEXT_NUMERIC),
    )
    assert seqs.cutoff.tolist() == [np.datetime64("2025-03-01T00:00:00", "us")] * 2


def test_only_events_at_or_before_the_cutoff() -> None:
    frame = events(
        [
            (1, "2025-02-01T00:00", "view"),
            (1, "2025-03-01T00:00", "cart"),  # exactly at the cutoff: history
            (1, "2025-03-01T00:00:00.000001", "purchase"),  # one microsecond later: label
            (2, "2025-03-02T00:00", "view"),  # no history: no sample
        ]
    )
    seqs = build(frame)
    assert seqs.customer_id.to_list() == [1]
    assert actions_of(seqs, 0) == ["view", "cart"]
    assert seqs.labels["next_action"].tolist() == [ACTION["purchase"]]


def test_truncation_keeps_the_most_recent_events() -> None:
    names = ["view", "cart", "email", "view", "purchase"]
    frame = events(
        [(1, f"2025-02-0{d + 1}T00:00", a) for d, a in enumerate(names)]
        + [(2, "2025-02-01", "view")]
    )
    seqs = build(frame, max_len=3)
    assert seqs.lengths.tolist() == [3, 1]
    assert actions_of(seqs, 0) == ["email", "view", "purchase"]
    # the first kept event's gap is to the dropped event before it (1 day), not 0
    log_gap = seqs.numeric[0, EVENT_NUMERIC.index("log_gap")]
    assert log_gap == pytest.approx(math.log1p(86_400) / 10, rel=1e-6)
    # whole-history summary still counts every event
    assert seqs.summary["n_events"].to_list() == [5, 1]


def test_ties_in_timestamps_keep_input_order() -> None:
    rows = [(1, "2025-02-01T00:00", a) for a in ("email", "view", "cart")]
    rows += [(1, "2025-03-05T00:00", "purchase"), (1, "2025-03-05T00:00", "view")]
    frame = events(rows)
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)  # _row still says input order
    for f in (frame, shuffled):
        seqs = build(f)
        assert actions_of(seqs, 0) == ["email", "view", "cart"]
        assert seqs.labels["next_action"].tolist() == [ACTION["purchase"]]
    # without a _row column, the frame's own order breaks ties
    seqs = build(events(rows, with_row=False))
    assert actions_of(seqs, 0) == ["email", "view", "cart"]
    # ids too far apart for the packed sort key take the general sort, with the same result
    wide = shuffled.with_columns(pl.lit(2**62, pl.Int64).alias("customer_id"))
    wide = pl.concat(
        [wide, shuffled.head(1).with_columns(pl.lit(-1, pl.Int64).alias("customer_id"))]
    )
    seqs = build(wide)
    assert seqs.customer_id.to_list() == [-1, 2**62]
    assert actions_of(seqs, 1) == ["email", "view", "cart"]


def test_numeric_features_by_hand() -> None:
    # 2025-02-28 is a Friday; 18:30 UTC
    frame = events(
        [
            (1, "2025-02-27T18:30", "view", "web", 0.0),
            (1, "2025-02-28T18:30", "purchase", "web", 99.0),
        ]
    )
    seqs = build(frame)
    f = {name: seqs.numeric[:, i] for i, name in enumerate(EVENT_NUMERIC)}
    assert f["log_amount"].tolist() == pytest.approx([0.0, math.log1p(99.0)])
    assert f["log_gap"].tolist() == pytest.approx([0.0, math.log1p(86_400) / 10])
    age = [(CUTOFF - datetime(2025, 2, d, 18, 30, tzinfo=UTC)).total_seconds() for d in (27, 28)]
    assert f["log_age"].tolist() == pytest.approx([math.log1p(a) / 10 for a in age])
    hour = 18.5 / 24 * 2 * math.pi
    assert f["hour_sin"].tolist() == pytest.approx([math.sin(hour)] * 2, abs=1e-6)
    assert f["hour_cos"].tolist() == pytest.approx([math.cos(hour)] * 2, abs=1e-6)
    thursday, friday = 3 / 7 * 2 * math.pi, 4 / 7 * 2 * math.pi
    assert f["dow_sin"].tolist() == pytest.approx([math.sin(thursday), math.sin(friday)], abs=1e-6)
    assert f["dow_cos"].tolist() == pytest.approx([math.cos(thursday), math.cos(friday)], abs=1e-6)
    # context: log1p of the whole-history summary
    n_events, spend = seqs.context[0, 0], seqs.context[0, 1]
    assert (n_events, spend) == pytest.approx((math.log1p(2), math.log1p(99.0)))


def test_negative_amounts_and_extra_numeric_use_signed_log1p() -> None:
    frame = events([(1, "2025-02-01", "purchase", "web", -9.0)]).with_columns(items=pl.lit(-3.0))
    seqs = build_sequences(
        frame, CUTOFF, VOCABS, FeatureConfig(numeric=("items",)), LabelConfig(), with_labels=False
    )
    assert seqs.numeric[0, 0] == pytest.approx(-math.log1p(9.0))
    assert seqs.numeric[0, -1] == pytest.approx(-math.log1p(3.0))


def test_unseen_values_map_to_unknown_and_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    frame = events(
        [
            (1, "2025-02-01", "view", "kiosk"),
            (1, "2025-02-02", "refund", "kiosk"),
            (2, "2025-02-03", "refund", "web"),
        ]
    )
    with caplog.at_level(logging.INFO, logger="journeyformer.data.features.sequences"):
        seqs = build(frame, source="new.parquet")
    assert seqs.categorical.tolist() == [[ACTION["view"], 1], [1, 1], [1, 2]]
    assert seqs.unknown_counts == {"action": 2, "channel": 2}
    assert "new.parquet: values unseen in training mapped to <unk>" in caplog.text
    assert build(events([(1, "2025-02-01", "view")])).unknown_counts == {}


def test_string_ids_extra_categorical_and_customer_filter() -> None:
    frame = events(
        [("b", "2025-02-01", "view"), ("a", "2025-02-02", "cart"), ("c", "2025-02-03", "cart")]
    )
    frame = frame.with_columns(device=pl.Series(["mobile", "desktop", "tv"]))
    vocabs = Vocabularies({**VOCABS, "device": Vocab((PAD, UNK, "mobile", "desktop"))})
    features = FeatureConfig(categorical=("action", "channel", "device"))
    seqs = build_sequences(
        frame, CUTOFF, vocabs, features, LabelConfig(), customers=pl.Series(["a", "b"])
    )
    assert seqs.customer_id.to_list() == ["a", "b"]
    assert seqs.categorical[:, 2].tolist() == [3, 2]


def test_active_within_days_filter() -> None:
    frame = events([(1, "2024-06-01", "view"), (2, "2025-02-20", "view")])
    assert build(frame).customer_id.to_list() == [1, 2]
    seqs = build(frame, active_within_days=30.0)
    assert seqs.customer_id.to_list() == [2]
    assert len(seqs.labels["churn"]) == 1 and seqs.summary.height == 1


def test_cutoff_in_any_time_zone_or_naive_means_the_same_instant() -> None:
    frame = events([(1, "2025-02-28T23:30", "view"), (1, "2025-03-01T00:30", "cart")])
    base = build(frame)
    for cutoff in (CUTOFF.astimezone(ZoneInfo("Europe/Paris")), CUTOFF.replace(tzinfo=None)):
        other = build(frame, cutoff=cutoff)
        assert other.n_events == base.n_events == 1
        np.testing.assert_array_equal(other.numeric, base.numeric)
        np.testing.assert_array_equal(other.cutoff, base.cutoff)


def test_no_customer_with_history_gives_empty_sequences() -> None:
    seqs = build(events([(1, "2025-04-01", "view")]))
    assert len(seqs) == 0 and seqs.n_events == 0
    assert seqs.categorical.shape == (0, 2) and seqs.numeric.shape == (0, len(EVENT_NUMERIC))
    assert seqs.labels is not None and seqs.labels["churn"].shape == (0,)


def test_pad_right_pads_with_zeros() -> None:
    frame = events(
        [
            (1, "2025-02-01", "view"),
            (1, "2025-02-02", "cart"),
            (1, "2025-02-03", "email"),
            (2, "2025-02-01", "cart"),
        ]
    )
    seqs = build(frame)
    batch = pad(seqs, np.array([1, 0]))
    assert batch["lengths"].tolist() == [1, 3]
    assert batch["categorical"].shape == (2, 3, 2)
    assert batch["categorical"][:, :, 0].tolist() == [
        [ACTION["cart"], 0, 0],
        [ACTION["view"], ACTION["cart"], ACTION["email"]],
    ]
    assert not batch["numeric"][0, 1:].any()  # zeros after the real event
    np.testing.assert_array_equal(batch["numeric"][1], seqs.numeric[0:3])
    np.testing.assert_array_equal(batch["stage_now"], seqs.stage_now[[1, 0]])
    np.testing.assert_array_equal(batch["context"], seqs.context[[1, 0]])
    assert batch["categorical"].dtype == np.int64 and batch["numeric"].dtype == np.float32
    # a fixed T longer than needed pads more; a shorter one keeps the most recent events
    assert pad(seqs, np.array([0]), max_len=5)["categorical"].shape == (1, 5, 2)
    short = pad(seqs, np.array([0, 1]), max_len=2)
    assert short["lengths"].tolist() == [2, 1]
    assert short["categorical"][0, :, 0].tolist() == [ACTION["cart"], ACTION["email"]]
    empty = pad(seqs, np.array([], dtype=np.int64))
    assert empty["categorical"].shape == (0, 0, 2) and empty["lengths"].shape == (0,)


def test_take_and_concat_round_trip() -> None:
    frame = events([(c, f"2025-02-0{d}", "view") for c in (1, 2, 3) for d in range(1, c + 1)])
    seqs = build(frame)
    part = seqs.take(np.array([2, 0]))
    assert part.customer_id.to_list() == [3, 1] and part.lengths.tolist() == [3, 1]
    assert part.labels["churn"].tolist() == seqs.labels["churn"][[2, 0]].tolist()
    both = Sequences.concat([seqs.take(np.array([0])), seqs.take(np.array([1, 2]))])
    np.testing.assert_array_equal(both.offsets, seqs.offsets)
    np.testing.assert_array_equal(both.numeric, seqs.numeric)
    assert both.summary.equals(seqs.summary)


def test_summary_and_labels_match_the_polars_definitions() -> None:
    """build_sequences computes summary and labels in one pass; it must agree with
    history_summary / compute_labels, with every label rule switched on."""
    rng = np.random.default_rng(0)
    n = 400
    names = ["view", "cart", "purchase", "email", "refund"]
    start = datetime(2024, 10, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "customer_id": rng.integers(0, 40, n),
            "timestamp": [start + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 200, n)],
            "channel": rng.choice(["web", "app"], n),
            "action": rng.choice(names, n),
            "amount": rng.integers(-5, 50, n).astype(float),
        },
        schema_overrides={"timestamp": pl.Datetime("us", "UTC")},
    ).with_row_index(ROW)
    cfg = LabelConfig(
        horizon_days=20,
        purchase_actions=("purchase", "refund"),
        intent_actions=("cart",),
        activity_actions=("purchase", "view"),
        value_actions=("purchase", "refund"),
        churned_after_days=25,
        loyalty_min_purchases=2,
        loyalty_window_days=40,
    )
    for cutoff in (datetime(2025, 1, 15, tzinfo=UTC), datetime(2025, 3, 1, 7, tzinfo=UTC)):
        seqs = build_sequences(frame, cutoff, VOCABS, FeatureConfig(), cfg)
        reference = history_summary(frame.lazy(), cutoff, cfg).sort("customer_id").collect()
        assert seqs.summary.columns == list(SUMMARY_COLUMNS) == reference.columns
        assert seqs.summary.schema == reference.schema
        assert seqs.summary.drop("spend").equals(reference.drop("spend"))
        np.testing.assert_allclose(seqs.summary["spend"], reference["spend"])
        labels = compute_labels(
            frame.lazy(), cutoff, cfg, VOCABS["action"], reference.lazy().select("customer_id")
        ).collect()
        assert (
            seqs.labels["next_action"].tolist()
            == labels["next_action"].fill_null(IGNORE_INDEX).to_list()
        )
        assert seqs.labels["churn"].tolist() == labels["churn"].to_list()
        assert seqs.labels["stage"].tolist() == labels["stage"].to_list()
        np.testing.assert_allclose(seqs.labels["value"], labels["value"], rtol=1e-6)
        assert len(set(seqs.labels["stage"].tolist())) > 2  # the rules were exercised


def test_feature_config_checks_itself() -> None:
    with pytest.raises(ValueError, match="max_len"):
        FeatureConfig(max_len=0)
    with pytest.raises(ValueError, match="start with 'action'"):
        FeatureConfig(categorical=("channel", "action"))
    with pytest.raises(ValueError, match="not a known time zone"):
        FeatureConfig(time_zone="Nowhere/City")
    cfg = FeatureConfig.from_config(
        {"max_len": 8, "extra_categorical": ["device"], "extra_numeric": ["items"]}
    )
    assert cfg.categorical == ("action", "channel", "device") and cfg.numeric_names[-1] == "items"


def test_missing_columns_and_vocabularies_are_reported() -> None:
    frame = events([(1, "2025-02-01", "view")])
    with pytest.raises(ValueError, match=r"events lack column\(s\) \['device'\]"):
        build_sequences(
            frame, CUTOFF, VOCABS, FeatureConfig(categorical=("action", "device")), LabelConfig()
        )
    with pytest.raises(
        ValueError, match=r"no vocabulary for categorical column\(s\) \['channel'\]"
    ):
        build_sequences(
            frame,
            CUTOFF,
            Vocabularies({"action": VOCABS["action"]}),
            FeatureConfig(),
            LabelConfig(),
        )
