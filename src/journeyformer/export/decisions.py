"""What the bundle needs besides the model to turn scores into decisions, fitted at export.

* ``clusters.json``: k-means centroids of training customers' embeddings
  (:mod:`journeyformer.inference.clusters`);
* ``reference.json``: profiles of every input and score on the validation customers
  (:mod:`journeyformer.inference.reference`), read by drift monitoring, segment rules and
  explanations.

Both are computed through the exported ONNX graph (the numbers predict will see), only when
export is given the training events (``data.path``); both are recorded with their checksums in
``preprocessing.json`` like every bundle file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from journeyformer.data.events.load import load_events
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.inference.bundle import Bundle
from journeyformer.inference.clusters import CLUSTERS, Clusters
from journeyformer.inference.decisions import Decisions
from journeyformer.inference.loop import BULK_BATCH_SIZE, score_sequences
from journeyformer.inference.reference import REFERENCE, build_reference
from journeyformer.inference.runner import OnnxRunner
from journeyformer.io import atomic_write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterSettings:
    """k: clusters; max_customers: training customers embedded; seed: k-means randomness."""

    k: int = 8
    max_customers: int = 5000
    seed: int = 0


def split_sequences(
    pre: Preprocessing, path: str, split: str, max_customers: int, seed: int, **kwargs: Any
) -> Sequences:
    """The ``split`` ("train" or "val") customers of the events at ``path`` at that split's last
    cutoff, at most ``max_customers`` of them; ``kwargs`` go to ``pre.sequences``."""
    events = load_events(path, pre.schema)
    cutoff = max(pre.cutoffs[split])
    seqs = pre.sequences(
        events,
        cutoff,
        customers=pre.split.customers(events)[split],
        source=f"{path} [{'validation' if split == 'val' else split} @ {cutoff:%Y-%m-%d}]",
        **kwargs,
    )
    if len(seqs) > max_customers:
        keep = np.sort(np.random.default_rng(seed).choice(len(seqs), max_customers, replace=False))
        seqs = seqs.take(keep)
    return seqs


def add_decision_files(
    tmp: Path, spec: dict[str, Any], validation: Sequences | None, data: Any, settings: ClusterSettings
) -> dict[str, Any] | None:
    """clusters.json and reference.json into the bundle directory ``tmp`` when export has the
    validation customers (``data``: its ValidationData); names them (or None) in ``spec``.

    The clusters are fitted on training customers' embeddings and the validation customers
    profiled through ``tmp``'s model. Returns a summary for the export report."""
    spec["clusters"] = spec["reference"] = None
    if validation is None:
        log.warning(
            "no data.path: the bundle has no reference.json and no clusters.json (no drift "
            "monitoring, no explanations, no cluster column, no quantile segment rules); "
            "export with data.path=<the training events> to have them"
        )
        return None
    bundle = Bundle(tmp, spec)
    pre = bundle.preprocessing
    train_pre = replace(pre, schema=bundle.schema(data.schema_overrides))
    train = split_sequences(train_pre, data.path, "train", settings.max_customers, settings.seed, with_labels=False)
    as_of = max(pre.cutoffs["val"])
    population = f"{len(validation)} validation customers @ {as_of:%Y-%m-%d} ({data.path})"
    runner = OnnxRunner(bundle)
    train_out = score_sequences(train, runner, batch_size=BULK_BATCH_SIZE).outputs
    clusters = Clusters.fit(
        train_out["embedding"], settings.k, f"{len(train)} training customers", settings.seed
    )
    atomic_write_text(tmp / CLUSTERS, json.dumps(clusters.to_dict()))
    spec["clusters"] = CLUSTERS
    # The reference profiles the cluster shares, not the segments: those depend on predict's rules.
    frame = score_sequences(
        validation, runner, bundle, as_of, batch_size=BULK_BATCH_SIZE, decisions=Decisions(clusters=clusters)
    ).frame
    reference = build_reference(validation, frame, pre, population)
    atomic_write_text(tmp / REFERENCE, json.dumps(reference))
    spec["reference"] = REFERENCE
    log.info(
        "clusters: k=%d on %d training customers, sizes %s; reference: %d columns on %s",
        len(clusters.centroids), len(train), list(clusters.sizes), len(reference["columns"]), population,
    )  # fmt: skip
    return {"clusters": {"k": len(clusters.centroids), "sizes": list(clusters.sizes)}, "reference": {"population": population, "columns": len(reference["columns"])}}
