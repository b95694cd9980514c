"""Issue 21: the cutoff schedule starts where the customers' activity does, not at the first
event of any kind (campaign mailings months before the first purchase)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from journeyformer.data.events.as_of import data_end
from journeyformer.data.events.load import load_events
from journeyformer.data.events.order import ROW
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.labels.lifecycle import LabelConfig
from journeyformer.data.labels.samples import ActivityStart, CutoffSchedule
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.errors import EventDataError

UTC = timezone.utc
MAILINGS_FROM = datetime(2024, 1, 1, tzinfo=UTC)
ACTIVITY_FROM = datetime(2024, 3, 1, tzinfo=UTC)  # two months later: the first visit/purchase
LOG_END = datetime(2024, 11, 30, tzinfo=UTC)  # nine months of visits and purchases
# labels/default.yaml with a quarter's horizon; activity_actions null (every action counts)
LABELS_CFG = {"horizon_days": 91}


def mailed_log(n: int = 400, seed: int = 0) -> pl.DataFrame:
    """A grocery-like log: every customer is mailed while a customer (every 28 days, from
    three days before their first visit), a pilot tenth of them from two months before any
    visit or purchase; visits and purchases start 2024-03-01 and run for nine months, each
    customer stopping after an exponential lifetime (so a horizon sees churners)."""
    rng = np.random.default_rng(seed)
    ids, days, actions = [], [], []
    end = (LOG_END - MAILINGS_FROM).days
    first_visit = (ACTIVITY_FROM - MAILINGS_FROM).days
    for c in range(n):
        join = first_visit + rng.exponential(10.0)
        stop = min(join + rng.exponential(240.0), end)
        mailed = rng.uniform(0.0, 50.0) if c % 10 == 0 else join - 3.0
        for day in np.arange(mailed, stop, 28.0):
            ids.append(c), days.append(day), actions.append("mailing")
        day = join
        while day < stop:
            ids.append(c), days.append(day), actions.append(rng.choice(["visit", "purchase"], p=[0.65, 0.35]))
            day += rng.exponential(6.0)
    micros = (np.asarray(days) * 86_400e6).astype(np.int64)
    return (
        pl.DataFrame({"customer_id": ids, "timestamp": micros, "action": actions})
        .with_columns(
            (pl.lit(MAILINGS_FROM) + pl.duration(microseconds=pl.col("timestamp"))).alias("timestamp"),
            pl.lit("store").alias("channel"),
            pl.when(pl.col("action") == "purchase").then(30.0).otherwise(0.0).alias("amount"),
        )
        .sort("timestamp")
        .with_row_index(ROW)
    )


def sample_check(pre: Preprocessing, events: pl.DataFrame) -> None:
    """What ``prepare_data`` does after fitting: build every split's samples and check them."""
    _, counts = pre.split_sequences(events)
    CutoffSchedule.from_config({}, pre.horizon_days).check_sample_counts(counts, "mailed log")


def test_mailings_before_the_first_purchase_train_with_the_defaults(caplog) -> None:
    events = mailed_log()
    first_visit = events.filter(pl.col("action") != "mailing").get_column("timestamp").min()
    assert events.get_column("timestamp").min() < first_visit - timedelta(days=45)

    # Before: the schedule started at the first event, a mailing, so the training cutoffs
    # preceded almost all activity and the defaults refused (the sample counts do not depend
    # on the vocabularies, so the new fit with the old training cutoffs is the old schedule).
    old = Preprocessing.fit(events, {}, LABELS_CFG)
    start = ActivityStart.of(events, old.labels)
    old_train = CutoffSchedule(horizon_days=91).resolve(start.first_event, data_end(events).end)["train"]
    old = dataclasses.replace(old, cutoffs={**old.cutoffs, "train": tuple(old_train)})
    assert min(old_train) < first_visit
    with caplog.at_level(logging.WARNING), pytest.raises(EventDataError, match=r"train has \d+ samples"):
        sample_check(old, events)
    assert "precede almost all activity" in caplog.text
    caplog.clear()

    # Now: cutoffs where the activity is, samples enough, and the log says where and why.
    with caplog.at_level(logging.INFO, logger="journeyformer.data.labels.samples"):
        pre = Preprocessing.fit(events, {}, LABELS_CFG)
    assert start.actions == ("purchase",)  # activity_actions null: the label actions that occur
    assert first_visit <= start.at <= first_visit + timedelta(days=14)
    assert all(t > start.at for t in pre.cutoffs["train"])
    assert len(pre.cutoffs["train"]) >= 2
    assert "visit" in pre.vocabs["action"].tokens  # the activity was seen before training cutoffs
    sample_check(pre, events)  # no refusal, no warning about early cutoffs
    assert "precede almost all activity" not in caplog.text
    (line,) = [r for r in caplog.records if r.getMessage().startswith("cutoffs: ")]
    message = line.getMessage()
    assert line.levelno == logging.WARNING  # cutoffs were held back from where they would have been
    days = ", ".join(f"{t:%Y-%m-%d}" for t in pre.cutoffs["train"])
    assert f"training {days}" in message
    assert f"the activity starts {start.at:%Y-%m-%d}" in message
    buyers = events.filter(pl.col("action") == "purchase").get_column("customer_id").n_unique()
    assert f"5% of the {buyers} customers with a purchase event had their first by then" in message
    assert "events before it (from 2024-01-01: mailing" in message
    assert f"would have placed them at {', '.join(f'{t:%Y-%m-%d}' for t in old_train)}" in message
    assert "labels.activity_actions" in message


def test_activity_actions_place_the_start_and_explicit_settings_still_place_the_cutoffs() -> None:
    events = mailed_log(n=200, seed=1)
    mailed = ActivityStart.of(events, LabelConfig(horizon_days=91, activity_actions=("mailing",)))
    assert mailed.actions == ("mailing",) and mailed.at < ACTIVITY_FROM
    visits = ActivityStart.of(events, LabelConfig(horizon_days=91, activity_actions=("visit",)))
    assert visits.actions == ("visit",) and visits.at >= ACTIVITY_FROM
    assert visits.before[0][0] == "mailing"  # most of what precedes the start
    unknown = ActivityStart.of(events, LabelConfig(purchase_actions=("order",), intent_actions=(), value_actions=()))
    assert unknown.actions is None  # none of the label actions occur: every action counts
    # the streaming build (Preprocessing.fit on a lazy frame) finds the same start
    assert ActivityStart.of(events.lazy(), LabelConfig(horizon_days=91)) == ActivityStart.of(
        events, LabelConfig(horizon_days=91)
    )
    # labels.cutoffs.test / n_train / train_stride_days still place the cutoffs; the start
    # only drops those at or before it, as the first event did
    schedule = CutoffSchedule.from_config({"test": "2024-10-01", "n_train": 12, "train_stride_days": 14}, 30)
    cuts = schedule.resolve(visits.first_event, LOG_END, visits)
    old = schedule.resolve(visits.first_event, LOG_END)
    assert cuts["test"] == old["test"] == [datetime(2024, 10, 1, tzinfo=UTC)]
    assert cuts["val"] == old["val"] == [datetime(2024, 9, 1, tzinfo=UTC)]
    assert old["train"][0] == datetime(2024, 3, 1, tzinfo=UTC) < visits.at  # 12 back every 14 days
    assert cuts["train"] == old["train"][1:]


def test_steady_arrivals_keep_their_schedule(events_path, caplog) -> None:
    """The default synthetic data (customers arriving all year): the activity start holds back
    no cutoff, so the schedule (and the default run's metrics) is what it was."""
    events = load_events(events_path, EventSchema.from_config({}))
    for labels in ({}, {"horizon_days": 14}, {"horizon_days": 60, "cutoffs": {"n_train": 2}}):
        with caplog.at_level(logging.INFO, logger="journeyformer.data.labels.samples"):
            pre = Preprocessing.fit(events, {}, labels)
        first, end = events.get_column("timestamp").min(), data_end(events).end
        old = CutoffSchedule.from_config(labels.get("cutoffs", {}), pre.horizon_days).resolve(first, end)
        old["val"] = sorted(set(pre.cutoffs["val"]) | set(old["val"]))  # pooled when small
        assert {k: list(v) for k, v in pre.cutoffs.items()} == old, labels
    assert "cutoffs: test " in caplog.text and "events before it" not in caplog.text  # nothing held back


def test_a_small_log_pools_validation_over_earlier_cutoffs(caplog) -> None:
    """Early stopping, calibration, the stage rule and the per-head choice are decided on
    validation: a log with a few dozen validation customers at one cutoff pools earlier ones
    (every train_stride_days back), says so, and keeps validation out of time for its own
    customers; the streaming fit finds the same cutoffs."""
    from journeyformer.data.labels.lifecycle import samples_at

    events = mailed_log(n=400)
    labels = {**LABELS_CFG, "cutoffs": {"val_samples": 150}}
    one = Preprocessing.fit(events, {}, {**LABELS_CFG, "cutoffs": {"max_val_cutoffs": 1}})
    (val,) = one.cutoffs["val"]
    with caplog.at_level(logging.WARNING, logger="journeyformer.data.labels.samples"):
        pre = Preprocessing.fit(events, {}, labels)
    cuts = list(pre.cutoffs["val"])
    assert max(cuts) == val and 1 < len(cuts) <= 4
    assert [b - a for a, b in zip(cuts, cuts[1:], strict=False)] == [timedelta(days=30)] * (len(cuts) - 1)
    assert pre.cutoffs["train"] == one.cutoffs["train"] and pre.cutoffs["test"] == one.cutoffs["test"]

    splits, counts = pre.split_sequences(events)
    built = [c.samples for c in counts["val"]]
    val_events = events.filter(pl.col("customer_id").is_in(pre.split.customers(events)["val"].implode()))
    assert built == [samples_at(val_events, t, pre.labels, pre.active_within_days) for t in cuts]
    assert sum(built[1:]) < 150 <= sum(built) or len(cuts) == 4  # stopped as soon as there were enough
    assert len(splits["val"]) == sum(built) > len(one.split_sequences(events)[0]["val"])
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("validation: ")]
    assert f"{built[-1]} samples at {val:%Y-%m-%d}, fewer than labels.cutoffs.val_samples=150" in line
    assert f"pooled over {len(cuts)} cutoffs" in line
    # no validation customer trains on a label window reaching its earliest validation cutoff
    all_customers = dataclasses.replace(pre, split=dataclasses.replace(pre.split, train_customers="all"))
    val_ids = set(all_customers.split.customers(events)["val"].to_list())
    for cut in all_customers.cutoffs["train"]:
        ids = set(all_customers.customers_at(all_customers.split.customers(events), "train", cut).to_list())
        assert not ids & val_ids or cut + all_customers.labels.horizon <= min(cuts)
    assert Preprocessing.fit(events.lazy(), {}, labels).to_dict() == pre.to_dict()  # the sample store fits lazily
    # enough samples at one cutoff (the default 2000 is not reached here, a low target is): one
    assert Preprocessing.fit(events, {}, {**LABELS_CFG, "cutoffs": {"val_samples": 5}}).cutoffs["val"] == (val,)
