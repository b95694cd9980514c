"""Rename a user's columns to the canonical ones and cast their types (lazily, no values read).

:func:`normalize` checks what the column types alone can tell (a missing column, a timestamp
column of the wrong type, epoch units mixed within one column) and raises
:class:`journeyformer.errors.EventDataError`. Problems with individual values are left as
nulls plus ``_ts_raw`` / ``_amount_raw`` columns for :func:`journeyformer.data.events.validate.validate`
to count and report. The canonical columns are listed in :mod:`journeyformer.data.events.schema`.
"""

from __future__ import annotations

import polars as pl

from journeyformer.data.events.order import DUP_KEY, ROW
from journeyformer.data.events.schema import NULL_CATEGORY, REQUIRED, EventSchema
from journeyformer.data.events.timestamps import (
    UTC_US,
    epoch_unit,
    is_text,
    raw_timestamp,
    timestamp_expr,
)
from journeyformer.errors import EventDataError


def normalize(lf: pl.LazyFrame, schema: EventSchema, name: str) -> pl.LazyFrame:
    """Rename to canonical columns and cast types; checks what the schema alone can tell.

    Value-level problems (unparseable timestamps, non-numeric amounts, null keys) are left as
    nulls plus ``_ts_raw`` / ``_amount_raw`` columns for
    :func:`journeyformer.data.events.validate.validate` to count and report.
    """
    have = lf.collect_schema()
    _check_present(have, schema, name)
    exprs = [
        _customer_id(have, schema, name),
        *_timestamp(lf, have, schema, name),
        *_categorical(have, schema, name),
        *_amount(have, schema, name),
        *_item(have, schema, name),
        *_extras(have, schema, name),
        # Exact duplicates are judged on every column of the file, not only on those read here.
        pl.struct(pl.all()).hash(seed=7).alias(DUP_KEY),
    ]
    return lf.select(*exprs).with_row_index(ROW)


def already_canonical(df: pl.DataFrame, schema: EventSchema) -> pl.DataFrame | None:
    """What :func:`normalize` would give for ``df`` (collected, without the ``_ts_raw`` /
    ``_amount_raw`` / duplicate-key helper columns), built without a query, when ``df``
    already holds the canonical columns: unmapped names, customer_id Int64, timestamp
    Datetime("us", "UTC"), channel, action and extra categoricals String without nulls,
    amount and extra numerics Float64. None otherwise (then :func:`normalize` does the work).

    A service that scores a few customers per call and keeps events in these types skips a
    query plan per call. Without the duplicate key the frame suits only
    :func:`journeyformer.data.events.validate.clean` (it has nothing to report or drop).
    """
    categorical = ("channel", "action", *schema.extra_categorical)
    numeric = ("amount", *schema.extra_numeric)
    wanted = {"customer_id": pl.Int64, "timestamp": UTC_US, "channel": pl.String, "action": pl.String}
    wanted |= {"amount": pl.Float64} | dict.fromkeys(categorical[2:], pl.String) | dict.fromkeys(numeric[1:], pl.Float64)
    have = df.schema
    if schema.has_item or any(schema.source(c) != c for c in (*REQUIRED, "amount")) or any(have.get(c) != t for c, t in wanted.items()):
        return None
    if any(df.get_column(c).null_count() for c in categorical):
        return None  # nulls become the <null> category: normalize's job
    return pl.DataFrame([df.get_column(c) for c in wanted]).with_row_index(ROW)


def _is_categorical_type(dtype: pl.DataType) -> bool:
    return is_text(dtype) or dtype in (pl.Boolean, pl.Null) or dtype.is_integer()


def _check_present(have: pl.Schema, schema: EventSchema, name: str) -> None:
    """Every column the schema reads exists (an unmapped, absent amount is allowed)."""
    missing = [
        (canon, src)
        for canon, src in schema.read_columns().items()
        if src not in have and not (canon == "amount" and "amount" not in schema.columns)
    ]
    if missing:
        what = ", ".join(f"'{src}' (for {canon})" for canon, src in missing)
        raise EventDataError(
            f"{name}: missing column(s) {what}. Available columns: {list(have)}. "
            "Map your names with data.columns.<name>=<your column> (no amounts? "
            "data.columns.amount=null; no items? data.columns.item=null) or fix "
            "data.extra_categorical / data.extra_numeric."
        )


def _customer_id(have: pl.Schema, schema: EventSchema, name: str) -> pl.Expr:
    """customer_id as Int64 (integer input) or String (text input)."""
    cid = schema.source("customer_id")
    cid_type = have[cid]
    if cid_type.is_integer():
        return pl.col(cid).cast(pl.Int64).alias("customer_id")
    if is_text(cid_type) or cid_type == pl.Null:
        return pl.col(cid).cast(pl.String).alias("customer_id")
    raise EventDataError(
        f"{name}: column '{cid}' (customer_id) has type {cid_type}; expected integers or "
        "strings. Cast it, or map another column with data.columns.customer_id=..."
    )


def _timestamp(
    lf: pl.LazyFrame, have: pl.Schema, schema: EventSchema, name: str
) -> list[pl.Expr]:
    """timestamp as Datetime("us", "UTC"), plus ``_ts_raw`` (the input value, for messages)."""
    ts = schema.source("timestamp")
    unit, mixed = epoch_unit(lf, have[ts], ts, schema.timestamp_unit)
    if mixed:
        raise EventDataError(
            f"{name}: column '{ts}' (timestamp) mixes epoch units: {mixed['n_s']} values look "
            f"like seconds (below 1e10, e.g. {mixed['s']}) and {mixed['n_ms']} like milliseconds "
            f"(1e10 and above, e.g. {mixed['ms']}). The unit is decided per column: convert "
            "the column to one unit, or set data.timestamp_unit=s or data.timestamp_unit=ms."
        )
    ts_expr = timestamp_expr(have[ts], ts, unit, schema.time_zone)
    if ts_expr is None:
        raise EventDataError(
            f"{name}: column '{ts}' (timestamp) has type {have[ts]}; expected a datetime, an "
            "ISO-8601 string, or epoch seconds/milliseconds. Map another column with "
            "data.columns.timestamp=..."
        )
    return [ts_expr.alias("timestamp"), raw_timestamp(have[ts], ts).alias("_ts_raw")]


def _categorical(have: pl.Schema, schema: EventSchema, name: str) -> list[pl.Expr]:
    """channel and action as strings, nulls as the category ``<null>``."""
    exprs = []
    for canon in ("channel", "action"):
        src = schema.source(canon)
        if not _is_categorical_type(have[src]):
            raise EventDataError(
                f"{name}: column '{src}' ({canon}) has type {have[src]}; expected strings "
                f"or integer codes. Map another column with data.columns.{canon}=..."
            )
        exprs.append(pl.col(src).cast(pl.String).fill_null(NULL_CATEGORY).alias(canon))
    return exprs


def _amount(have: pl.Schema, schema: EventSchema, name: str) -> list[pl.Expr]:
    """amount as Float64 (0 without an amount column); text input keeps ``_amount_raw``."""
    src = schema.source("amount")
    if not (src and src in have):
        return [pl.lit(0.0, pl.Float64).alias("amount")]
    dtype = have[src]
    if dtype == pl.String:
        return [
            pl.col(src).str.strip_chars().cast(pl.Float64, strict=False).alias("amount"),
            pl.col(src).alias("_amount_raw"),
        ]
    if dtype.is_numeric() or dtype == pl.Null:
        return [pl.col(src).cast(pl.Float64).alias("amount")]
    raise EventDataError(
        f"{name}: column '{src}' (amount) has type {dtype}; expected "
        "numbers. Map another column with data.columns.amount=... or set it to null."
    )


def _item(have: pl.Schema, schema: EventSchema, name: str) -> list[pl.Expr]:
    """item as String (integer ids as their digits), null where an event has no item; nothing
    without ``data.columns.item``."""
    if not schema.has_item:
        return []
    src = schema.source("item")
    assert src is not None
    dtype = have[src]
    if not _is_categorical_type(dtype) or dtype == pl.Boolean:
        raise EventDataError(
            f"{name}: column '{src}' (item) has type {dtype}; expected string or integer item "
            "ids (float ids such as 12.0 are ambiguous: cast them to integers). Cast the column "
            "or map another one with data.columns.item=..."
        )
    return [pl.col(src).cast(pl.String).alias("item")]


def _extras(have: pl.Schema, schema: EventSchema, name: str) -> list[pl.Expr]:
    """Extra categorical columns as strings (nulls as ``<null>``), extra numeric as Float64."""
    exprs = []
    for extra in schema.extra_categorical:
        if not _is_categorical_type(have[extra]):
            raise EventDataError(
                f"{name}: column '{extra}' is listed in data.extra_categorical but has type "
                f"{have[extra]}; expected strings or integer codes. Cast it or remove it there."
            )
        exprs.append(pl.col(extra).cast(pl.String).fill_null(NULL_CATEGORY))
    for extra in schema.extra_numeric:
        if not (have[extra].is_numeric() or have[extra] in (pl.Boolean, pl.Null)):
            raise EventDataError(
                f"{name}: column '{extra}' is listed in data.extra_numeric but has type "
                f"{have[extra]}; move it to data.extra_categorical or cast it to numbers."
            )
        exprs.append(pl.col(extra).cast(pl.Float64))
    return exprs
