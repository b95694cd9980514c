"""Cutoff schedule, customer splits, and the proof that nothing leaks across time."""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from journeyformer.data.events.order import ROW
from journeyformer.data.features.definitions import FeatureConfig
from journeyformer.data.features.sequences import Sequences, build_sequences
from journeyformer.data.features.vocab import Vocabularies
from journeyformer.data.labels.lifecycle import LabelConfig
from journeyformer.data.labels.samples import (
    CutoffSchedule,
    customers_by_split,
    parse_time,
    split_of,
)

UTC = timezone.utc
FIRST, LAST = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)


def random_events(n: int = 3000, customers: int = 120, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    span_s = int((LAST - FIRST).total_seconds())
    seconds = np.sort(rng.integers(0, span_s, n))
    return pl.DataFrame(
        {
            "customer_id": rng.integers(0, customers, n),
            "timestamp": pl.Series(
                [FIRST + timedelta(seconds=int(s)) for s in seconds], dtype=pl.Datetime("us", "UTC")
            ),
            "channel": rng.choice(["web", "app", "store"], n),
            "action": rng.choice(["view", "cart", "purchase", "email"], n, p=[0.5, 0.2, 0.1, 0.2]),
            "amount": rng.gamma(2.0, 20.0, n),
            "device": rng.choice(["mobile", "desktop"], n),
            "items": rng.integers(0, 4, n).astype(float),
        }
    ).with_row_index(ROW)


# --- schedule ---------------------------------------------------------------------------------


def test_schedule_is_out_of_time() -> None:
    schedule = CutoffSchedule(horizon_days=30, n_train=4, train_stride_days=20)
    cutoffs = schedule.resolve(FIRST, LAST)
    h = timedelta(days=30)
    (val,), (test,) = cutoffs["val"], cutoffs["test"]
    assert test == LAST - h
    assert val + h <= test
    assert len(cutoffs["train"]) == 4 and cutoffs["train"] == sorted(cutoffs["train"])
    for train in cutoffs["train"]:
        assert train + h <= val  # every training label window ends before validation starts
    assert np.diff(cutoffs["train"]).tolist() == [timedelta(days=20)] * 3


def test_schedule_with_a_fixed_test_cutoff_and_a_short_span() -> None:
    schedule = CutoffSchedule.from_config({"test": "2024-10-01", "n_train": 2}, horizon_days=14)
    cutoffs = schedule.resolve(FIRST, LAST)
    assert cutoffs["test"] == [datetime(2024, 10, 1, tzinfo=UTC)]
    assert cutoffs["val"] == [datetime(2024, 9, 17, tzinfo=UTC)]
    assert max(cutoffs["train"]) == datetime(2024, 9, 3, tzinfo=UTC)
    # training cutoffs before the first event are dropped; none left is an error
    few = CutoffSchedule(horizon_days=100, n_train=10, train_stride_days=30).resolve(FIRST, LAST)
    assert all(t > FIRST for t in few["train"]) and len(few["train"]) < 10
    with pytest.raises(ValueError, match="too short for horizon 200 days"):
        CutoffSchedule(horizon_days=200).resolve(FIRST, LAST)
    with pytest.raises(ValueError, match="n_train"):
        CutoffSchedule(n_train=0)


def test_parse_time() -> None:
    assert parse_time("2025-01-01") == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_time("2025-01-01T02:00:00+02:00") == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_time(datetime(2025, 1, 1)).tzinfo == UTC
    with pytest.raises(ValueError, match="'31/01/2025' is not an ISO-8601 time"):
        parse_time("31/01/2025")


def test_naive_bounds_and_a_late_test_cutoff(caplog: pytest.LogCaptureFixture) -> None:
    schedule = CutoffSchedule(horizon_days=30, test=datetime(2024, 12, 15))  # naive: UTC
    with caplog.at_level("WARNING", logger="journeyformer.data.labels.samples"):
        cutoffs = schedule.resolve(FIRST.replace(tzinfo=None), LAST.replace(tzinfo=None))
    assert cutoffs["test"] == [datetime(2024, 12, 15, tzinfo=UTC)]
    assert "label window ends after the last event" in caplog.text


# --- splits -----------------------------------------------------------------------------------


def test_split_is_a_stable_hash_of_salt_and_id() -> None:
    ids = pl.Series(range(10_000))
    split = split_of(ids, 0.15, 0.15, "salt")
    # the documented rule, written out: CRC32(salt + id) / 2**32 against the fractions
    u = np.array([zlib.crc32(f"salt{i}".encode()) / 2**32 for i in range(10_000)])
    expected = np.where(u < 0.15, "test", np.where(u < 0.30, "val", "train"))
    assert (split == expected).all()
    counts = {name: int((split == name).sum()) for name in ("train", "val", "test")}
    assert (
        6700 < counts["train"] < 7300
        and 1300 < counts["val"] < 1700
        and 1300 < counts["test"] < 1700
    )
    assert (
        split_of(ids.reverse(), 0.15, 0.15, "salt") == split[::-1]
    ).all()  # per id, not position
    assert (split_of(ids, 0.15, 0.15, "other") != split).mean() > 0.2  # another salt, another split
    with pytest.raises(ValueError, match="sum to less than 1"):
        split_of(ids, 0.6, 0.5, "salt")


def test_customers_by_split_is_a_partition() -> None:
    events = random_events()
    parts = customers_by_split(events, 0.2, 0.2, "s")
    ids = [set(parts[name].to_list()) for name in ("train", "val", "test")]
    assert set().union(*ids) == set(events["customer_id"].unique().to_list())
    assert sum(len(s) for s in ids) == len(set().union(*ids))
    string_ids = customers_by_split(
        events.with_columns(pl.col("customer_id").cast(pl.String)), 0.2, 0.2, "s"
    )
    assert sorted(string_ids["test"].to_list()) == sorted(str(i) for i in parts["test"].to_list())


# --- leakage ----------------------------------------------------------------------------------

FEATURES = FeatureConfig(
    max_len=16, categorical=("action", "channel", "device"), numeric=("items",)
)
LABELS = LabelConfig(
    horizon_days=30, intent_actions=("cart",), activity_actions=("purchase", "view")
)


def features_of(seqs: Sequences) -> dict[str, np.ndarray]:
    return {
        "customer_id": seqs.customer_id.to_numpy(),
        "offsets": seqs.offsets,
        "categorical": seqs.categorical,
        "numeric": seqs.numeric,
        "stage_now": seqs.stage_now,
        "context": seqs.context,
        "cutoff": seqs.cutoff,
    }


def tamper_after(events: pl.DataFrame, cutoff: datetime, seed: int) -> pl.DataFrame:
    """Change every event after ``cutoff`` and add new ones there, including new customers
    and events one microsecond after the cutoff."""
    rng = np.random.default_rng(seed)
    after = pl.col("timestamp") > cutoff
    changed = events.with_columns(
        pl.when(after).then(pl.lit("purchase")).otherwise(pl.col("action")).alias("action"),
        pl.when(after).then(pl.col("amount") * 100 + 7).otherwise(pl.col("amount")).alias("amount"),
        pl.when(after).then(pl.lit("kiosk")).otherwise(pl.col("channel")).alias("channel"),
        pl.when(after)
        .then(pl.col("timestamp") + timedelta(hours=1))
        .otherwise(pl.col("timestamp")),
    )
    n = 200
    extra = pl.DataFrame(
        {
            "customer_id": rng.integers(0, 150, n),  # some existing, some new customers
            "timestamp": pl.Series(
                [cutoff + timedelta(microseconds=1 + int(s)) for s in rng.integers(0, 10**11, n)],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "channel": ["web"] * n,
            "action": rng.choice(["view", "purchase", "never_seen"], n),
            "amount": rng.gamma(2.0, 50.0, n),
            "device": ["tv"] * n,
            "items": [9.0] * n,
        }
    )
    # appended rows get later _row values; shuffling the rows must not matter either
    merged = pl.concat([changed.drop(ROW), extra]).with_row_index(ROW)
    return merged.sample(fraction=1.0, shuffle=True, seed=seed)


@pytest.mark.parametrize("seed", [1, 2])
def test_no_feature_depends_on_an_event_after_the_cutoff(seed: int) -> None:
    events = random_events(seed=seed)
    cutoff = datetime(2024, 8, 15, 12, tzinfo=UTC)
    vocabs = Vocabularies.build(events.filter(pl.col("timestamp") <= cutoff), FEATURES.categorical)
    before = build_sequences(events, cutoff, vocabs, FEATURES, LABELS)
    tampered = tamper_after(events, cutoff, seed)
    after = build_sequences(tampered, cutoff, vocabs, FEATURES, LABELS)
    for name, array in features_of(before).items():
        np.testing.assert_array_equal(features_of(after)[name], array, err_msg=name)
    assert after.summary.equals(before.summary)
    assert after.unknown_counts == before.unknown_counts
    # the tampering reached the labels, so the check above had something to catch
    assert not np.array_equal(after.labels["value"], before.labels["value"])


def test_training_label_windows_never_overlap_validation_or_test() -> None:
    events = random_events()
    bounds = events.select(pl.col("timestamp").min(), pl.col("timestamp").max().alias("hi")).row(0)
    schedule = CutoffSchedule(horizon_days=LABELS.horizon_days, n_train=5, train_stride_days=10)
    cutoffs = schedule.resolve(*bounds)
    h = LABELS.horizon
    (val,), (test,) = cutoffs["val"], cutoffs["test"]
    for train in cutoffs["train"]:
        assert train + h <= val
    assert val + h <= test
    # and the samples built at those cutoffs respect it: a training label is unchanged when
    # everything after the validation cutoff is rewritten
    vocabs = Vocabularies.build(
        events.filter(pl.col("timestamp") <= min(cutoffs["train"])), FEATURES.categorical
    )
    tampered = tamper_after(events, val, seed=5)
    for train in cutoffs["train"]:
        a = build_sequences(events, train, vocabs, FEATURES, LABELS)
        b = build_sequences(tampered, train, vocabs, FEATURES, LABELS)
        for task in a.labels:
            np.testing.assert_array_equal(a.labels[task], b.labels[task], err_msg=f"{train} {task}")


# --- issue 9: splits too small for their metrics are never silent ------------------------------


def _counts(train: list[int], val: int, test: int, churners: int = 20):
    from journeyformer.data.labels.samples import SampleCount

    cut = [datetime(2025, m, 1, tzinfo=UTC) for m in range(1, 7)]
    return {
        "train": [SampleCount(c, n, n, n // 3) for c, n in zip(cut, train, strict=False)],
        "val": [SampleCount(cut[4], val, val, min(churners, val))],
        "test": [SampleCount(cut[5], test, test, min(churners, val))],
    }


def test_too_few_training_samples_is_refused_naming_cutoffs_and_counts(caplog) -> None:
    from journeyformer.errors import EventDataError

    schedule = CutoffSchedule()
    schedule.check_sample_counts(_counts([400, 400, 400, 400], 100, 100), "e.parquet")  # fine
    # Campaign events long before the rest: early cutoffs hold almost nothing.
    sparse = _counts([3, 5, 15, 90], 100, 100)
    with pytest.raises(EventDataError) as info:
        schedule.check_sample_counts(sparse, "e.parquet")
    message = str(info.value)
    assert "train has 113 samples (< 200)" in message
    assert "train 2025-01-01 3/3/1, 2025-02-01 5/5/1, 2025-03-01 15/15/5, 2025-04-01 90/90/30" in message
    assert "labels.cutoffs.sparse=warn" in message
    assert "precede almost all activity" in caplog.text  # the early cutoffs are named too
    with pytest.raises(EventDataError, match=r"test has 3 churners and 97 stayers \(< 5\)"):
        schedule.check_sample_counts(_counts([400] * 4, 100, 100, churners=3), "e.parquet")
    CutoffSchedule(sparse="warn").check_sample_counts(sparse, "e.parquet")
    assert "Going on because labels.cutoffs.sparse=warn" in caplog.text


def test_prepare_data_applies_the_sample_check(events_path, caplog) -> None:
    from journeyformer.errors import EventDataError
    from journeyformer.training.datamodule import prepare_data

    data_cfg = {"path": str(events_path), "extra_categorical": ["device"], "extra_numeric": ["items"]}
    labels = {"horizon_days": 30, "cutoffs": {"min_samples": 10**6}}
    with pytest.raises(EventDataError, match=r"too few samples .* train has \d+ samples"):
        prepare_data(data_cfg, labels)
    labels["cutoffs"]["sparse"] = "warn"
    assert len(prepare_data(data_cfg, labels).splits["train"]) > 0
