"""The scoring job: what every driver needs, resolved once, over the one scoring loop
(:func:`journeyformer.inference.loop.score_sequences`).

A driver (local, Ray, Spark, the Python API, evaluate, monitor) resolves one
:class:`ScoringJob`, then only decides what to feed :meth:`ScoringJob.prepare` and
:meth:`ScoringJob.score`, and where their results go. Needs no torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from journeyformer.data.events.partitions import CHUNK_CUSTOMERS
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.events.timestamps import UTC_US
from journeyformer.data.events.validate import validate
from journeyformer.data.features.batch import Batch, length_batches
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.labels.samples import parse_time
from journeyformer.errors import ConfigError
from journeyformer.inference.bundle import Bundle, load_bundle
from journeyformer.inference.loop import (
    BATCH_SIZE,
    Runner,
    Scored,
    prediction_schema,
    score_sequences,
)
from journeyformer.inference.result import PartitionResult, Prepared, partition_rejects
from journeyformer.tasks.base import TOP_K

if TYPE_CHECKING:
    from journeyformer.data.events.partitions import EventChunks
    from journeyformer.inference.decisions import Decisions
    from journeyformer.publish import OutputPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    """Which of the bundle's graphs runs, and how (:class:`journeyformer.inference.runner.OnnxRunner`)."""

    device: str = "cpu"
    precision: str = "auto"
    threads: int | None = None
    optimization: str = "basic"
    graph: str = "auto"
    parallel: str = "auto"

    def runner(self, bundle: Bundle) -> Runner:
        from journeyformer.inference.runner import OnnxRunner

        return OnnxRunner(
            bundle, self.device, self.precision, self.threads,
            optimization=self.optimization, graph=self.graph, parallel=self.parallel,
        )  # fmt: skip


def resolve_as_of(as_of: datetime | str | None) -> datetime | None:
    """``as_of=`` as given (ISO-8601, naive means UTC) -> a UTC datetime, or None."""
    try:
        return parse_time(as_of) if as_of is not None else None
    except ValueError as err:
        raise ConfigError(f"as_of: {err}") from None


@dataclass
class ScoringJob:
    """Everything a driver needs to score, resolved once.

    Attributes:
        bundle, schema: the loaded bundle and the event schema (its own with ``data``
            overrides applied).
        as_of: the time scored at; None until an input's plan gives the end of the data.
        model: which graph runs; :attr:`runner` builds it on first use (once per process).
        batch_size, top_k, with_embedding: scoring settings.
        decisions: the segment, cluster and explanation columns (None: none).
        chunks: the input's customer chunks and their plan (None without an input).
        outputs: what the job writes, checked and cleaned before any work (None: nothing).
    """

    bundle: Bundle
    schema: EventSchema
    as_of: datetime | None = None
    model: ModelChoice = field(default_factory=ModelChoice)
    batch_size: int = BATCH_SIZE
    top_k: int = TOP_K
    with_embedding: bool = False
    decisions: Decisions | None = None
    chunks: EventChunks | None = None
    outputs: OutputPlan | None = None
    _runner: Runner | None = field(default=None, repr=False)

    @classmethod
    def resolve(
        cls,
        bundle: Bundle | str | Path,
        input: str | Path | None = None,
        *,
        as_of: datetime | str | None = None,
        model: ModelChoice | None = None,
        batch_size: int = BATCH_SIZE,
        top_k: int = TOP_K,
        with_embedding: bool = False,
        schema_overrides: Mapping[str, Any] | None = None,
        decide: Mapping[str, Any] | None = None,
        decisions: Decisions | None = None,
        chunk_customers: int = CHUNK_CUSTOMERS,
        outputs: OutputPlan | None = None,
        runner: bool | Runner = True,
    ) -> ScoringJob:
        """Check and clean ``outputs`` (before any work), parse ``as_of``, load the bundle,
        start the runner (``runner=True``: a missing GPU runtime fails before any data is
        read; False: on first use; or a runner to use), build the decision columns from
        ``decide`` (predict's settings; or pass ``decisions``), the schema, and the chunk plan
        of ``input`` (its end is as_of when none is given)."""
        from journeyformer.inference.decisions import Decisions

        if outputs is not None:
            outputs.check()
            outputs.clean()
        when = resolve_as_of(as_of)
        loaded = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        job = cls(loaded, loaded.schema(schema_overrides), when, model or ModelChoice(), batch_size, top_k,
                  with_embedding, outputs=outputs)  # fmt: skip
        if runner is True:
            job.runner  # noqa: B018 - started now, see above
        elif runner is not False:
            job._runner = runner
        job.decisions = (
            decisions if decisions is not None else Decisions.from_config(loaded, decide or {})
        )
        if input is not None:
            from journeyformer.data.events.partitions import EventChunks

            job.chunks = EventChunks(input, job.schema, chunk_customers)
            if job.as_of is None:
                job.as_of = job.chunks.plan.latest
        return job

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            self._runner = self.model.runner(self.bundle)
        return self._runner

    def pin_model(self) -> ModelChoice:
        """Decide ``graph=auto`` / ``precision=auto`` here (the probe runs once) and keep the
        answer, so workers that build their own runner run the same graph."""
        runner = self.runner
        self.model = replace(self.model, graph=runner.graph, precision=runner.precision)  # type: ignore[attr-defined]
        return self.model

    def for_workers(self) -> ScoringJob:
        """This job without what stays with the driver (runner, input plan, outputs), to send
        to workers; each starts its own runner on first use."""
        return replace(self, chunks=None, outputs=None, _runner=None)

    def output_schema(self, customer_id: pl.DataType) -> pl.Schema:
        """The predictions' columns, customer_id of dtype ``customer_id`` (the input's)."""
        return prediction_schema(self.bundle, customer_id, self.with_embedding, self.decisions)

    def prepare(self, events: pl.DataFrame, source: str = "partition") -> Prepared:
        """One partition's events (read with :attr:`schema` by
        :func:`journeyformer.data.events.load.scan_events`) -> validated, sequences at as_of,
        length-sorted batches; customers without a sequence become rejects. No model."""
        seen = events.select(pl.col("customer_id").drop_nulls().unique())
        if events.height == 0:
            return Prepared(None, [], partition_rejects(seen, None, None), 0)
        schema = self.schema
        keyed = pl.col("customer_id").is_not_null() & pl.col("timestamp").is_not_null()
        if schema.null_keys == "drop" and not events.select(keyed.any()).item():
            # validate() calls a partition of only null keys an error; it is not one while the
            # rest of the input has events. Unparseable timestamps stay an error.
            unparseable = events.filter(pl.col("timestamp").is_null() & pl.col("_ts_raw").is_not_null())
            if unparseable.height:
                validate(unparseable, schema, source)  # raises, quoting the bad values
            log.warning(
                "%s: dropped %d rows with a null key (data.null_keys=drop)", source, events.height
            )
            return Prepared(None, [], partition_rejects(seen, events.head(0), None), events.height)
        valid = validate(events, schema, source)
        seqs = self.bundle.preprocessing.sequences(
            valid, self._when(), with_labels=False, active_only=False, source=source
        )
        rejects = partition_rejects(seen, valid, seqs)
        if len(seqs) == 0:
            return Prepared(None, [], rejects, valid.height)
        return Prepared(seqs, length_batches(seqs, self.batch_size), rejects, valid.height)

    def score(
        self,
        prepared: Prepared,
        customer_id: pl.DataType = pl.Int64,
        on_batch: Callable[[int], None] | None = None,
    ) -> PartitionResult:
        """A prepared partition -> predictions (with :attr:`decisions`' columns) and rejects;
        ``customer_id``: the input's dtype, for an empty partition."""
        when = self._when()
        rejects = prepared.rejects.select(
            "customer_id", pl.lit(when, UTC_US).alias("as_of"), "reason", "first_event"
        )
        if prepared.seqs is None:
            empty = pl.DataFrame(schema=self.output_schema(customer_id))
            return PartitionResult(empty, rejects, prepared.n_events)
        scored = self.score_sequences(prepared.seqs, on_batch=on_batch, batches=prepared.batches)
        return PartitionResult(scored.frame, rejects, prepared.n_events, dict(prepared.seqs.unknown_counts))

    def score_partition(self, events: pl.DataFrame, source: str = "partition") -> PartitionResult:
        """:meth:`prepare` then :meth:`score`: reads and writes nothing."""
        return self.score(self.prepare(events, source), events.schema.get("customer_id", pl.Int64))

    def score_sequences(
        self,
        seqs: Sequences,
        on_batch: Callable[[int], None] | None = None,
        batches: list[Batch] | None = None,
    ) -> Scored:
        """:func:`score_sequences` with this job's runner, settings and decisions."""
        return score_sequences(
            seqs, self.runner, self.bundle, self._when(), batch_size=self.batch_size, top_k=self.top_k,
            with_embedding=self.with_embedding, decisions=self.decisions, batches=batches, on_batch=on_batch,
        )  # fmt: skip

    def _when(self) -> datetime:
        if self.as_of is None:
            raise ConfigError(
                "as_of is not known: give as_of= or an input to take the end of the data from"
            )
        return self.as_of
