"""Checkpoint -> bundle directory (model.onnx, preprocessing.json, metrics.json, ...).

The bundle is built in a temporary directory beside its destination and renamed into place
only after the ONNX graph passed ``onnx.checker`` and the parity check, so a reader sees either
the previous bundle or the complete new one. See :mod:`journeyformer.inference.bundle` for the
layout and the reader.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from journeyformer import __version__
from journeyformer.data.features.batch import length_batches
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.preprocessing import Preprocessing, SplitConfig
from journeyformer.errors import ConfigError
from journeyformer.export.blend import blend_bundle
from journeyformer.export.decisions import ClusterSettings, add_decision_files, split_sequences
from journeyformer.export.fuse import fuse_attention
from journeyformer.export.golden import GOLDEN, golden_examples
from journeyformer.export.onnx import (
    MIN_ONNXRUNTIME,
    OPSET,
    ExportParityError,
    ParityReport,
    check_parity,
    export_onnx,
    io_spec,
    lowest_ir_version,
    random_inputs,
)
from journeyformer.export.quantize import Int8Report, compare_int8, quantize_int8
from journeyformer.export.rules import preprocessing_rules
from journeyformer.inference.bundle import (
    EXPORT_REPORT,
    FORMAT_VERSION,
    FUSED_FILE,
    FUSED_FILES,
    METRICS,
    MODEL_FILES,
    PREPROCESSING,
    Bundle,
    file_record,
    spec_checksum,
)
from journeyformer.io import atomic_dir, atomic_write_text
from journeyformer.model.network import JourneyTransformer
from journeyformer.model.run import RunManifest, find_run, load_run_network
from journeyformer.publish import check_dir_output, clean_stale
from journeyformer.tasks import registry

log = logging.getLogger(__name__)

PADDING_NOTE = (
    "right padding: customer i's events sit at positions 0..lengths[i]-1 in time order, most "
    "recent last; padded positions hold id 0 in categorical and 0.0 in numeric; T may be any "
    "value >= max(lengths) (the model keeps at most max_len events, so T <= max_len suffices)"
)


@dataclass(frozen=True)
class ValidationData:
    """Labelled events for the int8 comparison (and extra parity batches on real sequences).

    The customers of the validation split (same hash split as training: ``split``) at the
    checkpoint's validation cutoff, at most ``max_customers`` of them.
    """

    path: str
    schema_overrides: Mapping[str, Any] = field(default_factory=dict)
    split: Mapping[str, Any] = field(default_factory=dict)  # overrides of the training split
    active_within_days: float | None = None  # None: as in training
    max_customers: int = 5000


@dataclass
class BundleResult:
    path: Path
    parity: ParityReport
    int8: Int8Report | None = None
    metrics: dict[str, Any] | None = None
    spec: dict[str, Any] = field(default_factory=dict)


def preprocessing_spec(
    pre: Preprocessing, net: JourneyTransformer, opset: int, checkpoint: Path
) -> dict[str, Any]:
    """The content of preprocessing.json: the checkpoint's preprocessing dict unchanged, the
    tasks and temperatures, the model settings and the graph's I/O."""
    return {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": str(checkpoint),
        "preprocessing": pre.to_dict(),
        "tasks": dict(net.cfg.tasks),
        # Temperature scaling of each calibrated task's logit, already applied in the graph.
        "temperatures": {
            t.name: float(net.temperature(t.name)) for t in net.tasks if t.calibrated
        },
        # Scale of each scaled output (expected value) fitted on validation data, in the graph.
        "scales": {t.name: float(getattr(net, f"{t.name}_scale")) for t in net.tasks if t.scaled_output},
        "model": net.cfg.to_dict(),
        "onnx": {
            "files": {k: v for k, v in MODEL_FILES.items() if k == "fp32"},
            "opset": opset,
            "ir_version": lowest_ir_version(opset),
            **io_spec(net),
            "padding": PADDING_NOTE,
        },
    }


def validation_sequences(bundle: Bundle, data: ValidationData) -> Sequences:
    """Labelled validation-split sequences at the checkpoint's validation cutoff."""
    pre = bundle.preprocessing
    split = SplitConfig.from_config({**pre.split.to_dict(), **dict(data.split)})
    active = pre.active_within_days if data.active_within_days is None else data.active_within_days
    pre = replace(pre, schema=bundle.schema(data.schema_overrides), split=split, active_within_days=active)
    labelers = registry.labelers(bundle.spec["tasks"])
    seqs = split_sequences(pre, data.path, "val", data.max_customers, 0, labelers=labelers)
    if len(seqs) == 0:
        raise ConfigError(
            f"{data.path}: no validation customers with events before {max(pre.cutoffs['val']):%Y-%m-%d}; "
            "is this the data the checkpoint was trained on? (set data.path, data.split)"
        )
    return seqs


def parity_batches(
    cfg: Any, batch_sizes: Sequence[int], seq_lens: Sequence[int | None], seed: int
) -> Iterator[dict[str, np.ndarray]]:
    """Random batches for every (B, T); T None means the model's max_len."""
    for k, (b, t) in enumerate(itertools.product(batch_sizes, seq_lens)):
        yield random_inputs(cfg, int(b), int(t or cfg.max_len), seed=seed + k)


def build_bundle(
    checkpoint: str | Path,
    output: str | Path | None = None,
    *,
    quantize: bool = False,
    opset: int = OPSET,
    last_position_only: bool = True,
    batch_sizes: Sequence[int] = (1, 7, 64),
    seq_lens: Sequence[int | None] = (1, 5, None),
    atol: float = 1e-4,
    seed: int = 0,
    validation: ValidationData | None = None,
    clusters: ClusterSettings | None = None,
    item_top_k: int | None = None,
) -> BundleResult:
    """Export a training run to a bundle directory (default: ``<run dir>/bundle``).

    ``checkpoint``: the run directory, its ``run.json`` or a checkpoint; the run manifest
    (:mod:`journeyformer.model.run`) names the best checkpoint, its calibration and metrics. A
    checkpoint that no manifest names is exported as it is, without calibration or metrics.

    Raises :class:`ExportParityError` (and writes nothing) when onnxruntime and torch disagree:
    max |diff| > ``atol`` on any output (relative above 1 for expected_value) or a different
    top-1 class, on random batches of every (B, T) in ``batch_sizes`` x ``seq_lens`` and on
    real validation sequences when ``validation`` is given. ``item_top_k``: items the
    next-item outputs list (the graph's TopK k; None: the model's ``item_top_k``, 20).

    With ``validation``, the bundle also gets ``clusters.json`` (k-means of training customers'
    embeddings, ``clusters``) and ``reference.json`` (profiles of the validation customers'
    inputs and scores): :mod:`journeyformer.export.decisions`.
    """
    if quantize and validation is None:
        raise ConfigError(
            "quantize=true compares int8 with fp32 on validation data: set data.path to the "
            "events the model was trained on"
        )
    run_dir, _, checkpoint = find_run(checkpoint)
    output = Path(output) if output else run_dir / "bundle"
    inputs = [checkpoint, validation.path if validation is not None else None]
    check_dir_output(output, "output", PREPROCESSING, "export", inputs)
    clean_stale([output])
    net, manifest, _, pre_dict = load_run_network(checkpoint)
    pre = Preprocessing.from_dict(pre_dict, str(checkpoint))
    if item_top_k is not None and net.item_task is not None:  # k of the graph's TopK, set here
        if item_top_k < 1:
            raise ConfigError(f"item_top_k must be >= 1, got {item_top_k}")
        net.cfg = replace(net.cfg, item_top_k=int(item_top_k))
    with atomic_dir(output) as tmp:
        fp32 = export_onnx(net, tmp / MODEL_FILES["fp32"], opset=opset, last_position_only=last_position_only)
        spec = preprocessing_spec(pre, net, opset, checkpoint)
        spec["onnx"]["last_position_only"] = last_position_only
        bundle = Bundle(tmp, spec)
        seqs = validation_sequences(bundle, validation) if validation is not None else None
        batches = list(parity_batches(net.cfg, batch_sizes, seq_lens, seed))
        if seqs is not None:
            batches += [
                dict(b.inputs) for b in length_batches(seqs.take(np.arange(min(len(seqs), 1024))), 256)
            ]
        where = (checkpoint, output, last_position_only)
        result = BundleResult(output, _checked_parity(net, fp32, batches, atol, *where), spec=spec)
        report: dict[str, Any] = {"parity": result.parity.to_dict()}
        # The same graph with fused attention kernels (onnxruntime only), held to torch alike;
        # when not every block matched, no fused file (warned, and recorded in the report).
        fusion = fuse_attention(fp32, tmp / FUSED_FILE, net.cfg.n_heads, net.cfg.n_layers)
        report["fused"] = fusion.to_dict()
        if fusion.complete:
            report["parity_fused"] = _checked_parity(net, tmp / FUSED_FILE, batches, atol, *where).to_dict()
            spec["onnx"]["files"]["fused"] = FUSED_FILE
        if quantize:
            assert seqs is not None
            result.int8 = _add_int8(tmp, spec, report, seqs, net.cfg.tasks, fusion.complete)
        if manifest is not None and manifest.blend:  # the run's per-head choice, in every graph
            report["blend"] = blend_bundle(tmp, run_dir, manifest.blend, batches[:8])
            spec["blend"] = {k: report["blend"][k] for k in ("weights", "outputs")}
        # Clusters and reference profiles of the shipped outputs (after the blend).
        settings = clusters or ClusterSettings()
        report["decisions"] = add_decision_files(tmp, spec, seqs, validation, settings)
        result.metrics = _run_metrics(run_dir, manifest)
        _write_bundle_files(bundle, spec, result.metrics, report)
    return result


def _add_int8(
    tmp: Path, spec: dict[str, Any], report: dict[str, Any], seqs: Sequences, tasks: Mapping[str, float], fused: bool
) -> Int8Report:
    """Quantize the plain (and the fused) graph, compare each with fp32 ``model.onnx`` on the
    validation ``seqs`` and record the agreement (and whether it meets the bar the predictor
    asks before it picks int8 by itself) in the spec; the full comparison goes in the report.
    Returns the plain graph's comparison."""
    fp32 = tmp / MODEL_FILES["fp32"]
    # graph -> (its fp32 file, its int8 file, key of that in spec onnx.files, key in the report)
    graphs = {"plain": (fp32, MODEL_FILES["int8"], "int8", "int8")}
    if fused:
        graphs["fused"] = (tmp / FUSED_FILE, FUSED_FILES["int8"], "fused_int8", "int8_fused")
    spec["onnx"]["int8_agreement"] = {}
    compared = {}
    for graph, (source, name, file_key, report_key) in graphs.items():
        compared[graph] = compare_int8(fp32, quantize_int8(source, tmp / name), seqs, tasks)
        agreement = compared[graph].agreement()
        log.info("%s graph: %s; meets the bar for precision=auto: %s", graph, compared[graph].table(), agreement["passes"])
        spec["onnx"]["files"][file_key] = name
        spec["onnx"]["int8_agreement"][graph] = agreement
        report[report_key] = compared[graph].to_dict()
    return compared["plain"]


def _checked_parity(
    net: JourneyTransformer,
    graph: Path,
    batches: list[dict[str, np.ndarray]],
    atol: float,
    checkpoint: Path,
    output: Path,
    last_position_only: bool,
) -> ParityReport:
    """The parity of ``graph`` with ``net`` on ``batches``; raises ExportParityError if it fails."""
    parity = check_parity(net, graph, batches, atol)
    log.info("%s", parity.table())
    if not parity.ok:
        hint = (
            " If the model code changed, try last_position_only=false to tell whether the"
            " last-position path (JourneyEncoder.forward(last_only=True)) is the cause."
            if last_position_only
            else ""
        )
        raise ExportParityError(
            f"{checkpoint}: the ONNX graph does not reproduce torch: "
            f"{'; '.join(parity.failures())}\n"
            f"{parity.table()}\nNothing was written to {output}.{hint}"
        )
    return parity


def _run_metrics(run_dir: Path, manifest: RunManifest | None) -> dict[str, Any] | None:
    """The training run's metrics, from the file its manifest names (None without one)."""
    path = manifest.path(run_dir, "metrics") if manifest is not None else None
    if path is None:
        log.warning("%s: no run manifest or no metrics in it; the bundle has no %s", run_dir, METRICS)
        return None
    return json.loads(path.read_text())


def _write_bundle_files(
    bundle: Bundle, spec: dict[str, Any], metrics: dict[str, Any] | None, report: dict[str, Any]
) -> None:
    """Metrics, export report, rules, golden examples and last the spec (``bundle.spec``) with
    every file's checksum, into the bundle's temporary directory."""
    tmp = bundle.path
    if metrics is not None:
        atomic_write_text(tmp / METRICS, json.dumps(metrics, indent=1))
    spec["metrics"] = METRICS if metrics is not None else None
    atomic_write_text(tmp / EXPORT_REPORT, json.dumps(report, indent=1))
    spec["preprocessing_rules"] = preprocessing_rules(spec["preprocessing"])
    spec["golden"] = GOLDEN
    graphs = sorted(f.name for f in tmp.glob("*.onnx"))
    spec["onnx"]["min_onnxruntime"] = {f: MIN_ONNXRUNTIME[f] for f in graphs}
    # The golden examples run through the same code as `journeyformer predict`.
    golden = golden_examples(bundle)
    atomic_write_text(tmp / GOLDEN, json.dumps(golden, indent=1))
    # Integrity, checked by load_bundle: every other file, then the spec itself.
    spec["files"] = {f.name: file_record(f) for f in sorted(tmp.iterdir()) if f.is_file()}
    spec["spec_sha256"] = spec_checksum(spec)
    atomic_write_text(tmp / PREPROCESSING, json.dumps(spec, indent=1))
