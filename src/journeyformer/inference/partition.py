"""Scoring one partition: the events of a set of customers in; predictions, rejects, counts out.

:func:`score_partition` is a pure function of (events, spec, as_of, runner): it reads nothing
and writes nothing, so any driver can call it on any partition of customers. The local predict
job (:mod:`journeyformer.inference.job`) is one driver: it reads customer chunks, overlaps
:func:`prepare_partition` of the next chunk with :func:`score_prepared` of the current one, and
streams the results to Parquet. A distributed driver maps the same function over partitions.

A partition must hold *all* events of its customers (partition by customer, never by time).
Every customer seen is accounted for: it is scored, or rejected with a reason.

A runner turns one padded batch (input name -> array, :data:`journeyformer.data.features.batch.MODEL_INPUTS`)
into named outputs: :class:`journeyformer.inference.runner.OnnxRunner` (fp32 or int8, no
torch) or :class:`journeyformer.model.runner.TorchRunner` (a checkpoint, eager torch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from journeyformer.data.events.schema import EventSchema
from journeyformer.data.events.timestamps import UTC_US
from journeyformer.data.events.validate import validate
from journeyformer.data.features.batch import Batch, length_batches
from journeyformer.data.features.sequences import Sequences
from journeyformer.inference.loop import (
    BATCH_SIZE,
    Runner,
    ScoringSpec,
    prediction_schema,
    score_sequences,
)
from journeyformer.tasks.base import TOP_K

if TYPE_CHECKING:
    from journeyformer.inference.decisions import Decisions

log = logging.getLogger(__name__)

REASON_NO_HISTORY = "no events at or before as_of"
REASON_NO_VALID = "no valid events (every row had a null timestamp; data.null_keys=drop)"


@dataclass
class Prepared:
    """A partition ready for the runner: its sequences, batches and rejects."""

    seqs: Sequences | None
    batches: list[Batch]
    rejects: pl.DataFrame  # customer_id, reason, first_event
    n_events: int


@dataclass
class PartitionResult:
    """What scoring one partition gives.

    Attributes:
        predictions: one row per scored customer (:func:`prediction_frame` columns).
        rejects: customer_id, as_of, reason, first_event (UTC, null when no valid event).
        n_events: events read; unknown: column -> kept events mapped to ``<unk>``.
    """

    predictions: pl.DataFrame
    rejects: pl.DataFrame
    n_events: int
    unknown: dict[str, int] = field(default_factory=dict)

    @property
    def n_scored(self) -> int:
        return self.predictions.height

    @property
    def n_rejected(self) -> int:
        return self.rejects.height

    @property
    def n_customers(self) -> int:
        return self.n_scored + self.n_rejected


def prepare_partition(
    events: pl.DataFrame,
    spec: ScoringSpec,
    schema: EventSchema,
    as_of: datetime,
    batch_size: int = BATCH_SIZE,
    source: str = "partition",
) -> Prepared:
    """Validate the partition's events (read with ``schema`` by
    :func:`journeyformer.data.events.load.scan_events`), build sequences at ``as_of`` and cut them
    into length-sorted batches; customers without a sequence become rejects."""
    seen = events.select(pl.col("customer_id").drop_nulls().unique())
    if events.height == 0:
        return Prepared(None, [], _rejects(seen, None, None), 0)
    keyed = pl.col("customer_id").is_not_null() & pl.col("timestamp").is_not_null()
    if schema.null_keys == "drop" and not events.select(keyed.any()).item():
        # validate() calls a partition of only null keys an error; it is not one while the rest
        # of the input has events. Unparseable timestamps stay an error.
        unparseable = events.filter(pl.col("timestamp").is_null() & pl.col("_ts_raw").is_not_null())
        if unparseable.height:
            validate(unparseable, schema, source)  # raises, quoting the bad values
        log.warning(
            "%s: dropped %d rows with a null key (data.null_keys=drop)", source, events.height
        )
        return Prepared(None, [], _rejects(seen, events.head(0), None), events.height)
    valid = validate(events, schema, source)
    seqs = spec.preprocessing.sequences(
        valid, as_of, with_labels=False, active_only=False, source=source
    )
    rejects = _rejects(seen, valid, seqs)
    if len(seqs) == 0:
        return Prepared(None, [], rejects, valid.height)
    return Prepared(seqs, length_batches(seqs, batch_size), rejects, valid.height)


def score_prepared(
    prepared: Prepared,
    spec: ScoringSpec,
    as_of: datetime,
    runner: Runner,
    top_k: int = TOP_K,
    with_embedding: bool = False,
    customer_id: pl.DataType = pl.Int64,
    on_batch: Callable[[int], None] | None = None,
    decisions: Decisions | None = None,
) -> PartitionResult:
    """Run the batches and format predictions and rejects (``customer_id``: the dtype of the
    input's customer ids, for an empty partition); ``decisions`` adds segment, cluster and
    explanation columns (:class:`journeyformer.inference.decisions.Decisions`)."""
    rejects = prepared.rejects.select(
        "customer_id", pl.lit(as_of, UTC_US).alias("as_of"), "reason", "first_event"
    )
    seqs = prepared.seqs
    if seqs is None:
        empty = pl.DataFrame(schema=prediction_schema(spec, customer_id, with_embedding, decisions))
        return PartitionResult(empty, rejects, prepared.n_events)
    frame = score_sequences(
        seqs, runner, spec, as_of, top_k=top_k, with_embedding=with_embedding, decisions=decisions,
        batches=prepared.batches, on_batch=on_batch,
    ).frame  # fmt: skip
    return PartitionResult(frame, rejects, prepared.n_events, dict(seqs.unknown_counts))


def score_partition(
    events: pl.DataFrame,
    spec: ScoringSpec,
    schema: EventSchema,
    as_of: datetime,
    runner: Runner,
    *,
    batch_size: int = BATCH_SIZE,
    top_k: int = TOP_K,
    with_embedding: bool = False,
    source: str = "partition",
    decisions: Decisions | None = None,
) -> PartitionResult:
    """Score every customer of one partition at ``as_of``: :func:`prepare_partition` then
    :func:`score_prepared`. Reads and writes nothing.

    Example::

        bundle = load_bundle("checkpoints/small_h30_s42/bundle")
        lf, name = scan_events("events.parquet", bundle.schema())
        part = lf.filter(pl.col("customer_id").hash(0) % 8 == 3).collect()
        result = score_partition(part, bundle, bundle.schema(), as_of, OnnxRunner(bundle))
    """
    prepared = prepare_partition(events, spec, schema, as_of, batch_size, source)
    dtype = events.schema.get("customer_id", pl.Int64)
    return score_prepared(
        prepared, spec, as_of, runner, top_k, with_embedding, dtype, decisions=decisions
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
