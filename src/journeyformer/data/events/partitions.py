"""Events in customer chunks, so memory does not grow with the input and the input is read a
fixed number of times, however many chunks there are (prep layer: scoring and the sample
store both partition this way).

Customers are assigned to ``n`` chunks by a hash of ``customer_id`` (:func:`chunk_key`). The
input is read in three cheap streaming passes over two columns (size, customers, the end of
the data: :class:`InputPlan`) and ONE streaming pass over every column, which writes each
chunk's events to its own temporary Parquet partition (:meth:`EventChunks.spill`); scoring
then reads one partition at a time. Only one chunk's events (plus the next one, being
prepared) are ever in memory. Every customer lands in exactly one chunk, and a chunk holds all
of its customers' events, so a chunk is a partition for
:func:`journeyformer.inference.partition.score_partition`. The distributed driver
(:mod:`journeyformer.inference.ray_driver`) uses the same key, so both engines cut the input
into the same partitions.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from journeyformer.data.events.as_of import data_end, span_exprs
from journeyformer.data.events.load import read_error, scan_events
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.events.validate import future_events_error, now_utc
from journeyformer.errors import ConfigError, EventDataError

log = logging.getLogger(__name__)

_HASH_SEED = 20250101  # fixed, so a chunk holds the same customers on every run
_KEY = "chunk"  # the spill's partition directories: chunk=0/, chunk=1/, ...


@dataclass(frozen=True)
class InputPlan:
    """What one cheap streaming pass over the input tells: size, as_of and the chunking.

    Attributes:
        name: the input as the user gave it (for messages).
        n_rows: events in the input.
        n_customers: distinct non-null customer ids.
        latest: the end of the data, the default as_of (UTC, :mod:`journeyformer.data.events.as_of`).
        n_chunks: customer chunks the input is read in.
    """

    name: str
    n_rows: int
    n_customers: int
    latest: datetime
    n_chunks: int


def chunk_key(n_chunks: int) -> pl.Expr:
    """The chunk (0 .. n_chunks - 1) of each row's customer: a seeded hash of customer_id,
    the same on every run, machine and engine."""
    return (pl.col("customer_id").hash(_HASH_SEED) % n_chunks).cast(pl.Int64)


CHUNK_CUSTOMERS = 50_000  # customers per chunk: about two chunks are in memory at a time


class EventChunks:
    """The input read chunk by chunk.

    Args:
        path: a file, a directory of Parquet files, or a glob.
        schema: how to read the user's columns (the bundle's, with overrides).
        chunk_customers: about this many customers per chunk (bounds peak memory).
    """

    def __init__(
        self, path: str | Path, schema: EventSchema, chunk_customers: int = CHUNK_CUSTOMERS
    ) -> None:
        if chunk_customers < 1:
            raise ConfigError(f"chunk_customers must be >= 1, got {chunk_customers}")
        self.schema = schema
        self.lf, self.name = scan_events(path, schema)
        self.plan = self._plan(chunk_customers)
        self._spilled: Path | None = None

    def _plan(self, chunk_customers: int) -> InputPlan:
        now, ts = now_utc(), pl.col("timestamp")
        # One pass: sizes, events after the wall clock and the first pass of data_end (over
        # the events data.future_events=drop keeps).
        span = span_exprs() if self.schema.future_events != "drop" else [
            e.filter(ts <= now) for e in span_exprs()
        ]  # fmt: skip
        stats = self._collect(
            self.lf.select(
                pl.len().alias("rows"),
                pl.col("customer_id").drop_nulls().n_unique().alias("customers"),
                ts.max().alias("latest"),
                (ts > now).sum().alias("future"),
                *span,
            )
        )
        rows, customers, latest, n_future, *first_pass = stats.row(0)
        if rows == 0:
            raise EventDataError(
                f"{self.name}: no events (the input is empty); point input= at your events"
            )
        if latest is None:
            raise EventDataError(
                f"{self.name}: no row has a usable timestamp (column "
                f"'{self.schema.source('timestamp')}'); map another with data.columns.timestamp=..."
            )
        if self.schema.future_events == "error" and n_future:  # refused before any work
            future = self._collect(self.lf.filter(ts > now))
            raise future_events_error(self.name, future.height, int(rows), future)
        times = self.lf.select("timestamp")
        if self.schema.future_events == "drop":
            times = times.filter(ts <= now)
        try:
            end = data_end(times, span=tuple(first_pass))
            latest = end.end
            log.info("%s", end.describe(self.name))
        except pl.exceptions.PolarsError as err:
            raise read_error(self.name, err) from None
        except ValueError:  # no timestamp left (every one dropped as future): the latest stays
            pass
        n_chunks = max(1, math.ceil(customers / chunk_customers))
        return InputPlan(self.name, int(rows), int(customers), latest, n_chunks)

    def _collect(self, lf: pl.LazyFrame) -> pl.DataFrame:
        """Collect with the streaming engine (bounded memory); read errors speak to the user."""
        try:
            return lf.collect(engine="streaming")
        except pl.exceptions.PolarsError as err:
            raise read_error(self.name, err) from None

    def spill(self, directory: str | Path) -> None:
        """One streaming pass over the input: write chunk ``i``'s events (read with the schema,
        not yet validated) under ``directory/chunk=i/``. Memory stays bounded by Polars'
        streaming batches, not by the input; the disk needs about the input's size.

        With a single chunk nothing is written: :meth:`read` reads the input itself, once.
        """
        if self.plan.n_chunks == 1:
            return
        directory = Path(directory)
        target = pl.PartitionBy(
            directory,
            key={_KEY: chunk_key(self.plan.n_chunks)},
            include_key=False,
            approximate_bytes_per_file=None,  # one file per chunk, whatever its size
        )
        try:
            self.lf.sink_parquet(target, engine="streaming", mkdir=True)
        except pl.exceptions.PolarsError as err:
            raise read_error(self.name, err) from None
        self._spilled = directory

    def read(self, index: int) -> pl.DataFrame:
        """The events of chunk ``index``, read with the schema but not yet validated (see
        :func:`journeyformer.inference.scoring.ScoringJob.prepare`); call :meth:`spill`
        first when there is more than one chunk."""
        if self.plan.n_chunks == 1:
            return self._collect(self.lf)
        if self._spilled is None:
            raise RuntimeError("EventChunks.read before spill(): the input would be re-read per chunk")
        part = self._spilled / f"{_KEY}={index}"
        if not part.is_dir():  # no customer hashed to this chunk
            return self.lf.clear().collect()
        return pl.read_parquet(part / "*.parquet", schema=self.lf.collect_schema())

    def source(self, index: int) -> str:
        return f"{self.name} [chunk {index + 1}/{self.plan.n_chunks}]"
