"""The event contract: read a user's events as they are and validate them.

One row per event. After :func:`load_events` every frame has the canonical columns

=============  ==============================  ==========================================
column         dtype                           meaning
=============  ==============================  ==========================================
_row           UInt32/UInt64                   position in the input: breaks timestamp ties
customer_id    Int64 or String (as given)      who
timestamp      Datetime("us", "UTC")           when (naive input is read in ``time_zone``)
channel        String                          web, app, email, store, ...
action         String                          page_view, purchase, ...
amount         Float64                         currency units; 0 when absent, null or NaN
<extras>       String / Float64                ``extra_categorical`` / ``extra_numeric``
=============  ==============================  ==========================================

and its rows sorted by (customer_id, timestamp, _row), the order every later step needs
(:mod:`journeyformer.data.event_order`).

Timestamps may be datetimes, dates, ISO-8601 strings (``2025-01-31``, ``2025-01-31 12:00``,
``2025-01-31T12:00:00.5+02:00``, ``...Z``), or epoch seconds / milliseconds as numbers or digit
strings (``timestamp_unit: auto`` decides the unit once per column: magnitudes below 1e10 are
seconds, at or above are milliseconds; a column with both is an error). Naive values
are read in ``time_zone``; a wall time that a daylight-saving change repeats takes the earlier
instant, one that it skips is an error. Parsing lives in :mod:`journeyformer.data.timestamps`.

Policies: rows with a null customer_id or timestamp raise (``null_keys: error``) or are dropped
with a logged count (``null_keys: drop``). Exact duplicates, rows equal in every column of the
file (not only the columns the model reads), are dropped keeping the first in input order
(``duplicates: drop``, a WARNING with the count and examples) or kept (``duplicates: keep``).
Events after the wall clock raise (``future_events: error``, the default), are dropped
(``drop``) or kept (``keep``), with a count and examples either way. Null categorical values
become the category ``"<null>"``; null and NaN numbers become 0; infinite numbers are an error.
Reading the file(s) (formats, CSV separators, Parquet directories) is
:mod:`journeyformer.data.readers`.

Errors are :class:`EventDataError` and name the file, the column, the problem, how many
rows, a few example values and the setting to change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

# ROW, check_time_zone, sort_events, resolve_files, scan_raw and EventDataError are also
# imported from here by other modules.
from journeyformer.data.event_order import DUP_KEY, ROW, drop_duplicates, sort_events
from journeyformer.data.readers import resolve_files, scan_raw  # noqa: F401
from journeyformer.data.timestamps import (
    check_time_zone,
    epoch_unit,
    raw_timestamp,
    timestamp_expr,
)
from journeyformer.errors import ConfigError, EventDataError

log = logging.getLogger(__name__)

REQUIRED = ("customer_id", "timestamp", "channel", "action")
NULL_CATEGORY = "<null>"
_EXAMPLES = 5


@dataclass(frozen=True)
class EventSchema:
    """How to read a user's event table.

    ``columns`` maps our canonical names (customer_id, timestamp, channel, action, amount) to the
    user's column names; a missing ``amount`` mapping, or ``amount: null``, means amount 0.

    Example::

        EventSchema(columns={"customer_id": "user_id", "timestamp": "ts"}, time_zone="Europe/Paris")
    """

    columns: Mapping[str, str | None] = field(default_factory=dict)
    extra_categorical: tuple[str, ...] = ()
    extra_numeric: tuple[str, ...] = ()
    timestamp_unit: str = "auto"  # auto | s | ms, for numeric epoch timestamps
    time_zone: str = "UTC"  # zone of naive timestamps and of hour/day features
    null_keys: str = "error"  # error | drop: rows with a null customer_id or timestamp
    duplicates: str = "drop"  # drop | keep: exact duplicate events
    format: str = "auto"  # auto | parquet | csv
    separator: str = "auto"  # CSV separator; auto: sniffed from the header line
    future_events: str = "error"  # error | drop | keep: events after the wall clock

    def __post_init__(self) -> None:
        unknown = set(self.columns) - {*REQUIRED, "amount"}
        if unknown:
            raise ConfigError(
                f"data.columns has unknown keys {sorted(unknown)}; allowed: "
                f"{[*REQUIRED, 'amount']}. Extra columns go in data.extra_categorical / "
                "data.extra_numeric."
            )
        unmapped = [k for k in REQUIRED if k in self.columns and not self.columns[k]]
        if unmapped:
            raise ConfigError(
                f"data.columns.{unmapped[0]} is empty; {list(REQUIRED)} are required. Set it to "
                "the name of your column."
            )
        _check_choice("data.timestamp_unit", self.timestamp_unit, ("auto", "s", "ms"))
        _check_choice("data.null_keys", self.null_keys, ("error", "drop"))
        _check_choice("data.duplicates", self.duplicates, ("drop", "keep"))
        _check_choice("data.format", self.format, ("auto", "parquet", "csv"))
        _check_choice("data.future_events", self.future_events, ("error", "drop", "keep"))
        if self.separator != "auto" and len(self.separator) != 1:
            raise ConfigError(
                f"data.separator={self.separator!r} must be one character (e.g. ';' or '\\t') "
                "or auto"
            )
        check_time_zone(self.time_zone, "data.time_zone")
        object.__setattr__(self, "extra_categorical", tuple(self.extra_categorical))
        object.__setattr__(self, "extra_numeric", tuple(self.extra_numeric))
        extras = [*self.extra_categorical, *self.extra_numeric]
        clash = sorted(
            {e for e in extras if e in (*REQUIRED, "amount", ROW, "_ts_raw", "_amount_raw")}
            | {e for e in extras if extras.count(e) > 1}
        )
        if clash:
            raise ConfigError(
                f"data.extra_categorical / data.extra_numeric list {clash} twice or use a "
                f"reserved name ({[*REQUIRED, 'amount', ROW]}); list each extra column once."
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> EventSchema:
        """Build from the ``data`` config group (unused keys are ignored)."""
        return cls(
            columns=dict(cfg.get("columns") or {}),
            extra_categorical=tuple(cfg.get("extra_categorical") or ()),
            extra_numeric=tuple(cfg.get("extra_numeric") or ()),
            timestamp_unit=str(cfg.get("timestamp_unit", "auto")),
            time_zone=str(cfg.get("time_zone", "UTC")),
            null_keys=str(cfg.get("null_keys", "error")),
            duplicates=str(cfg.get("duplicates", "drop")),
            format=str(cfg.get("format", "auto")),
            separator=str(cfg.get("separator") or "auto"),
            future_events=str(cfg.get("future_events") or "error"),
        )

    def source(self, name: str) -> str | None:
        """The user's column for canonical ``name`` (identity unless mapped)."""
        if name in self.columns:
            return self.columns[name]
        return name

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": {k: self.source(k) for k in (*REQUIRED, "amount")},
            "extra_categorical": list(self.extra_categorical),
            "extra_numeric": list(self.extra_numeric),
            "timestamp_unit": self.timestamp_unit,
            "time_zone": self.time_zone,
            "null_keys": self.null_keys,
            "duplicates": self.duplicates,
            "format": self.format,
            "separator": self.separator,
            "future_events": self.future_events,
        }


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {list(allowed)}")


def _is_categorical_type(dtype: pl.DataType) -> bool:
    return (
        dtype in (pl.String, pl.Categorical, pl.Boolean, pl.Null)
        or isinstance(dtype, pl.Enum)
        or dtype.is_integer()
    )


def normalize(lf: pl.LazyFrame, schema: EventSchema, name: str) -> pl.LazyFrame:
    """Rename to canonical columns and cast types; checks what the schema alone can tell.

    Value-level problems (unparseable timestamps, non-numeric amounts, null keys) are left as
    nulls plus ``_ts_raw`` / ``_amount_raw`` columns for :func:`validate` to count and report.
    """
    have = lf.collect_schema()
    wanted = [*REQUIRED, *(["amount"] if schema.source("amount") else [])]
    missing = [
        (canon, schema.source(canon))
        for canon in wanted
        if schema.source(canon) not in have
        and not (canon == "amount" and "amount" not in schema.columns)
    ]
    extras = [*schema.extra_categorical, *schema.extra_numeric]
    missing += [(extra, extra) for extra in extras if extra not in have]
    if missing:
        what = ", ".join(f"'{src}' (for {canon})" for canon, src in missing)
        raise EventDataError(
            f"{name}: missing column(s) {what}. Available columns: {list(have)}. "
            "Map your names with data.columns.<name>=<your column> (no amounts? "
            "data.columns.amount=null) or fix data.extra_categorical / data.extra_numeric."
        )
    exprs: list[pl.Expr] = []
    cid = schema.source("customer_id")
    cid_type = have[cid]
    if cid_type.is_integer():
        exprs.append(pl.col(cid).cast(pl.Int64).alias("customer_id"))
    elif cid_type in (pl.String, pl.Categorical, pl.Null) or isinstance(cid_type, pl.Enum):
        exprs.append(pl.col(cid).cast(pl.String).alias("customer_id"))
    else:
        raise EventDataError(
            f"{name}: column '{cid}' (customer_id) has type {cid_type}; expected integers or "
            "strings. Cast it, or map another column with data.columns.customer_id=..."
        )
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
    exprs.append(ts_expr.alias("timestamp"))
    exprs.append(raw_timestamp(have[ts], ts).alias("_ts_raw"))
    for canon in ("channel", "action"):
        src = schema.source(canon)
        if not _is_categorical_type(have[src]):
            raise EventDataError(
                f"{name}: column '{src}' ({canon}) has type {have[src]}; expected strings "
                f"or integer codes. Map another column with data.columns.{canon}=..."
            )
        exprs.append(pl.col(src).cast(pl.String).fill_null(NULL_CATEGORY).alias(canon))
    amount_src = schema.source("amount")
    if amount_src and amount_src in have:
        amount_type = have[amount_src]
        if amount_type == pl.String:
            exprs.append(
                pl.col(amount_src).str.strip_chars().cast(pl.Float64, strict=False).alias("amount")
            )
            exprs.append(pl.col(amount_src).alias("_amount_raw"))
        elif amount_type.is_numeric() or amount_type == pl.Null:
            exprs.append(pl.col(amount_src).cast(pl.Float64).alias("amount"))
        else:
            raise EventDataError(
                f"{name}: column '{amount_src}' (amount) has type {amount_type}; expected "
                "numbers. Map another column with data.columns.amount=... or set it to null."
            )
    else:
        exprs.append(pl.lit(0.0, pl.Float64).alias("amount"))
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
    # Exact duplicates are judged on every column of the file, not only on those read here.
    exprs.append(pl.struct(pl.all()).hash(seed=7).alias(DUP_KEY))
    return lf.select(*exprs).with_row_index(ROW)


def _examples(df: pl.DataFrame, mask: pl.Expr, col: str) -> list[Any]:
    return [str(v) for v in df.filter(mask).get_column(col).head(_EXAMPLES).to_list()]


def _check_numbers(df: pl.DataFrame, schema: EventSchema, name: str) -> pl.DataFrame:
    """Amount and extra numeric columns: text that is not a number and infinities are errors;
    null and NaN become 0."""
    if "_amount_raw" in df.columns:
        bad = pl.col("amount").is_null() & (pl.col("_amount_raw").str.strip_chars() != "")
        n_bad = df.select(bad.sum()).item()
        if n_bad:
            raise EventDataError(
                f"{name}: column '{schema.source('amount')}' (amount): {n_bad} of {df.height} "
                f"values are not numbers, e.g. {_examples(df, bad, '_amount_raw')}. Clean them "
                "or set data.columns.amount=null."
            )
        df = df.drop("_amount_raw")
    numeric = ["amount", *schema.extra_numeric]
    n_inf = df.select(pl.col(c).is_infinite().sum() for c in numeric).row(0)
    for col, n in zip(numeric, n_inf, strict=True):
        if n:
            src = schema.source("amount") if col == "amount" else col
            raise EventDataError(
                f"{name}: column '{src}' ({col}): {n} of {df.height} values are infinite, e.g. "
                f"{_examples(df, pl.col(col).is_infinite(), col)}. Replace them by finite numbers."
            )
    return df.with_columns(pl.col(c).fill_nan(0.0).fill_null(0.0) for c in numeric)


def validate(df: pl.DataFrame, schema: EventSchema, name: str) -> pl.DataFrame:
    """Check values of a normalized frame; apply the null-key and duplicate policies.

    Returns the clean frame without the helper columns, sorted by (customer_id, timestamp,
    _row). Raises :class:`EventDataError`.
    """
    if df.height == 0:
        raise EventDataError(
            f"{name}: no events (the input is empty); point data.path at your events"
        )
    ts_src = schema.source("timestamp")
    if "_ts_raw" in df.columns:
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
                f"{name}: column '{ts_src}' (timestamp): {n_bad} of {df.height} values cannot be "
                f"parsed, e.g. {_examples(df, bad_ts, '_ts_raw')}. Use ISO-8601 "
                "(2025-01-31T12:00:00, optional +02:00), a datetime column, or epoch seconds/ms "
                f"(data.timestamp_unit={schema.timestamp_unit!r}).{zone}"
            )
        df = df.drop("_ts_raw")
    df = _check_numbers(df, schema, name)
    null_key = pl.col("customer_id").is_null() | pl.col("timestamp").is_null()
    n_null = df.select(null_key.sum()).item()
    if n_null:
        detail = (
            f"{df['customer_id'].null_count()} null customer_id "
            f"('{schema.source('customer_id')}'), {df['timestamp'].null_count()} null timestamp "
            f"('{ts_src}')"
        )
        if schema.null_keys == "error":
            raise EventDataError(
                f"{name}: {n_null} of {df.height} rows have a null key ({detail}). Fix the data "
                "or set data.null_keys=drop to drop them."
            )
        log.warning(
            "%s: dropped %d of %d rows with a null key (%s)", name, n_null, df.height, detail
        )
        df = df.filter(~null_key)
        if df.height == 0:
            raise EventDataError(f"{name}: every row has a null customer_id or timestamp")
    df = apply_future_policy(df, schema, name)
    df = sort_events(df)
    if schema.duplicates == "drop":
        before = df
        df = drop_duplicates(df)
        if df.height < before.height:
            dropped = before.join(df.select(ROW), on=ROW, how="anti")
            log.warning(
                "%s: dropped %d of %d events as exact duplicates (equal in every column of the "
                "file), e.g. %s; set data.duplicates=keep to keep them",
                name,
                dropped.height,
                before.height,
                event_examples(dropped),
            )
    return df.drop(DUP_KEY, strict=False)


def event_examples(df: pl.DataFrame, n: int = _EXAMPLES) -> list[str]:
    """A few events as ``customer_id @ timestamp action`` strings, for messages."""
    rows = df.head(n).select("customer_id", "timestamp", "action").iter_rows()
    return [f"{c} @ {t:%Y-%m-%d %H:%M:%S} {a}" for c, t, a in rows]


def now_utc() -> datetime:
    """The wall clock (a function, so tests can move it)."""
    return datetime.now(timezone.utc)


def future_events_error(name: str, n: int, total: int, future: pl.DataFrame) -> EventDataError:
    """The error for ``n`` of ``total`` events after the wall clock (``future``: some of them)."""
    examples = event_examples(future.sort("timestamp", descending=True))
    return EventDataError(
        f"{name}: {n} of {total} events are dated after the wall clock "
        f"({now_utc():%Y-%m-%d %H:%M} UTC), e.g. {examples}. Fix their timestamps "
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
    examples = event_examples(df.filter(future).sort("timestamp", descending=True))
    what = (
        f"{name}: {n} of {df.height} events are dated after the wall clock "
        f"({now:%Y-%m-%d %H:%M} UTC), e.g. {examples}"
    )
    log.warning("%s; data.future_events=%s: %s", what, schema.future_events,
                "dropped" if schema.future_events == "drop" else "kept")  # fmt: skip
    return df.filter(~future) if schema.future_events == "drop" else df


def read_error(name: str, err: Exception) -> EventDataError:
    """A Polars failure while reading ``name`` as an error that says what to check."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return EventDataError(
        f"{name}: cannot read the events: {first}. Check that the file is a valid Parquet/CSV "
        "file (data.format), that all files of a directory/glob have the same columns and "
        "types, and that each column holds one kind of value."
    )


def load_events(path: str | Path, schema: EventSchema) -> pl.DataFrame:
    """Read, normalize and validate events into memory (canonical columns, see module doc)."""
    lf, name = scan_raw(path, schema)
    try:
        df = normalize(lf, schema, name).collect()
    except pl.exceptions.PolarsError as err:
        raise read_error(name, err) from None
    return validate(df, schema, name)


def scan_events(path: str | Path, schema: EventSchema) -> tuple[pl.LazyFrame, str]:
    """Lazy normalized events, for chunked readers that call :func:`validate` per chunk."""
    lf, name = scan_raw(path, schema)
    try:
        return normalize(lf, schema, name), name
    except pl.exceptions.PolarsError as err:
        raise read_error(name, err) from None
