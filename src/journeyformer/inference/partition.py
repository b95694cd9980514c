"""Scoring one partition: the events of a set of customers in; predictions, rejects, counts out.

:func:`score_partition` is a pure function of (events, spec, as_of, runner): it reads nothing
and writes nothing, so any driver can call it on any partition of customers
(:meth:`journeyformer.inference.scoring.ScoringJob.score_partition` is the same with a job's
settings). A partition must hold *all* events of its customers (partition by customer, never by
time). Every customer seen is accounted for: it is scored, or rejected with a reason
(:mod:`journeyformer.inference.result`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from journeyformer.data.events.schema import EventSchema
from journeyformer.inference.loop import BATCH_SIZE, Runner, ScoringSpec
from journeyformer.inference.result import PartitionResult
from journeyformer.inference.scoring import ScoringJob
from journeyformer.tasks.base import TOP_K

if TYPE_CHECKING:
    from journeyformer.inference.decisions import Decisions


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
    """Score every customer of one partition at ``as_of``: validate, sequences, batches,
    ``runner``, predictions and rejects. Reads and writes nothing.

    Example::

        bundle = load_bundle("checkpoints/small_h30_s42/bundle")
        lf, name = scan_events("events.parquet", bundle.schema())
        part = lf.filter(pl.col("customer_id").hash(0) % 8 == 3).collect()
        result = score_partition(part, bundle, bundle.schema(), as_of, OnnxRunner(bundle))
    """
    job = ScoringJob(spec, schema, as_of, batch_size=batch_size, top_k=top_k,  # type: ignore[arg-type]
                     with_embedding=with_embedding, decisions=decisions, _runner=runner)  # fmt: skip
    return job.score_partition(events, source)
