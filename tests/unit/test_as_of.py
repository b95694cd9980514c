"""The default as_of (issue 9): a few stray late events cannot move it; the rule is logged."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl

from journeyformer.data.events.as_of import data_end

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def stamps(values: list[datetime]) -> pl.DataFrame:
    return pl.DataFrame({"timestamp": values}).with_columns(
        pl.col("timestamp").dt.cast_time_unit("us")
    )


def test_one_event_in_2200_does_not_move_the_end() -> None:
    hourly = [T0 + timedelta(hours=i) for i in range(5000)]
    end = data_end(stamps([*hourly, datetime(2200, 1, 1, tzinfo=UTC)]))
    assert end.end == hourly[-1]
    assert end.n_strays == 1 and end.strays == [datetime(2200, 1, 1, tzinfo=UTC)]
    line = end.describe("events.parquet")
    assert "data ends 2025-07-28T07:00:00+00:00" in line and "ignored 1 stray" in line
    assert "\n" not in line


def test_a_handful_of_strays_among_many_events() -> None:
    daily = [T0 + timedelta(minutes=10 * i) for i in range(20_000)]
    strays = [datetime(2026, 6, d, tzinfo=UTC) for d in range(1, 11)]
    end = data_end(stamps(daily + strays))
    assert end.end == daily[-1] and end.n_strays == 10


def test_ordinary_data_ends_at_its_latest_event() -> None:
    for n in (1, 2, 3, 50, 3000):
        values = [T0 + timedelta(days=i % 300, minutes=i) for i in range(n)]
        assert data_end(stamps(values)).end == max(values)


def test_a_first_pass_run_elsewhere_gives_the_same_end() -> None:
    """EventChunks runs data_end's first pass inside its own plan query (span=...)."""
    from journeyformer.data.events.as_of import span_exprs

    daily = [T0 + timedelta(minutes=10 * i) for i in range(20_000)]
    for values in (daily, [*daily, *(datetime(2026, 6, d, tzinfo=UTC) for d in range(1, 11))], [None, *daily[:3]]):
        frame = stamps(values)
        span = frame.select(span_exprs()).row(0)
        assert span[0] == sum(v is not None for v in values)
        assert data_end(frame, span=span) == data_end(frame)
