"""The Python API for notebooks and services: ``Predictor.load(bundle).predict(events)``.

    from journeyformer import Predictor

    predictor = Predictor.load("checkpoints/small_h30_s42/bundle")   # one warm session
    frame = predictor.predict(events, as_of="2025-12-01")             # Polars in, Polars out
    frame = predictor.predict("events.parquet")                       # or a path / glob

The numbers are those of ``journeyformer predict`` (the same validation, sequences, batching
and onnxruntime settings); the table has the same columns (see
:func:`journeyformer.inference.loop.prediction_frame`). Customers without an event at or
before ``as_of`` are left out; :attr:`Predictor.last_rejected` lists them.

Like the job, predictions carry ``segment`` (the rules of ``configs/segments/default.yaml``
unless ``segments=`` says otherwise; None: no column) and ``cluster`` when the bundle has its
reference and clusters (exported with ``data.path``), and ``predict(..., explain=True)`` adds the
drivers of ``predict explain=true`` (:mod:`journeyformer.inference.explain`).

For near-real-time scoring (a few customers after each event) keep one Predictor and call
:meth:`Predictor.predict` with just those customers' events: there is no file I/O or chunk
planning, one onnxruntime call scores up to ``batch_size`` customers, the session stays warm,
and inputs of up to ``small_events`` events build their sequences in NumPy
(:mod:`journeyformer.data.features.few`: the same arrays without a dozen Polars query plans
per call; ``benchmarks/bench_latency.py`` measures it). A frame already in the canonical types
(customer_id Int64, timestamp Datetime("us", "UTC"), text categories without nulls, Float64
numbers; :func:`journeyformer.data.events.normalize.already_canonical`) with nothing to report is read
without a Polars query, its rows in any order. For files too large for memory use the
``journeyformer predict`` job, which streams customer chunks.

Needs the base install only (no torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl

from journeyformer.data.events.as_of import data_end
from journeyformer.data.events.load import load_events
from journeyformer.data.events.normalize import already_canonical, normalize
from journeyformer.data.events.validate import clean, validate
from journeyformer.data.features.few import applies, few_sequences
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.labels.lifecycle import first_rows
from journeyformer.data.labels.samples import parse_time
from journeyformer.errors import EventDataError
from journeyformer.inference.bundle import Bundle, load_bundle
from journeyformer.inference.decisions import Decisions
from journeyformer.inference.loop import BATCH_SIZE
from journeyformer.inference.runner import OnnxRunner
from journeyformer.inference.scoring import ModelChoice, ScoringJob
from journeyformer.tasks.base import TOP_K

SMALL_EVENTS = 50_000  # inputs up to this many events build sequences in NumPy


class Predictor:
    """A bundle with a warm onnxruntime session; scores events given as frames or paths.

    Args:
        bundle: a loaded bundle.
        runner: the onnxruntime session (:class:`journeyformer.inference.runner.OnnxRunner`).
        batch_size: customers per onnxruntime call.
        schema_overrides: ``data`` settings replacing the bundle's event schema (columns,
            time_zone, ...), as ``predict`` accepts them.
        segments: segment rules as ``configs/segments/default.yaml`` holds them, "default" for
            those, None for no ``segment`` column.
        explain_events, explain_top: as predict's settings of the same names (for
            ``predict(..., explain=True)``).
        small_events: inputs with at most this many events take the NumPy sequence path
            (0: never; the numbers are the same either way).
    """

    def __init__(
        self,
        bundle: Bundle,
        runner: OnnxRunner,
        schema_overrides: Mapping[str, Any] | None = None,
        batch_size: int = BATCH_SIZE,
        *,
        segments: Mapping[str, Any] | str | None = "default",
        explain_events: int = 8,
        explain_top: int = 3,
        small_events: int = SMALL_EVENTS,
    ) -> None:
        self.job = ScoringJob.resolve(
            bundle, model=ModelChoice(), batch_size=batch_size, schema_overrides=schema_overrides, runner=runner,
            decisions=Decisions.for_bundle(bundle, segments),
        )  # fmt: skip
        self.bundle, self.runner, self.schema, self.small_events = bundle, runner, self.job.schema, small_events
        self._explain = (segments, explain_events, explain_top)
        self.last_rejected: list[Any] = []

    @classmethod
    def load(
        cls,
        bundle: str | Path | Bundle,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        batch_size: int = BATCH_SIZE,
        optimization: str = "basic",
        graph: str = "auto",
        parallel: str = "auto",
        data: Mapping[str, Any] | None = None,
        segments: Mapping[str, Any] | str | None = "default",
        explain_events: int = 8,
        explain_top: int = 3,
    ) -> Predictor:
        """Open ``bundle`` (a directory) once; ``threads=None`` uses every core.

        With ``parallel="auto"`` on a multi-core CPU each batch of a call runs on one thread
        and a call's batches run at once, so one customer costs what it costs with
        ``threads=1``.
        ``graph``: auto (the faster of the bundle's graphs here), plain or fused
        (:mod:`journeyformer.inference.choice`). ``parallel``: auto | batches | operators
        (:class:`journeyformer.inference.runner.OnnxRunner`).
        """
        loaded = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        runner = ModelChoice(device, precision, threads, optimization, graph, parallel).runner(loaded)
        return cls(
            loaded, runner, data, batch_size,
            segments=segments, explain_events=explain_events, explain_top=explain_top,
        )  # fmt: skip

    def events(self, events: pl.DataFrame | pl.LazyFrame | str | Path) -> pl.DataFrame:
        """Events in the user's columns (frame or path) -> validated canonical events."""
        if isinstance(events, (str, Path)):
            return load_events(events, self.schema)
        if isinstance(events, pl.DataFrame) and events.height <= self.small_events:
            # Events already in the canonical types and clean (a service's usual call): the
            # same frame as below without a query plan.
            ready = already_canonical(events, self.schema)
            out = clean(ready, self.schema) if ready is not None else None
            if out is not None:
                return out
        if isinstance(events, (pl.DataFrame, pl.LazyFrame)):
            try:
                frame = normalize(events.lazy(), self.schema, "events").collect()
            except pl.exceptions.PolarsError as err:
                raise EventDataError(f"events: cannot read the frame: {err}") from None
            return validate(frame, self.schema, "events")
        raise TypeError(
            f"events must be a Polars DataFrame/LazyFrame or a path, got {type(events).__name__}"
        )

    def sequences(self, canonical: pl.DataFrame, as_of: datetime) -> Sequences:
        """The sequences of every customer of ``canonical`` (validated events) with history at
        ``as_of``: in NumPy for small inputs, else with the batch job's Polars code."""
        pre = self.bundle.preprocessing
        if canonical.height <= self.small_events and applies(pre.features):
            return few_sequences(canonical, as_of, pre.vocabs, pre.features, pre.labels)
        return pre.sequences(canonical, as_of, with_labels=False, active_only=False, source="events")

    def predict(
        self,
        events: pl.DataFrame | pl.LazyFrame | str | Path,
        as_of: datetime | str | None = None,
        *,
        top_k: int = TOP_K,
        with_embedding: bool = False,
        explain: bool = False,
    ) -> pl.DataFrame:
        """One row per customer with an event at or before ``as_of``, sorted by customer_id.

        Args:
            events: a Polars frame in the bundle's column names (or ``data`` overrides), or a
                Parquet/CSV file, directory or glob.
            as_of: ISO-8601 string or datetime (naive means UTC); default: the end of the data
                as ``journeyformer predict`` finds it (:mod:`journeyformer.data.events.as_of`).
            explain: add ``churn_drivers``, ``churn_driver_effects``, ``value_drivers``,
                ``value_driver_effects`` (about 35 extra model rows per customer; needs a
                bundle exported with ``data.path``).
        """
        job = self._job(None, top_k, with_embedding, explain)  # first: explain needs reference.json
        canonical = self.events(events)
        # Default: the end of the data by the predict job's rule (stray late events ignored).
        job.as_of = parse_time(as_of) if as_of is not None else data_end(canonical).end
        seqs = self.sequences(canonical, job.as_of)
        self.last_rejected = _without_history(canonical.get_column("customer_id"), seqs)
        if len(seqs) == 0:
            return pl.DataFrame(schema=job.output_schema(canonical.schema["customer_id"]))
        return job.score_sequences(seqs).frame

    def score(
        self,
        seqs: Sequences,
        when: datetime,
        *,
        top_k: int = TOP_K,
        with_embedding: bool = False,
        explain: bool = False,
    ) -> pl.DataFrame:
        """The prediction rows of ready model inputs (at least one sample), in their order,
        through the one scoring loop (:meth:`journeyformer.inference.scoring.ScoringJob.score_sequences`);
        :meth:`predict` and the service's state (:mod:`journeyformer.service`) call it."""
        return self._job(when, top_k, with_embedding, explain).score_sequences(seqs).frame

    def _job(self, when: datetime | None, top_k: int, with_embedding: bool, explain: bool) -> ScoringJob:
        return replace(self.job, as_of=when, top_k=top_k, with_embedding=with_embedding,
                       decisions=self._explaining if explain else self.job.decisions)  # fmt: skip

    @cached_property
    def _explaining(self) -> Decisions:
        """The segment/cluster columns plus the explainer (built on first use)."""
        segments, events, top = self._explain
        return Decisions.for_bundle(self.bundle, segments, True, events, top)


def _without_history(customer_id: pl.Series, seqs: Sequences) -> list[Any]:
    """Customers of the (sorted) validated events that ``seqs`` has no sequence for, sorted."""
    if len(seqs) == int(first_rows(customer_id).sum()):  # NumPy: no query for the usual case
        return []
    seen = customer_id.unique()
    return seen.filter(~seen.is_in(seqs.customer_id.implode())).sort().to_list()
