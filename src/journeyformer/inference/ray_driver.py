"""The distributed scoring driver: Ray Data across the machines of a Ray cluster.

``python scripts/predict.py engine=ray bundle=<dir> input=<events> output=<dir>`` (needs
``pip install 'journeyformer[ray]'``). The same partitions and the same per-partition function
as the local driver (:mod:`journeyformer.inference.local`), so both give the same customers
and the same numbers::

    driver:   plan (customers, as_of, partitions; Polars, two columns) -> read units
    read:     one Ray task per Parquet row group (CSV: per file): read, normalize with the
              bundle's schema, global row order (ties keep file order), chunk key
    shuffle:  groupby(chunk) -> every event of a customer in one group
    score:    map_groups on an actor pool; each actor gets the driver's ScoringJob, holds one
              onnxruntime session and calls its score_partition, writes part-<chunk>.parquet
              and rejects-<chunk>.parquet atomically and returns one row of counts
    driver:   every chunk exactly once, every customer scored or rejected; rejects joined into
              rejects.parquet; manifest.json (files, rows, bytes, SHA-256, counts) written last;
              the directory swapped into place at ``output``

A partition's files are named by its chunk, so an actor that dies mid-partition and is
retried (``engine.max_restarts``) writes the same files again: nothing lost, nothing doubled.
``output`` must be a directory every worker can write (a shared file system on a cluster);
it is refused when it exists and was not made by this job. Torch-free.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from journeyformer.data.events.normalize import normalize
from journeyformer.data.events.order import ROW
from journeyformer.data.events.partitions import CHUNK_CUSTOMERS, chunk_key
from journeyformer.data.events.readers import format_of, resolve_files
from journeyformer.data.events.schema import EventSchema
from journeyformer.errors import ConfigError
from journeyformer.inference.bundle import Bundle
from journeyformer.inference.loop import BATCH_SIZE
from journeyformer.inference.result import PredictResult
from journeyformer.inference.scoring import ModelChoice, ScoringJob
from journeyformer.io import atomic_write_parquet
from journeyformer.publish import OutputPlan, write_dir_manifest
from journeyformer.tasks.base import TOP_K

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
REJECTS = "rejects.parquet"
_KEY = "_chunk"
_COUNTS = {"chunk": pl.Int64, "n_scored": pl.Int64, "n_rejected": pl.Int64, "n_events": pl.Int64,
           "unknown": pl.String}  # fmt: skip
DEFAULTS: dict[str, Any] = {
    "address": None,  # None: a local Ray on this machine; "auto": the running cluster
    "num_workers": "auto",  # scoring actors, each with one onnxruntime session; auto: size_actors
    "num_cpus": 1,  # per actor
    "num_gpus": 0,  # per actor (device=cuda with onnxruntime-gpu on the workers)
    "max_restarts": 3,  # an actor that dies is restarted and its partition retried
}


def read_units(files: list[Path], fmt: str) -> list[dict[str, Any]]:
    """The input cut into read tasks: a Parquet row group or a CSV file each, with the global
    row number of its first row (the local reader's ``_row`` order)."""
    units, offset = [], 0
    for f in files:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(f).metadata
            groups = [(g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
        else:
            groups = [(-1, pl.scan_csv(f).select(pl.len()).collect().item())]
        for g, n in groups:
            units.append({"file": str(f), "group": g, "offset": offset, "rows": n})
            offset += n
    return units


def read_unit(batch: dict[str, Any], schema: EventSchema, fmt: str, name: str, n_chunks: int) -> Any:
    """One read task (a batch of one unit): the unit's events, normalized as the local reader
    does, with global row numbers and the chunk key. Returns a pyarrow Table."""
    from journeyformer.data.events.readers import READERS

    file, group, offset = str(batch["file"][0]), int(batch["group"][0]), int(batch["offset"][0])
    if fmt == "parquet":
        import pyarrow.parquet as pq

        lf = pl.from_arrow(pq.ParquetFile(file).read_row_group(group)).lazy()
    else:
        lf = READERS[fmt]([Path(file)], schema, name)
    df = normalize(lf, schema, name).collect()
    row_type = df.schema[ROW]
    df = df.with_columns((pl.col(ROW).cast(pl.Int64) + offset).cast(row_type), chunk_key(n_chunks).alias(_KEY))
    return df.to_arrow()


class PartitionScorer:
    """A Ray actor's scoring state: the job (sent by the driver) with one onnxruntime
    session, started here and reused for every partition."""

    def __init__(self, job: ScoringJob, workdir: str) -> None:
        self.job, self.workdir = job, Path(workdir)
        self.job.runner  # noqa: B018 - the session starts with the actor, not with its first partition

    def __call__(self, table: Any) -> Any:
        events = pl.from_arrow(table)
        chunk = int(events.get_column(_KEY)[0])
        part = self.job.score_partition(events.drop(_KEY), f"chunk {chunk}")
        self.on_partition(chunk)
        atomic_write_parquet(self.workdir / f"part-{chunk:05d}.parquet", part.predictions)
        atomic_write_parquet(self.workdir / f"rejects-{chunk:05d}.parquet", part.rejects)
        return pl.DataFrame(
            {"chunk": [chunk], "n_scored": [part.n_scored], "n_rejected": [part.n_rejected],
             "n_events": [part.n_events], "unknown": [json.dumps(part.unknown)]}
        ).to_arrow()  # fmt: skip

    def on_partition(self, chunk: int) -> None:
        """Called after a partition is scored, before its files are written (a test hook)."""


def predict_events_ray(
    bundle: Bundle | str | Path,
    input: str | Path,
    output: str | Path,
    *,
    engine: Mapping[str, Any] | None = None,
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
    scorer: type[PartitionScorer] = PartitionScorer,
    decide: Mapping[str, Any] | None = None,
) -> PredictResult:
    """Score every customer of ``input`` on Ray and write the directory ``output``:
    ``part-<chunk>.parquet`` (predictions), ``rejects.parquet``, ``manifest.json``.

    Args are those of :func:`journeyformer.inference.local.predict_events`; ``engine``: the
    ``configs/engine/ray.yaml`` settings (address, num_workers, num_cpus, num_gpus,
    max_restarts). Starts a local Ray unless one is running or ``engine.address`` is given.
    """
    import ray

    start = time.perf_counter()
    opts = {**DEFAULTS, **{k: v for k, v in dict(engine or {}).items() if k != "name"}}
    unknown = sorted(set(opts) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"engine={unknown} are not ray engine settings; known: {sorted(DEFAULTS)}")
    # The driver resolves the job (no session yet: it may ask for a GPU the driver lacks).
    job = ScoringJob.resolve(
        bundle, input, as_of=as_of, model=ModelChoice(device, precision, threads, optimization, graph, parallel),
        batch_size=batch_size, top_k=top_k, with_embedding=with_embedding, schema_overrides=schema_overrides,
        decide=decide, chunk_customers=chunk_customers, runner=False,
        outputs=OutputPlan.dir_unit(output, MANIFEST, "ray predict job", [input]),
    )  # fmt: skip
    output, schema, when = Path(output), job.schema, job.as_of
    assert job.chunks is not None and when is not None
    plan = job.chunks.plan
    files = resolve_files(input)
    fmt = format_of(files, schema.format)
    units = read_units(files, fmt)
    if not ray.is_initialized():
        ray.init(address=opts["address"], log_to_driver=False)
    opts = size_actors(opts, ray.cluster_resources().get("CPU", 0.0))
    check_cpus(opts, ray.cluster_resources().get("CPU", 0.0))
    job.model = replace(job.model, threads=threads or max(1, int(opts["num_cpus"])))
    if "auto" in (graph, precision) and device == "cpu":
        job.pin_model()  # one model file for every partition: the probe runs once here, not once per actor
    log.info("%s: %d events, %d customers, %d partition(s) on Ray (%d actors); as_of %s",
             plan.name, plan.n_rows, plan.n_customers, plan.n_chunks, opts["num_workers"], when.isoformat())  # fmt: skip
    result = PredictResult(output, output / REJECTS, when, n_chunks=plan.n_chunks, engine="ray")
    with job.outputs.publish() as work:  # type: ignore[union-attr]
        ds = ray.data.from_items(units, override_num_blocks=len(units)).map_batches(
            read_unit, batch_size=1, fn_kwargs={"schema": schema, "fmt": fmt, "name": plan.name,
                                               "n_chunks": plan.n_chunks},
        )  # fmt: skip
        counts = ds.groupby(_KEY, num_partitions=plan.n_chunks).map_groups(
            scorer,
            batch_format="pyarrow",
            fn_constructor_kwargs={"job": job.for_workers(), "workdir": str(work)},
            concurrency=int(opts["num_workers"]),
            num_cpus=float(opts["num_cpus"]),
            num_gpus=float(opts["num_gpus"]),
            max_restarts=int(opts["max_restarts"]),
            max_task_retries=int(opts["max_restarts"]),
        )  # fmt: skip
        table = pl.DataFrame(counts.take_all(), schema=_COUNTS)
        _check_chunks(table, work, plan.name)
        for row in table.iter_rows(named=True):
            result.add(row["n_events"], row["n_scored"], json.loads(row["unknown"]))
        reject_files = sorted(work.glob("rejects-*.parquet"))
        rejected = pl.concat([pl.read_parquet(f) for f in reject_files]).sort("customer_id")
        atomic_write_parquet(work / REJECTS, rejected)
        for f in reject_files:
            f.unlink()
        result.finish(plan.name, plan.n_customers, rejected)
        counts_record = {"customers": result.n_customers, "scored": result.n_scored,
                         "rejected": result.n_rejected, "events": result.n_events,
                         "partitions": plan.n_chunks, "as_of": when.isoformat(),
                         "reject_reasons": result.reject_reasons}  # fmt: skip
        parts = {f.stem: f for f in sorted(work.glob("part-*.parquet"))}
        write_dir_manifest(work, {**parts, "rejects": work / REJECTS}, MANIFEST, {"counts": counts_record})
    result.seconds = time.perf_counter() - start
    log.info("\n%s", result.summary())
    return result


def size_actors(opts: Mapping[str, Any], cluster_cpus: float) -> dict[str, Any]:
    """``num_workers: auto``: as many actors of ``num_cpus`` CPUs as the cluster holds while
    leaving one CPU for the read and shuffle tasks (at least one actor; on a 2-core machine, one
    actor of one CPU). A number is kept as it is."""
    out = dict(opts)
    if str(out["num_workers"]) != "auto":
        return out
    per = float(out["num_cpus"])
    out["num_workers"] = max(1, int((cluster_cpus - 1) // per)) if per > 0 else 1
    log.info("engine.num_workers=auto: %d actor(s) x %g CPU on a Ray cluster of %g CPUs (one "
             "left for reading and shuffling)", out["num_workers"], per, cluster_cpus)  # fmt: skip
    return out


def check_cpus(opts: Mapping[str, Any], cluster_cpus: float) -> None:
    """Refuse an actor pool that leaves the cluster less than one CPU for the read and shuffle
    tasks (each asks for one): Ray would wait for it forever. On a cluster that was joined
    (``address`` set) it may still grow, so there it is a warning."""
    actors = int(opts["num_workers"]) * float(opts["num_cpus"])
    if cluster_cpus - actors >= 1:
        return
    msg = (f"engine.num_workers={opts['num_workers']} x engine.num_cpus={opts['num_cpus']} takes "
           f"{actors:g} of the Ray cluster's {cluster_cpus:g} CPUs, leaving less than 1 for reading and "
           f"shuffling the events, so the job would wait forever; lower engine.num_cpus (e.g. "
           f"{max(cluster_cpus - 1, 0.1) / max(int(opts['num_workers']), 1):.2g}) or engine.num_workers")  # fmt: skip
    if opts["address"] is None:
        raise ConfigError(msg)
    log.warning("%s (unless the cluster scales up)", msg)


def _check_chunks(table: pl.DataFrame, work: Path, name: str) -> None:
    """Each partition reported once, and its two files are there (a bug otherwise)."""
    chunks = table.get_column("chunk")
    if not chunks.is_unique().all():
        twice = chunks.filter(chunks.is_duplicated()).unique().to_list()[:5]
        raise RuntimeError(f"{name}: partitions {twice} were reported twice; nothing was written")
    for c in chunks.to_list():
        for kind in ("part", "rejects"):
            if not (work / f"{kind}-{c:05d}.parquet").exists():
                raise RuntimeError(f"{name}: partition {c} has no {kind} file; nothing was written")
