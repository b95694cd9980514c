"""The Python API for notebooks and services: ``Predictor.load(bundle).predict(events)``.

    from journeyformer import Predictor

    predictor = Predictor.load("checkpoints/small_h30_s42/bundle")   # one warm session
    frame = predictor.predict(events, as_of="2025-12-01")             # Polars in, Polars out
    frame = predictor.predict("events.parquet")                       # or a path / glob

The numbers are those of ``journeyformer predict`` (the same validation, sequences, batching
and onnxruntime settings); the table has the same columns (see
:func:`journeyformer.inference.partition.prediction_frame`). Customers without an event at or
before ``as_of`` are left out; :attr:`Predictor.last_rejected` lists them.

For near-real-time scoring (a few customers after each event) keep one Predictor and call
:meth:`Predictor.predict` with just those customers' events: there is no file I/O or chunk
planning, one onnxruntime call scores up to ``batch_size`` customers, and the session stays warm
(``benchmarks/bench_latency.py`` measures it). For files too large for memory use the
``journeyformer predict`` job, which streams customer chunks.

Needs the base install only (no torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from journeyformer.data.as_of import data_end
from journeyformer.data.batch import length_batches, run_in_batches
from journeyformer.data.events import load_events
from journeyformer.data.normalize import normalize
from journeyformer.data.samples import parse_time
from journeyformer.data.validate import validate
from journeyformer.errors import EventDataError
from journeyformer.inference.bundle import Bundle, load_bundle
from journeyformer.inference.partition import prediction_frame, prediction_schema
from journeyformer.inference.runner import OnnxRunner


class Predictor:
    """A bundle with a warm onnxruntime session; scores events given as frames or paths.

    Args:
        bundle: a loaded bundle.
        runner: the onnxruntime session (:class:`journeyformer.inference.runner.OnnxRunner`).
        batch_size: customers per onnxruntime call.
        schema_overrides: ``data`` settings replacing the bundle's event schema (columns,
            time_zone, ...), as ``predict`` accepts them.
    """

    def __init__(
        self,
        bundle: Bundle,
        runner: OnnxRunner,
        schema_overrides: Mapping[str, Any] | None = None,
        batch_size: int = 64,
    ) -> None:
        self.bundle = bundle
        self.runner = runner
        self.batch_size = batch_size
        self.schema = bundle.schema(schema_overrides)
        self.last_rejected: list[Any] = []

    @classmethod
    def load(
        cls,
        bundle: str | Path | Bundle,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        batch_size: int = 64,
        optimization: str = "basic",
        data: Mapping[str, Any] | None = None,
    ) -> Predictor:
        """Open ``bundle`` (a directory) once; ``threads=None`` uses every core.

        For one customer at a time, ``threads=1`` is usually fastest (no thread hand-off).
        """
        loaded = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        runner = OnnxRunner(loaded, device, precision, threads, optimization=optimization)
        return cls(loaded, runner, data, batch_size)

    def events(self, events: pl.DataFrame | pl.LazyFrame | str | Path) -> pl.DataFrame:
        """Events in the user's columns (frame or path) -> validated canonical events."""
        if isinstance(events, (str, Path)):
            return load_events(events, self.schema)
        if isinstance(events, (pl.DataFrame, pl.LazyFrame)):
            try:
                frame = normalize(events.lazy(), self.schema, "events").collect()
            except pl.exceptions.PolarsError as err:
                raise EventDataError(f"events: cannot read the frame: {err}") from None
            return validate(frame, self.schema, "events")
        raise TypeError(
            f"events must be a Polars DataFrame/LazyFrame or a path, got {type(events).__name__}"
        )

    def predict(
        self,
        events: pl.DataFrame | pl.LazyFrame | str | Path,
        as_of: datetime | str | None = None,
        *,
        top_k: int = 3,
        with_embedding: bool = False,
    ) -> pl.DataFrame:
        """One row per customer with an event at or before ``as_of``, sorted by customer_id.

        Args:
            events: a Polars frame in the bundle's column names (or ``data`` overrides), or a
                Parquet/CSV file, directory or glob.
            as_of: ISO-8601 string or datetime (naive means UTC); default: the end of the data
                as ``journeyformer predict`` finds it (:mod:`journeyformer.data.as_of`).
        """
        canonical = self.events(events)
        # Default: the end of the data by the predict job's rule (stray late events ignored).
        when = parse_time(as_of) if as_of is not None else data_end(canonical).end
        seqs = self.bundle.preprocessing.sequences(
            canonical, when, with_labels=False, active_only=False, source="events"
        )
        seen = canonical.get_column("customer_id").unique()
        if len(seqs) == 0:
            self.last_rejected = seen.sort().to_list()
            dtype = canonical.schema["customer_id"]
            return pl.DataFrame(schema=prediction_schema(self.bundle, dtype, with_embedding))
        outputs = run_in_batches(len(seqs), length_batches(seqs, self.batch_size), self.runner.run)
        frame = prediction_frame(seqs, outputs, self.bundle, when, top_k, with_embedding)
        self.last_rejected = (
            seen.filter(~seen.is_in(seqs.customer_id.implode())).sort().to_list()
            if len(seqs) < len(seen)
            else []
        )
        return frame
