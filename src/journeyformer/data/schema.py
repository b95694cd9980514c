"""The event contract: read a user's events as they are and validate them.

One row per event. After :func:`load_events` every frame has the canonical columns

=============  ==============================  ==========================================
column         dtype                           meaning
=============  ==============================  ==========================================
customer_id    Int64 or String (as given)      who
timestamp      Datetime("us", "UTC")           when (naive input is read in ``time_zone``)
channel        String                          web, app, email, store, ...
action         String                          page_view, purchase, ...
amount         Float64                         currency units; 0 when the column is absent
<extras>       String / Float64                ``extra_categorical`` / ``extra_numeric``
_row           UInt32/UInt64                   position in the input: breaks timestamp ties
=============  ==============================  ==========================================

Errors are :class:`EventDataError` and name the file, the column, the problem, how many
rows, a few example values and the setting to change.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

log = logging.getLogger(__name__)

REQUIRED = ("customer_id", "timestamp", "channel", "action")
ROW = "_row"
_EXAMPLES = 5
# Epoch values above this are milliseconds (1e11 s is the year 5138).
_EPOCH_MS_THRESHOLD = 1e11


class EventDataError(ValueError):
    """The input events break the event contract; the message says where and what to change."""


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
    timestamp_unit: str = "auto"  # auto | s | ms, for integer/float epoch timestamps
    time_zone: str = "UTC"  # zone of naive timestamps and of hour/day features
    null_keys: str = "error"  # error | drop: rows with a null customer_id or timestamp
    duplicates: str = "drop"  # drop | keep: exact duplicate events
    format: str = "auto"  # auto | parquet | csv

    def __post_init__(self) -> None:
        unknown = set(self.columns) - {*REQUIRED, "amount"}
        if unknown:
            raise ValueError(
                f"data.columns has unknown keys {sorted(unknown)}; allowed: "
                f"{[*REQUIRED, 'amount']}. Extra columns go in data.extra_categorical / "
                "data.extra_numeric."
            )
        _check_choice("data.timestamp_unit", self.timestamp_unit, ("auto", "s", "ms"))
        _check_choice("data.null_keys", self.null_keys, ("error", "drop"))
        _check_choice("data.duplicates", self.duplicates, ("drop", "keep"))
        _check_choice("data.format", self.format, ("auto", "parquet", "csv"))
        object.__setattr__(self, "extra_categorical", tuple(self.extra_categorical))
        object.__setattr__(self, "extra_numeric", tuple(self.extra_numeric))

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
        }


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {list(allowed)}")


def resolve_files(path: str | Path) -> list[Path]:
    """A file, a directory of Parquet files, or a glob -> the sorted list of files."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.parquet"))
        if not files:
            raise EventDataError(f"{p}: directory has no *.parquet files")
        return files
    if any(ch in str(path) for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(str(path)))
        if not files:
            raise EventDataError(f"{path}: glob matches no files")
        return files
    if not p.exists():
        raise EventDataError(f"{p}: no such file (set data.path to your events file)")
    return [p]


def _format_of(files: list[Path], fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffixes = {f.suffix.lower() for f in files}
    if suffixes <= {".parquet", ".pq"}:
        return "parquet"
    if suffixes <= {".csv", ".tsv", ".txt"}:
        return "csv"
    raise EventDataError(
        f"{files[0]}: cannot tell the format from suffixes {sorted(suffixes)}; "
        "set data.format=parquet or data.format=csv"
    )


def scan_raw(path: str | Path, schema: EventSchema) -> tuple[pl.LazyFrame, str]:
    """Lazily scan the user's file(s) as they are; returns the frame and a display name."""
    files = resolve_files(path)
    fmt = _format_of(files, schema.format)
    name = str(path)
    if fmt == "parquet":
        lf = pl.scan_parquet(files)
    else:
        sep = "\t" if files[0].suffix.lower() == ".tsv" else ","
        # Keys stay strings until we parse them ourselves, so errors can name bad values.
        overrides = {schema.source("timestamp"): pl.String}
        lf = pl.scan_csv(files, separator=sep, schema_overrides=overrides, infer_schema_length=10_000)
    return lf, name


def _timestamp_expr(raw: pl.DataType, col: str, schema: EventSchema, name: str) -> pl.Expr:
    """An expression turning the user's timestamp column into Datetime("us", "UTC")."""
    c = pl.col(col)
    tz = schema.time_zone
    if isinstance(raw, pl.Datetime):
        c = c.dt.cast_time_unit("us")
        c = c.dt.replace_time_zone(tz) if raw.time_zone is None else c
        return c.dt.convert_time_zone("UTC")
    if raw == pl.Date:
        return c.cast(pl.Datetime("us")).dt.replace_time_zone(tz).dt.convert_time_zone("UTC")
    if raw.is_numeric():
        if schema.timestamp_unit == "auto":
            # Decided per value: magnitudes above 1e11 are milliseconds.
            micros = pl.when(c.abs() > _EPOCH_MS_THRESHOLD).then(c * 1_000).otherwise(c * 1_000_000)
        else:
            micros = c * {"s": 1_000_000, "ms": 1_000}[schema.timestamp_unit]
        return micros.cast(pl.Int64).cast(pl.Datetime("us", "UTC"))
    if raw == pl.String or raw == pl.Categorical:
        s = c.cast(pl.String).str.strip_chars().str.replace(" ", "T", literal=True)
        s = s.str.replace(r"Z$", "+00:00")
        aware = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us")
        naive = pl.coalesce(
            s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us"),
            s.str.to_datetime("%Y-%m-%dT%H:%M", strict=False, time_unit="us"),
            s.str.to_datetime("%Y-%m-%d", strict=False, time_unit="us"),
        )
        return pl.coalesce(
            aware.dt.convert_time_zone("UTC"),
            naive.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC"),
        )
    raise EventDataError(
        f"{name}: column '{col}' (timestamp) has type {raw}; expected a datetime, an ISO-8601 "
        "string, or epoch seconds/milliseconds. Map another column with data.columns.timestamp=..."
    )


def normalize(lf: pl.LazyFrame, schema: EventSchema, name: str) -> pl.LazyFrame:
    """Rename to canonical columns and cast types; checks what the schema alone can tell.

    Value-level problems (unparseable timestamps, null keys) are left as nulls plus a ``_ts_raw``
    column for :func:`validate` to count and report.
    """
    have = lf.collect_schema()
    wanted = [*REQUIRED, *(["amount"] if schema.source("amount") else [])]
    missing = [
        (canon, schema.source(canon))
        for canon in wanted
        if schema.source(canon) not in have and not (canon == "amount" and "amount" not in schema.columns)
    ]
    extras = [*schema.extra_categorical, *schema.extra_numeric]
    missing += [(extra, extra) for extra in extras if extra not in have]
    if missing:
        what = ", ".join(f"'{src}' (for {canon})" for canon, src in missing)
        raise EventDataError(
            f"{name}: missing column(s) {what}. Available columns: {list(have)}. "
            "Map your names with data.columns.<name>=<your column> or fix "
            "data.extra_categorical / data.extra_numeric."
        )
    exprs: list[pl.Expr] = []
    cid = schema.source("customer_id")
    cid_type = have[cid]
    if cid_type.is_integer():
        exprs.append(pl.col(cid).cast(pl.Int64).alias("customer_id"))
    elif cid_type in (pl.String, pl.Categorical):
        exprs.append(pl.col(cid).cast(pl.String).alias("customer_id"))
    else:
        raise EventDataError(
            f"{name}: column '{cid}' (customer_id) has type {cid_type}; expected integers or "
            "strings. Cast it, or map another column with data.columns.customer_id=..."
        )
    ts = schema.source("timestamp")
    exprs.append(_timestamp_expr(have[ts], ts, schema, name).alias("timestamp"))
    exprs.append(pl.col(ts).cast(pl.String).alias("_ts_raw"))
    for canon in ("channel", "action"):
        src = schema.source(canon)
        if have[src].is_float():
            raise EventDataError(
                f"{name}: column '{src}' ({canon}) has float type {have[src]}; expected strings "
                f"or integer codes. Map another column with data.columns.{canon}=..."
            )
        exprs.append(pl.col(src).cast(pl.String).fill_null("<null>").alias(canon))
    amount_src = schema.source("amount")
    if amount_src and amount_src in have:
        if not (have[amount_src].is_numeric() or have[amount_src] == pl.String):
            raise EventDataError(
                f"{name}: column '{amount_src}' (amount) has type {have[amount_src]}; expected "
                "numbers. Map another column with data.columns.amount=... or set it to null."
            )
        exprs.append(pl.col(amount_src).cast(pl.Float64, strict=False).alias("amount"))
        exprs.append(pl.col(amount_src).cast(pl.String).alias("_amount_raw"))
    else:
        exprs.append(pl.lit(0.0, pl.Float64).alias("amount"))
    for extra in schema.extra_categorical:
        exprs.append(pl.col(extra).cast(pl.String).fill_null("<null>"))
    for extra in schema.extra_numeric:
        if not (have[extra].is_numeric() or have[extra] == pl.Boolean):
            raise EventDataError(
                f"{name}: column '{extra}' is listed in data.extra_numeric but has type "
                f"{have[extra]}; move it to data.extra_categorical or cast it to numbers."
            )
        exprs.append(pl.col(extra).cast(pl.Float64).fill_null(0.0))
    return lf.with_row_index(ROW).select(pl.col(ROW), *exprs)


def _examples(df: pl.DataFrame, mask: pl.Expr, col: str) -> list[Any]:
    return df.filter(mask).get_column(col).head(_EXAMPLES).to_list()


def validate(df: pl.DataFrame, schema: EventSchema, name: str) -> pl.DataFrame:
    """Check values of a normalized frame; apply the null-key and duplicate policies.

    Returns the clean frame without the helper columns. Raises :class:`EventDataError`.
    """
    if df.height == 0:
        raise EventDataError(f"{name}: no events (the input is empty); point data.path at your events")
    ts_src = schema.source("timestamp")
    bad_ts = pl.col("timestamp").is_null() & pl.col("_ts_raw").is_not_null()
    n_bad = df.select(bad_ts.sum()).item()
    if n_bad:
        raise EventDataError(
            f"{name}: column '{ts_src}' (timestamp): {n_bad} of {df.height} values cannot be "
            f"parsed, e.g. {_examples(df, bad_ts, '_ts_raw')}. Use ISO-8601 (2025-01-31T12:00:00, "
            "optional +02:00), a datetime column, or epoch seconds/ms (data.timestamp_unit)."
        )
    if "_amount_raw" in df.columns:
        bad_amount = pl.col("amount").is_null() & pl.col("_amount_raw").is_not_null()
        n_bad = df.select(bad_amount.sum()).item()
        if n_bad:
            raise EventDataError(
                f"{name}: column '{schema.source('amount')}' (amount): {n_bad} values are not "
                f"numbers, e.g. {_examples(df, bad_amount, '_amount_raw')}. Clean them or set "
                "data.columns.amount=null."
            )
        df = df.with_columns(pl.col("amount").fill_null(0.0)).drop("_amount_raw")
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
                f"{name}: {n_null} rows have a null key ({detail}). Fix the data or set "
                "data.null_keys=drop to drop them."
            )
        log.warning("%s: dropped %d rows with a null key (%s)", name, n_null, detail)
        df = df.filter(~null_key)
        if df.height == 0:
            raise EventDataError(f"{name}: every row has a null customer_id or timestamp")
    df = df.drop("_ts_raw")
    if schema.duplicates == "drop":
        before = df.height
        keys = [c for c in df.columns if c != ROW]
        df = df.unique(subset=keys, keep="first", maintain_order=True)
        if df.height < before:
            log.info("%s: dropped %d exact duplicate events (data.duplicates=drop)", name, before - df.height)
    return df


def load_events(path: str | Path, schema: EventSchema) -> pl.DataFrame:
    """Read, normalize and validate events into memory (canonical columns, see module doc)."""
    lf, name = scan_raw(path, schema)
    return validate(normalize(lf, schema, name).collect(), schema, name)


def scan_events(path: str | Path, schema: EventSchema) -> tuple[pl.LazyFrame, str]:
    """Lazy normalized events, for chunked readers that call :func:`validate` per chunk."""
    lf, name = scan_raw(path, schema)
    return normalize(lf, schema, name), name
