"""The jobs, as plain functions of a Hydra config: the command line and tests call them.

Each job imports its heavy libraries when it runs (torch and lightning for train and export,
onnxruntime for predict and evaluate), so importing this module costs nothing and
``predict``/``evaluate`` run on the base install.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from journeyformer.config import plain as _plain

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> Any:
    """Train, calibrate and score (``configs/train.yaml``); returns a TrainResult.

    ``refit=true``: retrain the run in ``run_dir`` on all labelled data for the epochs it
    selected (:mod:`journeyformer.jobs.refit`), into ``<run_dir>_refit``.
    """
    if cfg.get("refit"):
        from journeyformer.jobs.refit import refit

        return refit(cfg)
    from journeyformer.jobs.train import train as train_job

    return train_job(cfg)


def optimized_value(metrics: dict[str, Any], name: str) -> float:
    """The sweep objective ``name`` ("split/task/metric", e.g. ``val/churn/auroc``) read from
    :func:`train`'s metrics (the best checkpoint scored on that split).

    Only validation metrics may be optimised: choosing settings on test would leak it.
    """
    parts = str(name).split("/")
    if len(parts) != 3 or parts[0] != "val":
        raise ValueError(
            f"optimized_metric={name!r}: expected a validation metric 'val/<task>/<metric>', "
            "e.g. val/churn/auroc (a sweep never selects on test)"
        )
    split, task, metric = parts
    model = metrics.get(split, {}).get("model", {})
    if task not in model or metric not in model[task]:
        known = [f"{split}/{t}/{m}" for t, ms in model.items() for m in ms]
        raise ValueError(
            f"optimized_metric={name!r} was not computed (evaluate=false or the task is off); "
            f"available: {known}"
        )
    return float(model[task][metric])


def export(cfg: DictConfig) -> Any:
    """Checkpoint -> bundle directory (``configs/export.yaml``); returns a BundleResult.

    Fails, writing nothing, when onnxruntime does not reproduce torch within ``parity.atol``.
    """
    from journeyformer.config import refuse_unused
    from journeyformer.export.bundle import ValidationData, build_bundle
    from journeyformer.export.decisions import ClusterSettings
    from journeyformer.export.onnx import OPSET
    from journeyformer.inference.bundle import SCHEMA_OVERRIDES

    c = _plain(cfg)
    data, parity = dict(c.get("data") or {}), c.get("parity") or {}
    validation = None
    refuse_unused(data, (*SCHEMA_OVERRIDES, "path", "split", "active_within_days", "max_customers"), "data.",
                  "the checkpoint's model fixes its features: export reads the event schema settings only")  # fmt: skip
    if not data.get("path"):  # the run knows its own training events: use them when still there
        data["path"] = _run_events(c["checkpoint"])
    if not data.get("path"):
        refuse_unused(data, ("path", "max_customers"), "data.",
                      "they apply to the events of data.path, and export has none: give data.path=<the training events>")  # fmt: skip
    if data.get("path"):
        validation = ValidationData(
            path=str(data["path"]),
            schema_overrides={k: data.get(k) for k in SCHEMA_OVERRIDES if data.get(k) is not None},
            split=data.get("split") or {},
            active_within_days=data.get("active_within_days"),
            max_customers=int(data.get("max_customers", 5000)),
        )
    result = build_bundle(
        c["checkpoint"],
        c.get("output"),
        quantize=bool(c.get("quantize", False)),
        opset=int(c.get("opset", OPSET)),
        last_position_only=bool(c.get("last_position_only", True)),
        batch_sizes=tuple(parity.get("batch_sizes", (1, 7, 64))),
        seq_lens=tuple(parity.get("seq_lens", (1, 5, None))),
        atol=float(parity.get("atol", 1e-4)),
        seed=int(parity.get("seed", 0)),
        validation=validation,
        clusters=ClusterSettings(**(c.get("clusters") or {})),
        item_top_k=c.get("item_top_k"),
    )
    print(f"bundle: {result.path}")  # the parity (and int8) tables are logged by build_bundle
    return result


def _run_events(checkpoint: str) -> str | None:
    """The events file the run of ``checkpoint`` trained on (its manifest's ``data.path``),
    when that file is still there; said in the log either way."""
    from journeyformer.model.run import find_run

    _, manifest, _ = find_run(checkpoint)
    path = ((manifest.config if manifest is not None else {}).get("data") or {}).get("path")
    if path and Path(str(path)).is_file():
        log.info(
            "export: no data.path given; using the run's training events %s for the reference "
            "profiles, clusters and real-data parity batches",
            path,
        )
        return str(path)
    if path:
        log.warning("export: the run trained on %s, which is no longer there; no reference", path)
    return None


def predict(cfg: DictConfig) -> Any:
    """Events -> predictions.parquet with onnxruntime (``configs/predict.yaml``); no torch used.

    Returns a PredictResult.
    """
    from journeyformer.inference.job import predict_from_config

    return predict_from_config(_plain(cfg))  # logs its summary


def evaluate(cfg: DictConfig) -> Any:
    """Bundle + labelled events -> report directory (``configs/evaluate.yaml``); returns the
    Evaluation and the report directory."""
    from journeyformer.evaluation.report import evaluate_from_config

    return evaluate_from_config(_plain(cfg))
