"""Check the values of normalized events and apply the policies of the schema.

:func:`validate` takes a collected frame from :func:`journeyformer.data.events.normalize.normalize`
and returns the clean canonical events sorted by (customer_id, timestamp, _row); the checks and
policies are :mod:`journeyformer.data.events.schema`'s, with a count and examples in every message.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import numpy as np
import polars as pl

from journeyformer.data.events.order import (
    DUP_KEY,
    ROW,
    same_key_as_prev,
    sort_events,
    sorted_expr,
)
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.events.timestamps import epoch_micros
from journeyformer.errors import EventDataError

log = logging.getLogger(__name__)

_EXAMPLES = 5
SMALL_FRAME = 50_000  # rows up to which the clean check runs in NumPy
NULL_KEY = pl.col("customer_id").is_null() | pl.col("timestamp").is_null()
# Amount text that is not a number (normalize leaves the original in _amount_raw).
BAD_AMOUNT = pl.col("amount").is_null() & (pl.col("_amount_raw").str.strip_chars() != "")


def _numeric(schema: EventSchema) -> list[str]:
    return ["amount", *schema.extra_numeric]


def validate(df: pl.DataFrame, schema: EventSchema, name: str) -> pl.DataFrame:
    """Check values of a normalized frame; apply the null-key and duplicate policies.

    Returns the clean frame without the helper columns, sorted by (customer_id, timestamp,
    _row). Raises :class:`EventDataError`.
    """
    if df.height == 0:
        raise EventDataError(
            f"{name}: no events (the input is empty); point data.path at your events"
        )
    out = clean(df, schema)
    if out is None:
        out = _validate_steps(df, schema, name)
    if schema.has_item:
        count_missing_items(out, schema, name)
    return out


def count_missing_items(df: pl.DataFrame, schema: EventSchema, name: str) -> int:
    """Events with a null item (``data.columns.item``): kept as events without an item (item
    id 0, the padding id, never a target), counted in one WARNING; returns the count."""
    n = int(df.get_column("item").null_count())
    if n:
        log.warning(
            "%s: %d of %d events have no item (null in column '%s'); they stay events without "
            "an item (never a next-item target)",
            name, n, df.height, schema.source("item"),
        )
    return n


def clean(df: pl.DataFrame, schema: EventSchema) -> pl.DataFrame | None:
    """What :func:`validate` returns when it has nothing to report, drop or sort, else None.

    The steps of :func:`validate` would then only drop the helper columns and fill null/NaN
    numbers with 0: done here without a query (a service scoring one customer at a time pays
    the per-query cost of each).
    """
    if df.height == 0:
        return None
    if _numpy_checks(df):
        ok, order = _clean_order(df, schema)
        if not ok:
            return None
        out = df[order] if order is not None else df.clone()  # clone: shallow
    elif _is_clean(df, schema):
        out = df.clone()
    else:
        return None
    for helper in ("_ts_raw", "_amount_raw", DUP_KEY):
        if helper in out.columns:
            out.drop_in_place(helper)
    missing = [c for c in _numeric(schema) if np.isnan(out.get_column(c).to_numpy()).any()]  # null too
    if missing:
        out = out.with_columns(pl.col(c).fill_nan(0.0).fill_null(0.0) for c in missing)
    out.replace_column(out.get_column_index("customer_id"), out.get_column("customer_id").set_sorted())
    return out


def _validate_steps(df: pl.DataFrame, schema: EventSchema, name: str) -> pl.DataFrame:
    """:func:`validate` one check and policy at a time (reports, drops, sorts)."""
    df = _check_timestamps(df, schema, name)
    df = _check_numbers(df, schema, name)
    df = _apply_null_keys(df, schema, name)
    df = apply_future_policy(df, schema, name)
    df = sort_events(df)
    if schema.duplicates == "drop":
        df = _drop_duplicates(df, name)
    return df.drop(DUP_KEY, strict=False)


def _is_clean(df: pl.DataFrame, schema: EventSchema) -> bool:
    """True when no check or policy of :func:`validate` has anything to do: no null key (which
    an unparseable timestamp also is), no amount text that is not a number, no infinite
    number, no event after the wall clock, rows already sorted and, with
    ``data.duplicates=drop``, no two rows with the same customer and timestamp. One query,
    or for a small frame with integer ids (a service's call) NumPy without a query plan."""
    if _numpy_checks(df):
        ok, order = _clean_order(df, schema)
        return ok and order is None
    checks = [
        ~NULL_KEY.any(),
        ~pl.any_horizontal(pl.col(c).is_infinite() for c in _numeric(schema)).any(),
        # Compared as epoch microseconds: a time-zone-aware literal costs a millisecond to build.
        ~(pl.col("timestamp").dt.epoch("us") > epoch_micros(now_utc())).any(),
        sorted_expr(),
    ]
    if "_amount_raw" in df.columns:
        checks.append(~BAD_AMOUNT.any())
    if schema.duplicates == "drop":
        checks.append(~same_key_as_prev().any())
    return bool(df.select(pl.all_horizontal(checks)).item())


def _numpy_checks(df: pl.DataFrame) -> bool:
    """Whether the clean check runs in NumPy: a small frame with integer customer ids and no
    amount text (a service's call)."""
    return df.height <= SMALL_FRAME and df.schema["customer_id"].is_integer() and "_amount_raw" not in df.columns


def _clean_order(df: pl.DataFrame, schema: EventSchema) -> tuple[bool, np.ndarray | None]:
    """:func:`_is_clean` in NumPy, except that the rows may be in any order: whether the frame
    is clean once sorted, and the permutation sorting it by (customer_id, timestamp, _row)
    (None: already in order). A service sends a few customers' events in any order."""
    cid, ts = df.get_column("customer_id"), df.get_column("timestamp")
    if cid.null_count() or ts.null_count():
        return False, None
    t = ts.cast(pl.Int64).to_numpy()  # epoch us
    if t.max() > epoch_micros(now_utc()):
        return False, None
    if any(np.isinf(df.get_column(c).to_numpy()).any() for c in _numeric(schema)):
        return False, None
    c, row = cid.to_numpy(), df.get_column(ROW).to_numpy()
    same_c, same_t = c[1:] == c[:-1], t[1:] == t[:-1]
    in_order = (c[1:] > c[:-1]) | (same_c & ((t[1:] > t[:-1]) | (same_t & (row[1:] > row[:-1]))))
    order = None
    if not in_order.all():
        order = np.lexsort((row, t, c))
        c, t = c[order], t[order]
        same_c, same_t = c[1:] == c[:-1], t[1:] == t[:-1]
    return not (schema.duplicates == "drop" and (same_c & same_t).any()), order


def _examples(df: pl.DataFrame, mask: pl.Expr, col: str) -> list[Any]:
    return [str(v) for v in df.filter(mask).get_column(col).head(_EXAMPLES).to_list()]


def _check_timestamps(df: pl.DataFrame, schema: EventSchema, name: str) -> pl.DataFrame:
    """Values that could not be parsed as timestamps are an error; drops ``_ts_raw``."""
    if "_ts_raw" not in df.columns:
        return df
    bad_ts = pl.col("timestamp").is_null() & pl.col("_ts_raw").is_not_null()
    n_bad = df.select(bad_ts.sum()).item()
    if n_bad:
        zone = (
            f" Naive times are read in data.time_zone={schema.time_zone!r}, where wall times "
            "skipped by a daylight-saving change do not exist."
            if schema.time_zone != "UTC"
            else ""
        )
        raise EventDataError(
            f"{name}: column '{schema.source('timestamp')}' (timestamp): {n_bad} of {df.height} "
            f"values cannot be parsed, e.g. {_examples(df, bad_ts, '_ts_raw')}. Use ISO-8601 "
            "(2025-01-31T12:00:00, optional +02:00), a datetime column, or epoch seconds/ms "
            f"(data.timestamp_unit={schema.timestamp_unit!r}).{zone}"
        )
    return df.drop("_ts_raw")


def _check_numbers(df: pl.DataFrame, schema: EventSchema, name: str) -> pl.DataFrame:
    """Amount and extra numeric columns: text that is not a number and infinities are errors;
    null and NaN become 0."""
    if "_amount_raw" in df.columns:
        n_bad = df.select(BAD_AMOUNT.sum()).item()
        if n_bad:
            raise EventDataError(
                f"{name}: column '{schema.source('amount')}' (amount): {n_bad} of {df.height} "
                f"values are not numbers, e.g. {_examples(df, BAD_AMOUNT, '_amount_raw')}. Clean them "
                "or set data.columns.amount=null."
            )
        df = df.drop("_amount_raw")
    numeric = _numeric(schema)
    n_inf = df.select(pl.col(c).is_infinite().sum() for c in numeric).row(0)
    for col, n in zip(numeric, n_inf, strict=True):
        if n:
            src = schema.source("amount") if col == "amount" else col
            raise EventDataError(
                f"{name}: column '{src}' ({col}): {n} of {df.height} values are infinite, e.g. "
                f"{_examples(df, pl.col(col).is_infinite(), col)}. Replace them by finite numbers."
            )
    return df.with_columns(pl.col(c).fill_nan(0.0).fill_null(0.0) for c in numeric)


def _apply_null_keys(df: pl.DataFrame, schema: EventSchema, name: str) -> pl.DataFrame:
    """Rows with a null customer_id or timestamp: an error or dropped (``data.null_keys``)."""
    n_null = df.select(NULL_KEY.sum()).item()
    if not n_null:
        return df
    detail = (
        f"{df['customer_id'].null_count()} null customer_id "
        f"('{schema.source('customer_id')}'), {df['timestamp'].null_count()} null timestamp "
        f"('{schema.source('timestamp')}')"
    )
    if schema.null_keys == "error":
        raise EventDataError(
            f"{name}: {n_null} of {df.height} rows have a null key ({detail}). Fix the data "
            "or set data.null_keys=drop to drop them."
        )
    log.warning("%s: dropped %d of %d rows with a null key (%s)", name, n_null, df.height, detail)
    df = df.filter(~NULL_KEY)
    if df.height == 0:
        raise EventDataError(f"{name}: every row has a null customer_id or timestamp")
    return df


def _drop_duplicates(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """Sorted events without exact duplicates (the first in input order stays), logged.

    Duplicates share (customer_id, timestamp), so in sorted order they sit in runs of equal
    keys; only rows in such runs are compared on every column.
    """
    same = same_key_as_prev()
    runs = df.filter(same | same.shift(-1).fill_null(False))
    if runs.height == 0:
        return df
    keys = [c for c in df.columns if c != ROW]
    repeats = runs.filter(~pl.struct(keys).is_first_distinct())
    if repeats.height:
        log.warning(
            "%s: dropped %d of %d events as exact duplicates (equal in every column of the "
            "file), e.g. %s; set data.duplicates=keep to keep them",
            name, repeats.height, df.height, event_examples(repeats),
        )  # fmt: skip
    return df.filter(~pl.col(ROW).is_in(repeats.get_column(ROW).implode()))


def event_examples(df: pl.DataFrame, n: int = _EXAMPLES) -> list[str]:
    """A few events as ``customer_id @ timestamp action`` strings, for messages."""
    rows = df.head(n).select("customer_id", "timestamp", "action").iter_rows()
    return [f"{c} @ {t:%Y-%m-%d %H:%M:%S} {a}" for c, t, a in rows]


def now_utc() -> datetime:
    """The wall clock (a function, so tests can move it)."""
    return datetime.now(timezone.utc)


def _future_events(name: str, n: int, total: int, future: pl.DataFrame, now: datetime) -> str:
    examples = event_examples(future.sort("timestamp", descending=True))
    return (
        f"{name}: {n} of {total} events are dated after the wall clock "
        f"({now:%Y-%m-%d %H:%M} UTC), e.g. {examples}"
    )


def future_events_error(name: str, n: int, total: int, future: pl.DataFrame) -> EventDataError:
    """The error for ``n`` of ``total`` events after the wall clock (``future``: some of them)."""
    return EventDataError(
        f"{_future_events(name, n, total, future, now_utc())}. Fix their timestamps "
        "(data.time_zone / data.timestamp_unit?), or set data.future_events=drop to drop them "
        "or data.future_events=keep to keep them."
    )


def apply_future_policy(df: pl.DataFrame, schema: EventSchema, name: str) -> pl.DataFrame:
    """Events after the wall clock: an error, dropped or kept per ``data.future_events``; the
    count and examples are reported in every case."""
    now = now_utc()
    future = pl.col("timestamp") > now
    n = df.select(future.sum()).item()
    if not n:
        return df
    if schema.future_events == "error":
        raise future_events_error(name, n, df.height, df.filter(future))
    drop = schema.future_events == "drop"
    what = _future_events(name, n, df.height, df.filter(future), now)
    log.warning("%s; data.future_events=%s: %s", what, schema.future_events, "dropped" if drop else "kept")
    return df.filter(~future) if drop else df
