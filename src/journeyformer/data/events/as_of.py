"""The default ``as_of``: the end of the data, by a rule that a few stray late events cannot move.

Rule (:func:`data_end`): with ``n`` events, let ``k = ceil(0.1% of n)`` (at least 1) and ``q``
the timestamp of the ``(k+1)``-th latest event. The end of the data is the latest event no more
than ``slack = max(7 days, 10% of the span from the first event to q)`` after ``q``. Later
events are *stray*: counted, shown with examples, and ignored for the default (they still
count as events; ``data.future_events`` decides about events after the wall clock).

On ordinary data the latest events are dense, so the end is simply the latest event; one event
dated 2200 (or a handful of mistyped years) cannot move it. predict scores at the end, evaluate
and training place their last cutoff one horizon before it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

log = logging.getLogger(__name__)

STRAY_SHARE = 0.001
MIN_SLACK = timedelta(days=7)
SLACK_SHARE = 0.10
RULE = (
    "the latest event at most max(7 days, 10% of the span) after the rest (the latest 0.1% of "
    "events may be stray)"
)


@dataclass(frozen=True)
class DataEnd:
    """Where the data ends. ``strays``: up to 5 stray timestamps, latest first."""

    end: datetime
    latest: datetime
    n_strays: int = 0
    strays: list[datetime] = field(default_factory=list)

    def describe(self, name: str) -> str:
        """One line: the value, the rule and what it ignored."""
        text = f"{name}: data ends {self.end.isoformat()} (rule: {RULE})"
        if self.n_strays:
            shown = [f"{t:%Y-%m-%d %H:%M}" for t in self.strays]
            text += (
                f"; ignored {self.n_strays} stray event(s) after it, e.g. {shown} (set as_of "
                "to choose another time)"
            )
        return text


def span_exprs(column: str = "timestamp") -> list[pl.Expr]:
    """The first pass of :func:`data_end` (count, first, latest of ``column``), to run in a
    query that reads the input anyway and pass on as ``data_end(..., span=...)``."""
    ts = pl.col(column)
    return [ts.count().alias("_span_n"), ts.min().alias("_span_lo"), ts.max().alias("_span_hi")]


def data_end(
    lf: pl.LazyFrame | pl.DataFrame,
    column: str = "timestamp",
    span: tuple[int, datetime | None, datetime | None] | None = None,
) -> DataEnd:
    """The end of the data in ``column`` (UTC datetimes) by the rule of the module docstring.

    Two streaming passes over the one column; one when ``span`` (the non-null count, first and
    latest value, :func:`span_exprs`) is known. Raises ValueError when it has no values.
    """
    ts = lf.lazy().select(pl.col(column).drop_nulls())
    if span is None:
        span = ts.select(span_exprs(column)).collect(engine="streaming").row(0)
    n, first, latest = span
    if not n:
        raise ValueError(f"no timestamps in column {column!r}")
    k = max(1, math.ceil(n * STRAY_SHARE))
    if n <= k:
        return DataEnd(latest, latest)
    tail = (
        ts.select(pl.col(column).top_k(k + 1)).collect(engine="streaming").get_column(column)
    ).sort(descending=True)
    q = tail[k]
    slack = max(MIN_SLACK, (q - first) * SLACK_SHARE)
    kept = tail.filter(tail <= q + slack)
    strays = tail.filter(tail > q + slack)
    return DataEnd(kept[0], latest, strays.len(), strays.head(5).to_list())
