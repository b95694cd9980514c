"""Evaluate a bundle on events: score everyone active at or before ``as_of`` with onnxruntime,
build the true labels from the events after it, and compare with the baselines.

Validation data for the baselines (LightGBM among them, early-stopped on a fifth of those
customers) and the churn threshold comes from the same input, one horizon earlier: cutoff ``as_of - horizon`` with labels from (as_of - horizon, as_of]. Both
lie before ``as_of``, so nothing from the evaluation window is used to fit anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from journeyformer.data.as_of import data_end
from journeyformer.data.batch import length_batches, run_in_batches
from journeyformer.data.events import load_events
from journeyformer.data.samples import parse_time, split_of
from journeyformer.data.sequences import Sequences
from journeyformer.errors import EventDataError, JourneyformerError
from journeyformer.evaluation.compare import compare
from journeyformer.inference.bundle import Bundle, load_bundle
from journeyformer.inference.runner import OnnxRunner
from journeyformer.metrics.calibration import apply_temperature
from journeyformer.metrics.scores import expected_calibration_error, per_class_recall
from journeyformer.tasks import registry
from journeyformer.tasks.registry import Baselines

log = logging.getLogger(__name__)


class EvaluationError(JourneyformerError):
    """The input cannot give meaningful labels or does not fit the bundle."""


@dataclass
class Evaluation:
    """Everything the report needs: labels, predictions and metrics for the test customers."""

    bundle: Bundle
    as_of: datetime
    test: Sequences
    outputs: dict[str, np.ndarray]
    baselines: dict[str, dict[str, np.ndarray]]
    metrics: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def threshold_metrics(p: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    pred = p >= threshold
    tp = float(np.sum(pred & (y == 1)))
    precision = tp / max(pred.sum(), 1)
    recall = tp / max((y == 1).sum(), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1}


def best_f1_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The probability threshold with the highest F1 (searched over the observed values)."""
    candidates = np.unique(np.quantile(p, np.linspace(0, 1, 201)))
    return float(max(candidates, key=lambda t: threshold_metrics(p, y, t)["f1"]))


def _score(runner: OnnxRunner, seqs: Sequences, batch_size: int, bar: tqdm) -> dict[str, np.ndarray]:
    return run_in_batches(len(seqs), length_batches(seqs, batch_size), runner.run, bar.update)


def evaluate_bundle(
    bundle_path: str | Path,
    input_path: str | Path,
    as_of: str | datetime | None = None,
    data_overrides: Mapping[str, Any] | None = None,
    device: str = "cpu",
    batch_size: int = 256,
    progress: bool = True,
) -> Evaluation:
    """Score, label and compare; see the module docstring. Raises :class:`EvaluationError`."""
    bundle = load_bundle(bundle_path)
    schema = bundle.schema(data_overrides)
    try:
        events = load_events(input_path, schema)
    except EventDataError as err:
        raise EvaluationError(
            f"{err}\n(the bundle {bundle.path} was trained with columns {schema.to_dict()['columns']} "
            f"and extras {list(schema.extra_categorical) + list(schema.extra_numeric)}; "
            "map yours with data.columns.<name>=<your column>)"
        ) from None
    labels = bundle.preprocessing.labels
    first, end = events["timestamp"].min(), data_end(events)
    last = end.end
    if as_of is None:
        log.info("%s; as_of = that minus the horizon", end.describe(str(input_path)))
    as_of_t = parse_time(as_of) if as_of is not None else last - labels.horizon
    after = events.filter(pl.col("timestamp") > as_of_t).height
    if after == 0:
        raise EvaluationError(
            f"{input_path}: no events after as_of={as_of_t:%Y-%m-%d %H:%M} (the input ends at "
            f"{last:%Y-%m-%d %H:%M}), so there are no true labels to evaluate against. Pass an "
            f"earlier as_of, at most {labels.horizon_days:g} days (the horizon) before the end."
        )
    warnings = []
    if as_of_t + labels.horizon > last:
        warnings.append(
            f"the horizon ({labels.horizon_days:g} days) after as_of runs past the last event "
            f"({last:%Y-%m-%d}): customers look inactive there, so churn is over-stated"
        )
    val_cut = as_of_t - labels.horizon
    if val_cut <= first:
        raise EvaluationError(
            f"{input_path}: as_of={as_of_t:%Y-%m-%d} leaves no history one horizon earlier "
            f"(events start {first:%Y-%m-%d}) to fit the baselines and the churn threshold on"
        )
    tasks = [t.name for t in bundle.tasks]
    pre = bundle.preprocessing
    build = dict(active_only=False, labelers=registry.labelers(tasks))
    test = pre.sequences(events, as_of_t, **build, source=f"{input_path} @ as_of")
    val = pre.sequences(events, val_cut, **build, source=f"{input_path} @ as_of - horizon")
    runner = OnnxRunner(bundle, device=device)
    with tqdm(total=len(test) + len(val), desc="scoring customers", unit="cust", disable=not progress) as bar:
        outputs = _score(runner, test, batch_size, bar)
        val_outputs = _score(runner, val, batch_size, bar)
    n_actions = len(pre.actions)
    fit, stop = _boosting_split(val)
    baselines = Baselines.fit(fit, labels.horizon_days, n_actions, tasks, val=stop)
    window = {
        "status": "truncated" if as_of_t + labels.horizon > last else "complete",
        "cutoff": as_of_t.isoformat(),
        "ends": (as_of_t + labels.horizon).isoformat(),
        "last_event": last.isoformat(),
    }
    metrics = compare(outputs, test, baselines, tasks, label_window=window)
    metrics.update(
        as_of=as_of_t.isoformat(),
        input=str(input_path),
        bundle=str(bundle.path),
        horizon_days=labels.horizon_days,
        validation_cutoff=val_cut.isoformat(),
        warnings=warnings,
        headline={t.name: t.headline for t in bundle.tasks},
    )
    assert test.labels is not None and val.labels is not None
    if "churn" in tasks:
        metrics["churn_thresholds"] = _churn_thresholds(
            outputs["churn_probability"], test.labels["churn"], val_outputs["churn_probability"], val.labels["churn"],
            baselines.predict(test)["churn"]["rfm_logistic_regression"],
            baselines.predict(val)["churn"]["rfm_logistic_regression"],
        )  # fmt: skip
        metrics["calibration"] = _calibration(bundle, outputs["churn_probability"], test.labels["churn"])
    if "stage" in tasks:
        stages = list(bundle.stages)
        y = test.labels["stage"]
        metrics["stage_recall"] = {
            "model": dict(zip(stages, per_class_recall(outputs["stage_probs"].argmax(1), y, len(stages)), strict=True)),
            "current_stage": dict(zip(stages, per_class_recall(test.stage_now, y, len(stages)), strict=True)),
        }
    base = baselines.predict(test)
    for w in warnings:
        log.warning("%s", w)
    return Evaluation(bundle, as_of_t, test, outputs, base, metrics, warnings)


def _boosting_split(val: Sequences) -> tuple[Sequences, Sequences | None]:
    """The validation samples (cutoff as_of - horizon) the baselines are fitted on, and a fifth
    of those customers held out for the boosting baseline's early stopping (None when too few
    samples: the boosting baseline is then left out)."""
    held_out = split_of(val.customer_id, 0.2, 0.0, "journeyformer-boosting") == "val"
    if held_out.sum() < 10 or (~held_out).sum() < 10:
        return val, None
    return val.take(np.flatnonzero(~held_out)), val.take(np.flatnonzero(held_out))


def _churn_thresholds(
    p: np.ndarray, y: np.ndarray, p_val: np.ndarray, y_val: np.ndarray, lr: np.ndarray, lr_val: np.ndarray
) -> dict[str, dict[str, dict[str, float]]]:
    """Precision/recall/F1 at 0.5 and at the F1-best threshold chosen on validation data."""
    out = {}
    for name, (test_p, val_p) in {"model": (p, p_val), "rfm_logistic_regression": (lr, lr_val)}.items():
        t = best_f1_threshold(val_p, y_val)
        out[name] = {"at_0.5": threshold_metrics(test_p, y, 0.5), "at_val_best_f1": threshold_metrics(test_p, y, t)}
    return out


def _calibration(bundle: Bundle, p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """ECE of the calibrated churn probability and of the same model before temperature scaling."""
    t = float((bundle.spec.get("temperatures") or {}).get("churn", 1.0))
    before = apply_temperature(p, 1.0 / t)  # undo p = sigmoid(logit / T)
    return {
        "temperature": t,
        "ece_before": expected_calibration_error(before, y),
        "ece_after": expected_calibration_error(p, y),
        "brier_before": float(np.mean((before - y) ** 2)),
        "brier_after": float(np.mean((p - y) ** 2)),
    }
