"""Event order: rows sorted by (customer_id, timestamp, _row).

Every later step (sequences, labels, samples) relies on this order; ``_row``, the position in
the input, breaks timestamp ties so equal timestamps keep the order the user gave them.
"""

from __future__ import annotations

import polars as pl

ROW = "_row"
# Hash of every column of the input row (also those not read), so that exact duplicates are
# judged on the whole row; dropped after the duplicate policy is applied.
DUP_KEY = "_dup_key"


def sorted_expr() -> pl.Expr:
    """True (one value) when rows are in (customer_id, timestamp, _row) order."""
    cid, ts, row = pl.col("customer_id"), pl.col("timestamp"), pl.col(ROW)
    prev_c, prev_t = cid.shift(1), ts.shift(1)
    ok = (cid > prev_c) | (
        (cid == prev_c) & ((ts > prev_t) | ((ts == prev_t) & (row > row.shift(1))))
    )
    return ok.fill_null(True).all()


def same_key_as_prev() -> pl.Expr:
    """Per row: whether it has the (customer_id, timestamp) of the row before it. In sorted
    order exact duplicates can only be such rows and the rows they follow."""
    cid, ts = pl.col("customer_id"), pl.col("timestamp")
    return ((cid == cid.shift(1)) & (ts == ts.shift(1))).fill_null(False)


def sort_events(df: pl.DataFrame) -> pl.DataFrame:
    """Rows in (customer_id, timestamp, _row) order; a no-op pass when they already are."""
    if df.height and not df.select(sorted_expr()).item():
        key = _packed_key(df)
        if key is None:
            df = df.sort("customer_id", "timestamp", ROW)
        else:
            name = "_sort_key"
            while name in df.columns:
                name += "_"
            # Input order breaks ties of the key: rows are usually still in _row order.
            by = [name] if df.get_column(ROW).is_sorted() else [name, ROW]
            df = df.with_columns(key.alias(name)).sort(by, maintain_order=True).drop(name)
    return df.with_columns(pl.col("customer_id").set_sorted())


def _packed_key(df: pl.DataFrame) -> pl.Expr | None:
    """One UInt64 that orders rows like (customer_id, timestamp), when integer ids and the
    time span fit in 64 bits together (a single-column sort is about twice as fast)."""
    if not df.schema["customer_id"].is_integer():
        return None
    cid, ts = pl.col("customer_id"), pl.col("timestamp").dt.epoch("us")
    bounds = [
        cid.min().alias("c0"),
        cid.max().alias("c1"),
        ts.min().alias("t0"),
        ts.max().alias("t1"),
    ]
    lo_c, hi_c, lo_t, hi_t = df.select(bounds).row(0)
    c_bits, t_bits = (hi_c - lo_c).bit_length(), (hi_t - lo_t).bit_length()
    if c_bits + t_bits > 64:
        return None
    offset_t = (ts - lo_t).cast(pl.UInt64)
    if c_bits == 0:
        return offset_t
    return (cid - lo_c).cast(pl.UInt64) * pl.lit(1 << t_bits, pl.UInt64) + offset_t
