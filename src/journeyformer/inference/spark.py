"""Scoring inside Spark: the per-partition function for ``DataFrame.mapInArrow``.

For users whose events live in Spark. Spark shuffles by customer, and each Spark partition
goes through :meth:`journeyformer.inference.scoring.ScoringJob.score_partition`, as in both
journeyformer drivers::

    from journeyformer.inference.spark import arrow_scorer, spark_schema

    scorer = arrow_scorer("/dbfs/models/bundle", as_of="2025-12-31")
    out = (events.repartition(512, "customer_id")          # every event of a customer together
                 .mapInArrow(scorer, spark_schema("/dbfs/models/bundle")))
    out.write.parquet("s3://bucket/predictions/2025-12-31")

The output holds every customer of the input once: scored customers with the predictions
columns and ``reject_reason`` null, customers without a prediction with only customer_id,
as_of and ``reject_reason`` (filter on it to split the two). Events need the bundle's column
names (or pass ``schema_overrides`` as ``data.columns`` would). Within a Spark partition,
events with the same timestamp keep the order Spark delivers them in (the local job keeps file
order). The bundle directory must be readable on every executor; the onnxruntime session is
made once per Python worker. Needs pyarrow, polars and onnxruntime on the executors, no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import polars as pl
import pyarrow as pa

from journeyformer.errors import ConfigError
from journeyformer.inference.loop import BATCH_SIZE
from journeyformer.tasks.base import TOP_K

REJECT_REASON = "reject_reason"


@lru_cache(maxsize=4)
def _session(bundle: str, threads: int) -> tuple[Any, Any]:
    from journeyformer.inference.bundle import load_bundle
    from journeyformer.inference.runner import OnnxRunner

    loaded = load_bundle(bundle)
    return loaded, OnnxRunner(loaded, "cpu", "fp32", threads)


def output_schema(bundle: str, customer_id: pl.DataType = pl.Int64, with_embedding: bool = False) -> pl.Schema:
    """The columns :func:`arrow_scorer` yields: the predictions table plus ``reject_reason``."""
    from journeyformer.inference.loop import prediction_schema

    loaded, _ = _session(str(bundle), 1)
    return pl.Schema({**prediction_schema(loaded, customer_id, with_embedding), REJECT_REASON: pl.String})


_DDL = {pl.Int64: "bigint", pl.Int32: "int", pl.Float64: "double", pl.Float32: "float",
        pl.String: "string", pl.Boolean: "boolean"}  # fmt: skip


def _ddl(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    if isinstance(dtype, pl.List):
        return f"array<{_ddl(dtype.inner)}>"
    return _DDL[dtype.base_type() if dtype not in _DDL else dtype]


def spark_schema(bundle: str, customer_id: pl.DataType = pl.Int64, with_embedding: bool = False) -> str:
    """:func:`output_schema` as a Spark DDL string, for ``mapInArrow(fn, schema)``."""
    return ", ".join(f"`{k}` {_ddl(v)}" for k, v in output_schema(bundle, customer_id, with_embedding).items())


def _spark_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        return pa.list_(_spark_type(t.value_type))
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    return t


def spark_arrow(table: pa.Table) -> pa.Table:
    """Polars' Arrow (large lists, large or view strings) -> the types Spark reads."""
    return table.cast(pa.schema([pa.field(f.name, _spark_type(f.type)) for f in table.schema]))


def arrow_scorer(
    bundle: str,
    as_of: datetime | str,
    *,
    schema_overrides: Mapping[str, Any] | None = None,
    batch_size: int = BATCH_SIZE,
    top_k: int = TOP_K,
    with_embedding: bool = False,
    threads: int = 1,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A function from one Spark partition's events (Arrow record batches, the user's columns)
    to its predictions and rejects (record batches of :func:`output_schema`).

    ``as_of`` is required: a partition cannot know where the whole data ends.
    """
    from journeyformer.inference.scoring import resolve_as_of

    when = resolve_as_of(as_of)
    if when is None:
        raise ConfigError("arrow_scorer needs as_of: a partition cannot know where the whole data ends")
    bundle = str(bundle)

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from journeyformer.data.events.normalize import normalize
        from journeyformer.inference.decisions import Decisions
        from journeyformer.inference.scoring import ModelChoice, ScoringJob

        loaded, runner = _session(bundle, threads)  # on an executor: one warm session per worker
        job = ScoringJob.resolve(
            loaded, as_of=when, model=ModelChoice(precision="fp32", threads=threads), batch_size=batch_size,
            top_k=top_k, with_embedding=with_embedding, schema_overrides=schema_overrides, runner=runner,
            decisions=Decisions(),
        )  # fmt: skip
        table = pa.Table.from_batches(list(batches))
        if table.num_rows == 0:
            return
        events = normalize(pl.from_arrow(table).lazy(), job.schema, "spark partition").collect()
        part = job.score_partition(events, "spark partition")
        columns = output_schema(bundle, events.schema["customer_id"], with_embedding)
        rejects = part.rejects.select("customer_id", "as_of", pl.col("reason").alias(REJECT_REASON))
        out = pl.concat(
            [part.predictions.with_columns(pl.lit(None, pl.String).alias(REJECT_REASON)), rejects],
            how="diagonal_relaxed",
        ).select([pl.col(k).cast(v) for k, v in columns.items()])
        yield from spark_arrow(out.to_arrow()).to_batches()

    return score
