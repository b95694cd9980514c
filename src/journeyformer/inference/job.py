"""The batch scoring job: events (Parquet/CSV, a file, directory or glob) -> predictions.parquet.

A local driver around :func:`journeyformer.inference.partition.score_partition`: each customer
chunk (:mod:`journeyformer.inference.chunks`) is one partition. Flow::

    worker thread:  read chunk i+1 -> prepare_partition (validate, sequences, padded batches)
    main thread:    score_prepared on chunk i (onnxruntime) -> predictions -> Parquet row group

Polars and onnxruntime both release the GIL, so preparing the next chunk overlaps with
inference on the current one; at most two chunks are in memory. Predictions stream into a
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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from journeyformer.data.samples import parse_time
from journeyformer.errors import ConfigError
from journeyformer.inference.bundle import Bundle, load_bundle
from journeyformer.inference.chunks import EventChunks
from journeyformer.inference.decisions import Decisions
from journeyformer.inference.partition import (
    PartitionResult,
    Prepared,
    prediction_schema,
    prepare_partition,
    score_prepared,
)
from journeyformer.inference.runner import OnnxRunner
from journeyformer.publish import (
    check_distinct,
    check_file_output,
    clean_stale,
    manifest_path,
    publish_files,
)

log = logging.getLogger(__name__)


@dataclass
class PredictResult:
    """What a scoring run did. Counts are customers unless named otherwise."""

    output: Path
    rejects: Path
    as_of: datetime
    n_customers: int
    n_scored: int
    n_rejected: int
    n_events: int
    n_chunks: int
    seconds: float
    unknown: dict[str, int] = field(default_factory=dict)
    reject_reasons: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        rate = self.n_customers / self.seconds if self.seconds else float("nan")
        lines = [
            f"as_of {self.as_of.isoformat()}: {self.n_customers} customers, {self.n_events} events "
            f"in {self.n_chunks} chunk(s), {self.seconds:.1f} s ({rate:,.0f} customers/s)",
            f"  scored   {self.n_scored:>9}  -> {self.output}",
            f"  rejected {self.n_rejected:>9}  -> {self.rejects}",
        ]
        lines += [f"    {n:>9}  {reason}" for reason, n in self.reject_reasons.items()]
        if self.unknown:
            lines.append(f"  values unseen in training, mapped to <unk> (events): {self.unknown}")
        return "\n".join(lines)


def rejects_path(output: str | Path) -> Path:
    """``out/predictions.parquet`` -> ``out/predictions.rejects.parquet``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.rejects{output.suffix or '.parquet'}")


def predict_events(
    bundle: Bundle | str | Path,
    input: str | Path,
    output: str | Path,
    *,
    as_of: datetime | str | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    batch_size: int = 64,
    chunk_customers: int = 50_000,
    top_k: int = 3,
    with_embedding: bool = False,
    threads: int | None = None,
    optimization: str = "basic",
    schema_overrides: Mapping[str, Any] | None = None,
    rejects: str | Path | None = None,
    progress: bool = True,
    decide: Mapping[str, Any] | None = None,
) -> PredictResult:
    """Score every customer of ``input`` at ``as_of`` and write ``output`` (Parquet).

    Args:
        bundle: a bundle directory (or a loaded :class:`Bundle`).
        input: events: a file, a directory of Parquet files or a glob.
        output: predictions Parquet file (see :func:`prediction_frame` for the columns).
        as_of: score with events at or before this time (ISO-8601; naive means UTC).
            Default: the latest timestamp in the input.
        threads, optimization: onnxruntime settings (:mod:`journeyformer.inference.session`).
        schema_overrides: ``data`` settings replacing the bundle's event schema (columns,
            time_zone, timestamp_unit, null_keys, duplicates, format).
        rejects: Parquet file of customers without a prediction (customer_id, as_of, reason,
            first_event). Default: ``<output stem>.rejects.parquet``.
        decide: segment rules and explanation settings (``segments``, ``explain``,
            ``explain_events``, ``explain_top``; :meth:`Decisions.from_config`); None: the
            default segments, no explanations.
    """
    start = time.perf_counter()
    output, rejects = Path(output), Path(rejects) if rejects else rejects_path(output)
    manifest = manifest_path(output)
    check_file_output(output, "output", [input])
    check_file_output(rejects, "rejects", [input])
    check_file_output(manifest, "manifest", [input])
    check_distinct({"output": output, "rejects": rejects, "manifest": manifest})
    clean_stale([output, rejects, manifest])
    try:
        given_as_of = parse_time(as_of) if as_of is not None else None
    except ValueError as err:
        raise ConfigError(f"as_of: {err}") from None
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    # The session first: a missing GPU runtime fails before any data is read.
    runner = OnnxRunner(bundle, device, precision, threads, optimization=optimization)
    decisions = Decisions.from_config(bundle, decide or {})
    schema = bundle.schema(schema_overrides)
    chunks = EventChunks(input, schema, chunk_customers)
    plan = chunks.plan
    when = given_as_of if given_as_of is not None else plan.latest
    log.info(
        "%s: %d events, %d customers, %d chunk(s); as_of %s; onnxruntime on %s",
        plan.name, plan.n_rows, plan.n_customers, plan.n_chunks, when.isoformat(), runner.provider,
    )  # fmt: skip

    def prepare(i: int) -> Prepared:
        return prepare_partition(chunks.read(i), bundle, schema, when, batch_size, chunks.source(i))

    customer_id = chunks.lf.collect_schema()["customer_id"]
    out_schema = prediction_schema(bundle, customer_id, with_embedding, decisions)
    result = PredictResult(output, rejects, when, 0, 0, 0, 0, plan.n_chunks, 0.0)
    reject_parts: list[pl.DataFrame] = []
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
    bar = tqdm(total=plan.n_customers, unit="customer", desc="scoring", disable=not progress)
    try:
        with publish_files({"predictions": output, "rejects": rejects}, manifest) as tmp:
            tmp_out, tmp_rej = tmp["predictions"], tmp["rejects"]
            writer = pq.ParquetWriter(tmp_out, pl.DataFrame(schema=out_schema).to_arrow().schema)
            try:
                pending: Future = pool.submit(prepare, 0)
                for i in range(plan.n_chunks):
                    prepared = pending.result()
                    if i + 1 < plan.n_chunks:
                        pending = pool.submit(prepare, i + 1)  # overlaps with inference below
                    part = score_prepared(
                        prepared, bundle, when, runner, top_k, with_embedding, customer_id, bar.update,
                        decisions=decisions,
                    )
                    _add(result, part, writer)
                    reject_parts.append(part.rejects)
                    bar.update(part.n_rejected)
            finally:
                writer.close()
            rejected = pl.concat(reject_parts)
            rejected.write_parquet(tmp_rej)
            if result.n_scored + rejected.height != plan.n_customers:  # a bug, never bad data
                raise RuntimeError(
                    f"{plan.name}: {plan.n_customers} customers in the input but "
                    f"{result.n_scored} scored + {rejected.height} rejected; nothing was written"
                )
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
    result.n_rejected = rejected.height
    result.n_customers = result.n_scored + result.n_rejected
    result.reject_reasons = dict(rejected.get_column("reason").value_counts(sort=True).iter_rows())
    result.seconds = time.perf_counter() - start
    if result.unknown:
        log.info("values unseen in training mapped to <unk> (events): %s", result.unknown)
    log.info("\n%s", result.summary())
    return result


def _add(result: PredictResult, part: PartitionResult, writer: pq.ParquetWriter) -> None:
    """Append one partition's predictions as a row group and add up its counts."""
    result.n_events += part.n_events
    if part.n_scored:
        writer.write_table(part.predictions.to_arrow())
    result.n_scored += part.n_scored
    for name, n in part.unknown.items():
        result.unknown[name] = result.unknown.get(name, 0) + n


def predict_from_config(cfg: Mapping[str, Any]) -> PredictResult:
    """:func:`predict_events` with the settings of ``configs/predict.yaml`` (plain values)."""
    data = {k: v for k, v in dict(cfg.get("data") or {}).items() if v is not None}
    return predict_events(
        cfg["bundle"],
        cfg["input"],
        cfg.get("output", "predictions.parquet"),
        as_of=cfg.get("as_of"),
        device=str(cfg.get("device", "cpu")),
        precision=str(cfg.get("precision", "fp32")),
        batch_size=int(cfg.get("batch_size", 64)),
        chunk_customers=int(cfg.get("chunk_customers", 50_000)),
        top_k=int(cfg.get("top_k", 3)),
        with_embedding=bool(cfg.get("with_embedding", False)),
        threads=cfg.get("threads"),
        optimization=str(cfg.get("optimization", "basic")),
        schema_overrides=data,
        rejects=cfg.get("rejects"),
        progress=bool(cfg.get("progress", True)),
        # No `segments` key (`~segments` on the command line): no segment column.
        decide={"segments": cfg.get("segments"), **{k: cfg[k] for k in ("explain", "explain_events", "explain_top") if k in cfg}},
    )
