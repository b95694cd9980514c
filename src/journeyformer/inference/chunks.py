"""Read events in customer chunks, so scoring memory does not grow with the input.

Customers are assigned to ``n`` chunks by a hash of ``customer_id``; each chunk is a lazy
filter over :func:`journeyformer.data.schema.scan_events`, collected by Polars' streaming
engine, so only one chunk's events (plus the next one, being prepared) are ever in memory.
Every customer lands in exactly one chunk, and a chunk holds all of its customers' events, so
sequences built per chunk equal sequences built from the whole input.

Every customer seen in a chunk is accounted for: it gets a sequence, or a reject reason.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from journeyformer.data.labels import LabelConfig
from journeyformer.data.schema import (
    EventDataError,
    EventSchema,
    future_events_error,
    now_utc,
    read_error,
    scan_events,
    validate,
)
from journeyformer.data.as_of import data_end
from journeyformer.data.sequences import FeatureConfig, Sequences, build_sequences
from journeyformer.data.timestamps import UTC_US  # also imported from here
from journeyformer.data.vocab import Vocabularies
from journeyformer.errors import ConfigError

log = logging.getLogger(__name__)

REASON_NO_HISTORY = "no events at or before as_of"
REASON_NO_VALID = "no valid events (every row had a null timestamp; data.null_keys=drop)"
_HASH_SEED = 20250101  # fixed, so a chunk holds the same customers on every run


@dataclass(frozen=True)
class InputPlan:
    """What one cheap streaming pass over the input tells: size, as_of and the chunking.

    Attributes:
        name: the input as the user gave it (for messages).
        n_rows: events in the input.
        n_customers: distinct non-null customer ids.
        latest: the end of the data, the default as_of (UTC, :mod:`journeyformer.data.as_of`).
        n_chunks: customer chunks the input is read in.
    """

    name: str
    n_rows: int
    n_customers: int
    latest: datetime
    n_chunks: int


@dataclass
class Chunk:
    """One chunk, ready to score.

    Attributes:
        index: chunk number, 0..n_chunks-1.
        seqs: sequences at as_of of the chunk's customers with history (sorted by customer_id).
        rejects: customer_id, reason, first_event (UTC, null when no valid event).
        n_events: events read for the chunk.
    """

    index: int
    seqs: Sequences | None
    rejects: pl.DataFrame
    n_events: int


def chunk_filter(index: int, n_chunks: int) -> pl.Expr:
    """True for rows whose customer belongs to chunk ``index`` of ``n_chunks``."""
    return pl.col("customer_id").hash(_HASH_SEED) % n_chunks == index


class EventChunks:
    """The input read chunk by chunk.

    Args:
        path: a file, a directory of Parquet files, or a glob.
        schema: how to read the user's columns (the bundle's, with overrides).
        chunk_customers: about this many customers per chunk (bounds peak memory).
    """

    def __init__(
        self, path: str | Path, schema: EventSchema, chunk_customers: int = 50_000
    ) -> None:
        if chunk_customers < 1:
            raise ConfigError(f"chunk_customers must be >= 1, got {chunk_customers}")
        self.schema = schema
        self.lf, self.name = scan_events(path, schema)
        self.plan = self._plan(chunk_customers)

    def _plan(self, chunk_customers: int) -> InputPlan:
        stats = self._collect(
            self.lf.select(
                pl.len().alias("rows"),
                pl.col("customer_id").drop_nulls().n_unique().alias("customers"),
                pl.col("timestamp").max().alias("latest"),
            )
        )
        rows, customers, latest = stats.row(0)
        if rows == 0:
            raise EventDataError(
                f"{self.name}: no events (the input is empty); point input= at your events"
            )
        if latest is None:
            raise EventDataError(
                f"{self.name}: no row has a usable timestamp (column "
                f"'{self.schema.source('timestamp')}'); map another with data.columns.timestamp=..."
            )
        if self.schema.future_events == "error":  # refused before any work
            future = self._collect(self.lf.filter(pl.col("timestamp") > now_utc()))
            if future.height:
                raise future_events_error(self.name, future.height, int(rows), future)
        ts = self.lf.select("timestamp")
        if self.schema.future_events == "drop":
            ts = ts.filter(pl.col("timestamp") <= now_utc())
        try:
            end = data_end(ts)
        except pl.exceptions.PolarsError as err:
            raise read_error(self.name, err) from None
        except ValueError:
            end = None
        if end is not None:
            latest = end.end
            log.info("%s", end.describe(self.name))
        n_chunks = max(1, math.ceil(customers / chunk_customers))
        return InputPlan(self.name, int(rows), int(customers), latest, n_chunks)

    def _collect(self, lf: pl.LazyFrame) -> pl.DataFrame:
        """Collect with the streaming engine (bounded memory); read errors speak to the user."""
        try:
            return lf.collect(engine="streaming")
        except pl.exceptions.PolarsError as err:
            raise read_error(self.name, err) from None

    def read(
        self,
        index: int,
        as_of: datetime,
        vocabs: Vocabularies,
        features: FeatureConfig,
        labels: LabelConfig,
    ) -> Chunk:
        """Events of chunk ``index`` -> sequences at ``as_of`` plus rejected customers."""
        n = self.plan.n_chunks
        raw = self._collect(self.lf.filter(chunk_filter(index, n)))
        source = f"{self.name} [chunk {index + 1}/{n}]"
        seen = raw.select(pl.col("customer_id").drop_nulls().unique())
        if raw.height == 0:
            return Chunk(index, None, _rejects(seen, None, None), 0)
        keyed = pl.col("customer_id").is_not_null() & pl.col("timestamp").is_not_null()
        if self.schema.null_keys == "drop" and not raw.select(keyed.any()).item():
            # validate() calls a chunk of only null keys an error; it is not one while the rest
            # of the input has events. Unparseable timestamps stay an error.
            unparseable = raw.filter(
                pl.col("timestamp").is_null() & pl.col("_ts_raw").is_not_null()
            )
            if unparseable.height:
                validate(unparseable, self.schema, source)  # raises, quoting the bad values
            log.warning(
                "%s: dropped %d rows with a null key (data.null_keys=drop)", source, raw.height
            )
            return Chunk(index, None, _rejects(seen, raw.head(0), None), raw.height)
        events = validate(raw, self.schema, source)
        del raw
        seqs = build_sequences(
            events, as_of, vocabs, features, labels, with_labels=False, source=source
        )
        return Chunk(
            index, seqs if len(seqs) else None, _rejects(seen, events, seqs), events.height
        )


def _rejects(
    seen: pl.DataFrame, events: pl.DataFrame | None, seqs: Sequences | None
) -> pl.DataFrame:
    """Customers in ``seen`` without a sequence, with why."""
    empty = pl.DataFrame(
        {"customer_id": seen.get_column("customer_id").clear(), "reason": [], "first_event": []},
        schema_overrides={"reason": pl.String, "first_event": UTC_US},
    )
    if seen.height == 0:
        return empty
    scored = seqs.customer_id.to_frame("customer_id") if seqs is not None else seen.clear()
    missing = seen.join(scored, on="customer_id", how="anti")
    if missing.height == 0:
        return empty
    assert events is not None
    first = events.group_by("customer_id").agg(pl.col("timestamp").min().alias("first_event"))
    return (
        missing.join(first, on="customer_id", how="left")
        .select(
            "customer_id",
            pl.when(pl.col("first_event").is_null())
            .then(pl.lit(REASON_NO_VALID))
            .otherwise(pl.lit(REASON_NO_HISTORY))
            .alias("reason"),
            pl.col("first_event").cast(UTC_US),
        )
        .sort("customer_id")
    )
