"""Timestamps: the user's values, in any of the accepted forms, as Datetime("us", "UTC").

Accepted: datetimes, dates, ISO-8601 strings (``2025-01-31``, ``2025-01-31 12:00``,
``2025-01-31T12:00:00.5+02:00``, ``...Z``), and epoch seconds / milliseconds as numbers or digit
strings (unit ``auto`` takes magnitudes above 1e11 as milliseconds). Naive values are read in a
time zone; a wall time that a daylight-saving change repeats takes the earlier instant, one that
it skips becomes null. Values that cannot be parsed become null too; :func:`raw_timestamp`
keeps the originals so the caller can count and quote them.
"""

from __future__ import annotations

import polars as pl

UTC_US = pl.Datetime("us", "UTC")
# Epoch values above this are milliseconds (1e11 s is the year 5138).
_EPOCH_MS_THRESHOLD = 1e11
# Timestamps must fall before the year 10000 (microseconds since the epoch).
_MAX_MICROS = 253_402_300_800 * 1_000_000
_ISO_AWARE = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z")
_ISO_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
_EPOCH_STRING = r"^[+-]?\d+(\.\d*)?$"


def check_time_zone(value: str, setting: str) -> None:
    """Raise ValueError naming ``setting`` unless ``value`` is a time zone Polars knows."""
    try:
        pl.Series([0], dtype=UTC_US).dt.convert_time_zone(value)
    except (pl.exceptions.PolarsError, TypeError, ValueError):
        raise ValueError(
            f"{setting}={value!r} is not a known time zone; use an IANA name such as 'UTC' or "
            "'Europe/Paris'"
        ) from None


def timestamp_expr(raw: pl.DataType, col: str, unit: str, tz: str) -> pl.Expr | None:
    """An expression turning column ``col`` of type ``raw`` into Datetime("us", "UTC").

    ``unit`` (auto | s | ms) reads epoch numbers, ``tz`` reads naive values. Returns None when
    ``raw`` is no type a timestamp can come from.
    """
    c = pl.col(col)
    if raw == pl.Null:  # every value missing: the null-key policy decides
        return c.cast(UTC_US)
    if isinstance(raw, pl.Datetime):
        c = c.dt.cast_time_unit("us")
        return _localize(c, tz) if raw.time_zone is None else c.dt.convert_time_zone("UTC")
    if raw == pl.Date:
        return _localize(c.cast(pl.Datetime("us")), tz)
    if raw.is_numeric():
        return _epoch_expr(c, unit)
    if raw in (pl.String, pl.Categorical) or isinstance(raw, pl.Enum):
        s = _clean_timestamp_strings(c)
        aware = [s.str.to_datetime(f, strict=False, time_unit="us") for f in _ISO_AWARE]
        naive = [s.str.to_datetime(f, strict=False, time_unit="us") for f in _ISO_NAIVE]
        epoch = pl.when(s.str.contains(_EPOCH_STRING)).then(
            _epoch_expr(s.cast(pl.Float64, strict=False), unit)
        )
        return pl.coalesce(
            *[a.dt.convert_time_zone("UTC") for a in aware],
            _localize(pl.coalesce(naive), tz),
            epoch,
        )
    return None


def raw_timestamp(raw: pl.DataType, col: str) -> pl.Expr:
    """The user's timestamp values with 'missing' (null, NaN, blank) as null, for error reports."""
    c = pl.col(col)
    if raw.is_float():
        return c.fill_nan(None)
    if raw in (pl.String, pl.Categorical) or isinstance(raw, pl.Enum):
        s = c.cast(pl.String)
        return pl.when(s.str.strip_chars() != "").then(s)
    return c


def _epoch_expr(seconds_or_ms: pl.Expr, unit: str) -> pl.Expr:
    """Numbers since 1970-01-01 UTC -> Datetime("us", "UTC"); out-of-range values -> null.

    Float64 arithmetic is exact here: micros below 2**53 cover every time before 2255.
    """
    x = seconds_or_ms.cast(pl.Float64)
    if unit == "auto":
        scale = pl.when(x.abs() > _EPOCH_MS_THRESHOLD).then(1e3).otherwise(1e6)
    else:
        scale = pl.lit({"s": 1e6, "ms": 1e3}[unit])
    micros = x * scale
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
