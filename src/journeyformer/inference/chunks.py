"""Read events in customer chunks, so scoring memory does not grow with the input.

Customers are assigned to ``n`` chunks by a hash of ``customer_id``; each chunk is a lazy
filter over :func:`journeyformer.data.events.scan_events`, collected by Polars' streaming
engine, so only one chunk's events (plus the next one, being prepared) are ever in memory.
Every customer lands in exactly one chunk, and a chunk holds all of its customers' events, so
a chunk is a partition for :func:`journeyformer.inference.partition.score_partition`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from journeyformer.data.as_of import data_end
from journeyformer.data.events import read_error, scan_events
from journeyformer.data.schema import EventSchema
from journeyformer.data.validate import future_events_error, now_utc
from journeyformer.errors import ConfigError, EventDataError

log = logging.getLogger(__name__)

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

    def read(self, index: int) -> pl.DataFrame:
        """The events of chunk ``index``, read with the schema but not yet validated (see
        :func:`journeyformer.inference.partition.prepare_partition`)."""
        return self._collect(self.lf.filter(chunk_filter(index, self.plan.n_chunks)))

    def source(self, index: int) -> str:
        return f"{self.name} [chunk {index + 1}/{self.plan.n_chunks}]"
