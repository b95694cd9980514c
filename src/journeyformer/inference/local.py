"""The local scoring driver: events (Parquet/CSV, a file, directory or glob) -> one
predictions Parquet file, on one machine.

Flow (the input is read a fixed number of times, whatever its size; :mod:`journeyformer.data.events.partitions`)::

    plan:           3 streaming passes over customer_id and timestamp (size, customers, as_of)
    spill:          1 streaming pass over every column -> temporary Parquet partition per chunk
    worker thread:  read partition i+1 -> ScoringJob.prepare (validate, sequences, batches)
    main thread:    ScoringJob.score on partition i (onnxruntime) -> predictions -> row group

Polars and onnxruntime both release the GIL, so preparing the next chunk overlaps with
inference on the current one; at most two chunks are in memory. The partitions live in a temp
directory beside the output (``scratch=`` to put it elsewhere), removed when the job ends,
fails or is killed (and by the next run after a hard kill). Predictions stream into a
temporary Parquet file beside the output; predictions and rejects are published together only
when every chunk succeeded, with ``<output stem>.manifest.json`` (row counts, checksums) written
last (:func:`journeyformer.publish.publish_files`), so a failure or a kill leaves the previous
result. Outputs that would overwrite the input or each other, or an existing directory, are
refused before any work. Customers without a prediction go to the rejects file with a reason;
together the two files hold every customer of the input exactly once.

Needs no torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from journeyformer.data.events.partitions import CHUNK_CUSTOMERS
from journeyformer.inference.bundle import Bundle
from journeyformer.inference.loop import BATCH_SIZE
from journeyformer.inference.result import PredictResult, Prepared, rejects_path
from journeyformer.inference.scoring import ModelChoice, ScoringJob
from journeyformer.io import temp_file
from journeyformer.publish import OutputPlan, manifest_path
from journeyformer.tasks.base import TOP_K

log = logging.getLogger(__name__)


def predict_events(
    bundle: Bundle | str | Path,
    input: str | Path,
    output: str | Path,
    *,
    as_of: datetime | str | None = None,
    device: str = "cpu",
    precision: str = "auto",
    batch_size: int = BATCH_SIZE,
    chunk_customers: int = CHUNK_CUSTOMERS,
    top_k: int = TOP_K,
    with_embedding: bool = False,
    threads: int | None = None,
    optimization: str = "basic",
    graph: str = "auto",
    parallel: str = "auto",
    schema_overrides: Mapping[str, Any] | None = None,
    rejects: str | Path | None = None,
    progress: bool = True,
    scratch: str | Path | None = None,
    decide: Mapping[str, Any] | None = None,
) -> PredictResult:
    """Score every customer of ``input`` at ``as_of`` and write ``output`` (Parquet).

    Args:
        bundle: a bundle directory (or a loaded :class:`Bundle`).
        input: events: a file, a directory of Parquet files or a glob.
        output: predictions Parquet file (see
            :func:`journeyformer.inference.loop.prediction_frame` for the columns).
        as_of: score with events at or before this time (ISO-8601; naive means UTC).
            Default: the end of the data (:mod:`journeyformer.data.events.as_of`).
        chunk_customers: about this many customers are in memory at a time (two chunks).
        threads, optimization: onnxruntime settings (:mod:`journeyformer.inference.session`).
        graph: auto | plain | fused (:mod:`journeyformer.inference.choice`).
        parallel: auto | batches | operators: how the threads share the model
            (:class:`journeyformer.inference.runner.OnnxRunner`).
        schema_overrides: ``data`` settings replacing the bundle's event schema (columns,
            time_zone, timestamp_unit, null_keys, duplicates, format).
        rejects: Parquet file of customers without a prediction (customer_id, as_of, reason,
            first_event). Default: ``<output stem>.rejects.parquet``.
        scratch: directory for the temporary partitions (about the input's size on disk);
            default: the output's directory.
        decide: segment rules and explanation settings (``segments``, ``explain``,
            ``explain_events``, ``explain_top``; :meth:`Decisions.from_config`); None: the
            default segments, no explanations.
    """
    start = time.perf_counter()
    output = Path(output)
    parts_name = (Path(scratch) if scratch else output.parent) / f"{output.name}.partitions"
    outputs = OutputPlan.files_unit(
        {"output": ("predictions", output), "rejects": ("rejects", rejects or rejects_path(output))},
        manifest_path(output), [input], [parts_name],
    )  # fmt: skip
    job = ScoringJob.resolve(
        bundle, input, as_of=as_of, model=ModelChoice(device, precision, threads, optimization, graph, parallel),
        batch_size=batch_size, top_k=top_k, with_embedding=with_embedding, schema_overrides=schema_overrides,
        decide=decide, chunk_customers=chunk_customers, outputs=outputs,
    )  # fmt: skip
    chunks, when = job.chunks, job.as_of
    assert chunks is not None and when is not None
    plan = chunks.plan
    log.info(
        "%s: %d events, %d customers, %d chunk(s); as_of %s; onnxruntime on %s",
        plan.name, plan.n_rows, plan.n_customers, plan.n_chunks, when.isoformat(), job.runner.provider,
    )  # fmt: skip

    def prepare(i: int) -> Prepared:
        return job.prepare(chunks.read(i), chunks.source(i))

    customer_id = chunks.lf.collect_schema()["customer_id"]
    out_schema = job.output_schema(customer_id)
    result = PredictResult(outputs.files["output"][1], outputs.files["rejects"][1], when, n_chunks=plan.n_chunks)
    reject_parts: list[pl.DataFrame] = []
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
    bar = tqdm(total=plan.n_customers, unit="customer", desc="scoring", disable=not progress)
    try:
        with temp_file(parts_name) as parts_dir, outputs.publish() as tmp:
            chunks.spill(parts_dir)
            writer = pq.ParquetWriter(tmp["predictions"], pl.DataFrame(schema=out_schema).to_arrow().schema)
            try:
                pending: Future = pool.submit(prepare, 0)
                for i in range(plan.n_chunks):
                    prepared = pending.result()
                    if i + 1 < plan.n_chunks:
                        pending = pool.submit(prepare, i + 1)  # overlaps with inference below
                    part = job.score(prepared, customer_id, bar.update)
                    if part.n_scored:
                        writer.write_table(part.predictions.to_arrow())
                    result.add(part.n_events, part.n_scored, part.unknown)
                    reject_parts.append(part.rejects)
                    bar.update(part.n_rejected)
            finally:
                writer.close()
            rejected = pl.concat(reject_parts)
            rejected.write_parquet(tmp["rejects"])
            result.finish(plan.name, plan.n_customers, rejected)
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
    result.seconds = time.perf_counter() - start
    if result.unknown:
        log.info("values unseen in training mapped to <unk> (events): %s", result.unknown)
    log.info("\n%s", result.summary())
    return result
