"""Timestamps: the user's values, in any of the accepted forms, as Datetime("us", "UTC").

Accepted: datetimes, dates, ISO-8601 strings (``2025-01-31``, ``2025-01-31 12:00``,
``2025-01-31T12:00:00.5+02:00``, ``...Z``), and epoch seconds / milliseconds as numbers or digit
strings. The epoch unit is decided once per column, never per value (:func:`epoch_unit`): with
``auto``, a column whose magnitudes are all below 1e10 is seconds, all at or above 1e10 is
milliseconds, and a column with both is an error naming examples of each. Naive values are read in a
time zone; a wall time that a daylight-saving change repeats takes the earlier instant, one that
it skips becomes null. Values that cannot be parsed become null too; :func:`raw_timestamp`
keeps the originals so the caller can count and quote them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl

from journeyformer.errors import ConfigError

UTC_US = pl.Datetime("us", "UTC")
# Epoch magnitudes at or above this are milliseconds: as seconds they would fall after the year
# 2286, as milliseconds they fall after 1970-04-26.
EPOCH_MS_FROM = 1e10
# Timestamps must fall before the year 10000 (microseconds since the epoch).
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_MICROS = 253_402_300_800 * 1_000_000
_ISO_AWARE = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z")
_ISO_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
_EPOCH_STRING = r"^[+-]?\d+(\.\d*)?$"


def epoch_micros(t: datetime) -> int:
    """Microseconds since 1970-01-01 UTC of ``t`` (naive means UTC): Polars' physical value of
    a ``Datetime("us", "UTC")``. Comparing with it, or casting it, avoids a time-zone-aware
    literal, which costs about a millisecond to build (it matters per call in the Python API)."""
    aware = t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t
    return (aware - _EPOCH) // timedelta(microseconds=1)


def check_time_zone(value: str, setting: str) -> None:
    """Raise ValueError naming ``setting`` unless ``value`` is a time zone Polars knows."""
    try:
        pl.Series([0], dtype=UTC_US).dt.convert_time_zone(value)
    except (pl.exceptions.PolarsError, TypeError, ValueError):
        raise ConfigError(
            f"{setting}={value!r} is not a known time zone; use an IANA name such as 'UTC' or "
            "'Europe/Paris'"
        ) from None


def is_text(dtype: pl.DataType) -> bool:
    """Whether values of ``dtype`` are text (String, Categorical, Enum)."""
    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)


def timestamp_expr(raw: pl.DataType, col: str, unit: str, tz: str) -> pl.Expr | None:
    """An expression turning column ``col`` of type ``raw`` into Datetime("us", "UTC").

    ``unit`` (s | ms, decided for the column by :func:`epoch_unit`) reads epoch numbers, ``tz``
    reads naive values. Returns None when ``raw`` is no type a timestamp can come from.
    """
    c = pl.col(col)
    if raw == pl.Null:  # every value missing: the null-key policy decides
        return c.cast(UTC_US)
    if isinstance(raw, pl.Datetime):
        c = c.dt.cast_time_unit("us")
        return _localize(c, tz) if raw.time_zone is None else c.dt.convert_time_zone("UTC")
    if raw == pl.Date:
        return _localize(c.cast(pl.Datetime("us")), tz)
    epoch = epoch_values(raw, col)
    if raw.is_numeric():
        return _epoch_expr(epoch, unit)
    if is_text(raw):
        s = _clean_timestamp_strings(c)
        aware = [s.str.to_datetime(f, strict=False, time_unit="us") for f in _ISO_AWARE]
        naive = [s.str.to_datetime(f, strict=False, time_unit="us") for f in _ISO_NAIVE]
        return pl.coalesce(
            *[a.dt.convert_time_zone("UTC") for a in aware],
            _localize(pl.coalesce(naive), tz),
            _epoch_expr(epoch, unit),
        )
    return None


def raw_timestamp(raw: pl.DataType, col: str) -> pl.Expr:
    """The user's timestamp values with 'missing' (null, NaN, blank) as null, for error reports."""
    c = pl.col(col)
    if raw.is_float():
        return c.fill_nan(None)
    if is_text(raw):
        s = c.cast(pl.String)
        return pl.when(s.str.strip_chars() != "").then(s)
    return c


def epoch_values(raw: pl.DataType, col: str) -> pl.Expr | None:
    """The epoch numbers of column ``col`` (null where a value is not one), or None when the
    column cannot hold any (datetimes, dates)."""
    c = pl.col(col)
    if raw.is_numeric():
        return c.cast(pl.Float64)
    if is_text(raw):
        s = _clean_timestamp_strings(c)
        return pl.when(s.str.contains(_EPOCH_STRING)).then(s.cast(pl.Float64, strict=False))
    return None


def epoch_unit(lf: pl.LazyFrame, raw: pl.DataType, col: str, unit: str) -> tuple[str, dict]:
    """The epoch unit of column ``col`` as a whole: ``unit`` unless it is ``auto``.

    Returns ``(unit, mixed)``: ``mixed`` is empty, or (when magnitudes below and at or above
    :data:`EPOCH_MS_FROM` both occur) ``{"s": [examples], "ms": [examples]}`` for the caller's
    error. One pass over the column.
    """
    x = epoch_values(raw, col)
    if unit != "auto" or x is None:
        return (unit if unit != "auto" else "s"), {}
    big = x.abs() >= EPOCH_MS_FROM
    stats = lf.select(
        big.sum().alias("n_ms"),
        (~big).sum().alias("n_s"),
        pl.col(col).filter(~big).head(3).cast(pl.String).implode().alias("s"),
        pl.col(col).filter(big).head(3).cast(pl.String).implode().alias("ms"),
    ).collect(engine="streaming")
    n_ms, n_s, ex_s, ex_ms = stats.row(0)
    if n_ms and n_s:
        return "s", {"s": list(ex_s), "ms": list(ex_ms), "n_s": n_s, "n_ms": n_ms}
    return ("ms" if n_ms else "s"), {}


def _epoch_expr(seconds_or_ms: pl.Expr, unit: str) -> pl.Expr:
    """Numbers since 1970-01-01 UTC -> Datetime("us", "UTC"); out-of-range values -> null.

    Float64 arithmetic is exact here: micros below 2**53 cover every time before 2255.
    """
    x = seconds_or_ms.cast(pl.Float64)
    micros = x * pl.lit({"s": 1e6, "ms": 1e3}[unit])
    ok = micros.is_finite() & (micros.abs() < _MAX_MICROS)
    return pl.when(ok).then(micros.round(0)).cast(pl.Int64).cast(UTC_US)


def _localize(naive: pl.Expr, tz: str) -> pl.Expr:
    """Naive wall times in ``tz`` -> UTC; repeated times take the earlier, skipped ones null."""
    return naive.dt.replace_time_zone(
        tz, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")


def _clean_timestamp_strings(c: pl.Expr) -> pl.Expr:
    """Trim, use 'T' between date and time, write 'Z' as +00:00, drop a space before an offset."""
    s = c.cast(pl.String).str.strip_chars()
    s = s.str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]", "${1}T")
    s = s.str.replace(r"\s*[Zz]$", "+00:00")
    return s.str.replace(r"\s+([+-]\d{2}(:?\d{2})?)$", "${1}")
