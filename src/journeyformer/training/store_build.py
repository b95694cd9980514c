"""Build the sample store (:mod:`journeyformer.training.sample_store`) from events larger than
memory, shard by shard (docs/scale-out.md#training-data-larger-than-memory-the-sample-store).

Customers are hashed into shards of ``shard_customers`` (the predict job's partitioning,
:class:`journeyformer.data.events.partitions.EventChunks`) and spilled; each shard is validated
(per customer, so per shard is exact); ``Preprocessing.fit`` runs on the clean shards lazily (the
function the in-memory path calls); then each shard's samples of every split's cutoffs are
written. The spec, written last, holds the sample counts per cutoff, checked as the in-memory
path checks them. The store is built in a temp directory and swapped into place
(:func:`journeyformer.io.atomic_dir`). Torch-free.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from journeyformer.data.events.schema import EventSchema
from journeyformer.data.events.validate import validate
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.labels.lifecycle import LabelWindow
from journeyformer.data.labels.samples import SPLITS, CutoffSchedule, SampleCount, positives
from journeyformer.data.preprocessing import (
    Preprocessing,
    SplitConfig,
)
from journeyformer.errors import EventDataError
from journeyformer.io import atomic_dir, temp_file
from journeyformer.publish import check_dir_output
from journeyformer.training.sample_store import (
    SPEC,
    STORE_KIND,
    STORE_VERSION,
    SampleStore,
    sequences_to_table,
    widths_of,
)

log = logging.getLogger(__name__)


_NOT_FIT = ("path", "store", "store_stats_samples", "batch_size", "num_workers", "generated_dir", "synthetic",
            "exposures")  # fmt: skip  # exposures: refused with a store (training/stream.py)


def fit_settings(data_cfg: Mapping[str, Any], labels_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The data and labels settings the samples depend on (a store is built for these)."""
    data = {f"data.{k}": v for k, v in sorted(data_cfg.items()) if k not in _NOT_FIT}
    data["data.split"] = SplitConfig.from_config(data_cfg.get("split")).to_dict()  # defaults spelled out
    return json.loads(json.dumps({**data, **{f"labels.{k}": v for k, v in sorted(labels_cfg.items())}}, default=str))


def build_sample_store(
    events_path: str | Path,
    data_cfg: Mapping[str, Any],
    labels_cfg: Mapping[str, Any],
    out: str | Path,
    shard_customers: int = 50_000,
    labelers: Mapping[str, Callable[[LabelWindow], np.ndarray]] | None = None,
    counted: str | None = None,
) -> SampleStore:
    """Build the store of ``events_path`` at ``out`` (a new directory, or one this function
    made before); see the module docstring. Returns it opened.

    ``labelers``: label name -> function, as for ``Preprocessing.split_sequences`` (the
    training job passes every registered task's, ``tasks.registry.labelers()``); ``counted``:
    the binary label the sample checks count, ``tasks.registry.counted_label()``.
    """
    from journeyformer.data.events.partitions import EventChunks

    out = Path(out)
    check_dir_output(out, "data.store", SPEC, "sample store build", [events_path])
    schema = EventSchema.from_config(data_cfg)
    source = str(events_path)
    with temp_file(out.with_name(out.name + ".spill")) as tmp, atomic_dir(out) as work:
        chunks = EventChunks(events_path, schema, shard_customers)
        n = chunks.plan.n_chunks
        chunks.spill(tmp / "raw")
        (tmp / "clean").mkdir(parents=True)
        for i in range(n):  # pass 2: validated events per shard
            raw = chunks.read(i)
            if raw.height:
                validate(raw, schema, chunks.source(i)).write_parquet(tmp / "clean" / f"{i:05d}.parquet")
        clean = pl.scan_parquet(tmp / "clean" / "*.parquet")
        pre = Preprocessing.fit(clean, data_cfg, labels_cfg, source)
        for warning in pre.labels.check_actions(
            clean.select(pl.col("action").unique()).collect().get_column("action").to_list(), source
        ):
            log.warning(warning)
        shards: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        counts: dict[str, dict[str, list]] = {s: {} for s in SPLITS}
        widths: dict[str, Any] | None = None
        for i in range(n):  # pass 3: samples per shard and split
            path = tmp / "clean" / f"{i:05d}.parquet"
            events = pl.read_parquet(path) if path.exists() else None
            for split in SPLITS:
                seqs = _shard_samples(pre, events, split, labelers, f"{source} [shard {i + 1}/{n}]", counts[split], counted)
                file = f"{split}/shard-{i:05d}.parquet"
                (work / split).mkdir(exist_ok=True)
                if seqs is not None and len(seqs):
                    widths = widths or widths_of(seqs)
                    pq.write_table(sequences_to_table(seqs), work / file)
                    shards[split].append({"file": file, "samples": len(seqs), "events": seqs.n_events,
                                          "unknown": seqs.unknown_counts})  # fmt: skip
            log.info("sample store: shard %d/%d done", i + 1, n)
        per_cut = {
            split: [SampleCount(cut, *counts[split].get(cut.isoformat(), [0, 0, None])) for cut in pre.cutoffs[split]]
            for split in SPLITS
        }  # fmt: skip
        schedule = CutoffSchedule.from_config(labels_cfg.get("cutoffs") or {}, pre.horizon_days)
        schedule.check_sample_counts(per_cut, source)
        for split in SPLITS:
            if not shards[split]:
                raise EventDataError(f"{source}: the {split} split has no samples; use more customers")
        last = clean.select(pl.col("timestamp").max()).collect(engine="streaming").item()
        spec = {"kind": STORE_KIND, "version": STORE_VERSION, "source": source,
                "preprocessing": pre.to_dict(), "widths": widths, "shards": shards,
                "last_event": last.isoformat(), "shard_customers": shard_customers,
                "counts": counts,
                "settings": fit_settings(data_cfg, labels_cfg)}  # fmt: skip
        (work / SPEC).write_text(json.dumps(spec, indent=1))
    return SampleStore.open(out)


def _shard_samples(pre: Preprocessing, events: pl.DataFrame | None, split: str, labelers: Mapping,
                   source: str, counts: dict[str, list], counted: str | None) -> Sequences | None:  # fmt: skip
    """The samples of ``split``'s customers in one shard at each of its cutoffs; adds
    [samples, customers, positives of ``counted``] per cutoff to ``counts``."""
    if events is None or events.height == 0:
        return None
    customers = pre.split.customers(events)
    parts = []
    for cut in pre.cutoffs[split]:  # the customers of each cutoff as Preprocessing.split_sequences takes them
        p = pre.sequences(events, cut, customers=pre.customers_at(customers, split, cut), labelers=labelers, source=f"{source} [{split} @ {cut:%Y-%m-%d}]")
        c = counts.setdefault(cut.isoformat(), [0, 0, None])
        k = positives(p, counted)
        c[0], c[1], c[2] = c[0] + len(p), c[1] + p.customer_id.n_unique(), None if k is None else (c[2] or 0) + k
        if len(p):
            parts.append(p)
    return Sequences.concat(parts) if parts else None
