"""The monitor job: a bundle + new events -> monitor.json and monitor.html (drift or not).

    journeyformer monitor bundle=<dir> input=<events> [as_of=2026-01-31 fail_on_drift=true]

The monitored population is the one the reference describes: customers active within the
bundle's ``active_within_days`` before ``as_of`` (as training and validation samples were).
Their inputs are profiled and scored with the bundle's model, chunk by chunk (memory stays
bounded: the profiles are counts), and every column of ``reference.json`` is compared
(:mod:`journeyformer.monitoring.drift`). The output directory gets ``monitor.json`` (every
column's PSI, KS, status and shares) and ``monitor.html`` (the same, with plots when matplotlib
is installed), written together. With ``fail_on_drift=true`` the command exits with status 3
when the population's status is ``drift`` (for schedulers); errors exit with 2.

Needs no torch.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from journeyformer.config import events_path, schema_overrides
from journeyformer.data.events.partitions import CHUNK_CUSTOMERS
from journeyformer.data.events.validate import validate
from journeyformer.errors import ConfigError
from journeyformer.inference.bundle import Bundle, BundleError, load_bundle
from journeyformer.inference.clusters import clusters_of
from journeyformer.inference.decisions import Decisions
from journeyformer.inference.loop import BULK_BATCH_SIZE
from journeyformer.inference.reference import measures, reference_of
from journeyformer.inference.scoring import ModelChoice, ScoringJob
from journeyformer.metrics.drift import Counts
from journeyformer.monitoring.drift import DriftReport, Thresholds, drift_report
from journeyformer.publish import OutputPlan

log = logging.getLogger(__name__)

MONITOR_JSON = "monitor.json"
MONITOR_HTML = "monitor.html"
EXIT_DRIFT = 3


@dataclass
class MonitorResult:
    report: DriftReport
    output: Path
    seconds: float


def monitor_job(bundle: Bundle | str | Path, input: str | Path, as_of: datetime | str | None, outputs: OutputPlan,
                **settings: Any) -> ScoringJob:  # fmt: skip
    """The scoring job monitor runs: the bundle's fp32 model, the cluster column only; ``settings``:
    schema_overrides, chunk_customers, batch_size. Refuses the outputs (:meth:`OutputPlan.check`)
    and a bundle without ``reference.json`` before the input is read."""
    outputs.check()
    outputs.clean()
    loaded = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    if reference_of(loaded) is None:
        raise BundleError(
            f"{loaded.path}: the bundle has no reference.json (it was exported without "
            "data.path), so there is nothing to compare with; re-export with "
            "data.path=<the training events>"
        )
    return ScoringJob.resolve(loaded, input, as_of=as_of, model=ModelChoice(precision="fp32"), runner=False,
                              decisions=Decisions(clusters=clusters_of(loaded)), **settings)  # fmt: skip


def profile_population(job: ScoringJob) -> tuple[dict[str, Counts], int, datetime]:
    """Counts of every reference column over the active customers of the job's input at its
    as_of (default: the end of the data); returns (counts, customers, as_of)."""
    reference = reference_of(job.bundle)
    assert reference is not None
    pre, chunks, when, schema = job.bundle.preprocessing, job.chunks, job.as_of, job.schema
    assert chunks is not None and when is not None
    counts = {name: Counts(p) for name, p in reference.profiles.items()}
    n = 0
    with tempfile.TemporaryDirectory(prefix="journeyformer-monitor-") as tmp:
        chunks.spill(tmp)  # one pass over the input; the chunks are read from there
        for i in range(chunks.plan.n_chunks):
            events = validate(chunks.read(i), schema, chunks.source(i))
            seqs = pre.sequences(events, when, with_labels=False, active_only=True, source=chunks.source(i))
            if len(seqs) == 0:
                continue
            frame = job.score_sequences(seqs).frame
            for name, (_, values) in measures(seqs, frame, pre).items():
                if name in counts:
                    counts[name].add(values)
            n += len(seqs)
    if n == 0:
        raise ConfigError(
            f"{chunks.plan.name}: no customer active within {pre.active_within_days} days before "
            f"{when:%Y-%m-%d}; is as_of right?"
        )
    return counts, n, when


def monitor_events(bundle: Bundle | str | Path, input: str | Path, output: str | Path | None = None, *,
                   as_of: datetime | str | None = None, thresholds: Thresholds | None = None,
                   fail_on_drift: bool = False, schema_overrides: Mapping[str, Any] | None = None,
                   chunk_customers: int = CHUNK_CUSTOMERS, batch_size: int = BULK_BATCH_SIZE) -> MonitorResult:  # fmt: skip
    """Compare ``input`` at ``as_of`` with the bundle's validation customers; write
    ``monitor.json`` and ``monitor.html`` into ``output`` (default ``<bundle>/monitor``).

    Raises ``SystemExit(3)`` after writing when ``fail_on_drift`` and the status is drift.
    """
    start = time.perf_counter()
    out = Path(output) if output else Path(bundle if not isinstance(bundle, Bundle) else bundle.path) / "monitor"
    plan = OutputPlan.dir_unit(out, MONITOR_JSON, "monitor", [input])
    job = monitor_job(bundle, input, as_of, plan, schema_overrides=schema_overrides,
                      chunk_customers=chunk_customers, batch_size=batch_size)  # fmt: skip
    bundle = job.bundle
    counts, n, when = profile_population(job)
    reference = reference_of(bundle)
    assert reference is not None
    about = {
        "bundle": str(bundle.path),
        "input": str(input),
        "as_of": when.isoformat(),
        "population": f"customers active within {bundle.preprocessing.active_within_days} days before as_of",
        "reference": reference.population,
    }
    report = drift_report(counts, thresholds or Thresholds(), n, reference.n_customers, about)
    from journeyformer.monitoring.page import render_page  # plots only when writing

    with plan.publish() as tmp:
        (tmp / MONITOR_JSON).write_text(json.dumps(report.to_dict(), indent=1))
        (tmp / MONITOR_HTML).write_text(render_page(report))
    seconds = time.perf_counter() - start
    log.info("\n%s\nmonitor: %s (%.1f s)", report.summary(), out / MONITOR_HTML, seconds)
    if fail_on_drift and report.status == "drift":
        print(report.summary())
        print(f"drift detected (fail_on_drift=true): see {out / MONITOR_HTML}")
        raise SystemExit(EXIT_DRIFT)
    return MonitorResult(report, out, seconds)


def monitor_from_config(cfg: Mapping[str, Any]) -> MonitorResult:
    """:func:`monitor_events` with the settings of ``configs/monitor.yaml`` (plain values)."""
    t = dict(cfg.get("thresholds") or {})
    return monitor_events(
        cfg["bundle"],
        events_path(cfg, "monitor"),
        cfg.get("output"),
        as_of=cfg.get("as_of"),
        thresholds=Thresholds(float(t.get("psi_warn", 0.1)), float(t.get("psi_drift", 0.25))),
        fail_on_drift=bool(cfg.get("fail_on_drift", False)),
        schema_overrides=schema_overrides(cfg),
        chunk_customers=int(cfg.get("chunk_customers", CHUNK_CUSTOMERS)),
        batch_size=int(cfg.get("batch_size", BULK_BATCH_SIZE)),
    )
