"""Short histories: nine months with a 91-day horizon give train and validation cutoffs."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from journeyformer.data.labels.samples import CutoffSchedule

UTC = timezone.utc


def test_nine_months_with_a_91_day_horizon_validates_by_customer_split(caplog):
    first, last = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 9, 30, tzinfo=UTC)
    with caplog.at_level(logging.WARNING):
        cuts = CutoffSchedule(horizon_days=91).resolve(first, last)
    h = timedelta(days=91)
    assert cuts["test"] == [last - h] and cuts["val"] == [last - 2 * h]
    assert cuts["train"] and max(cuts["train"]) == cuts["val"][0]  # same time, other customers
    assert all(t > first for t in cuts["train"])
    assert any("held-out customers" in r.message for r in caplog.records)


def test_a_year_keeps_validation_out_of_time(caplog):
    first, last = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, tzinfo=UTC)
    with caplog.at_level(logging.WARNING):
        cuts = CutoffSchedule(horizon_days=30).resolve(first, last)
    assert max(cuts["train"]) + timedelta(days=30) <= cuts["val"][0]
    assert not any("held-out customers" in r.message for r in caplog.records)


def test_too_short_even_for_customer_split_validation():
    first = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="too short for horizon 91"):
        CutoffSchedule(horizon_days=91).resolve(first, first + timedelta(days=150))
