"""Evaluate a bundle on events: score the input's customers at ``as_of`` with onnxruntime, build
the true labels from the events after it, and compare with the baselines.

The protocol (who is scored, what the baselines are fitted on, the verdicts) is the train
job's, :mod:`journeyformer.evaluation.protocol` (:func:`~journeyformer.evaluation.protocol.input_protocol`):
baselines and the churn threshold are fitted on the same input one horizon earlier, cutoff
``as_of - horizon`` with labels from (as_of - horizon, as_of], so nothing from the evaluation
window is used to fit anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from journeyformer.data.as_of import data_end
from journeyformer.data.batch import length_batches, run_in_batches
from journeyformer.data.events import load_events
from journeyformer.data.samples import parse_time
from journeyformer.data.sequences import Sequences
from journeyformer.errors import EventDataError
from journeyformer.evaluation.protocol import EvaluationError, evaluate, input_protocol
from journeyformer.inference.bundle import Bundle, load_bundle
from journeyformer.inference.runner import OnnxRunner

log = logging.getLogger(__name__)


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


def _score(runner: OnnxRunner, seqs: Sequences, batch_size: int, bar: tqdm) -> dict[str, np.ndarray]:
    return run_in_batches(len(seqs), length_batches(seqs, batch_size), runner.run, bar.update, runner.workers)


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
    pre = bundle.preprocessing
    end = data_end(events)
    if as_of is None:
        log.info("%s; as_of = that minus the horizon", end.describe(str(input_path)))
    as_of_t = parse_time(as_of) if as_of is not None else end.end - pre.labels.horizon
    tasks = [t.name for t in bundle.tasks]
    protocol, warnings = input_protocol(pre, events, as_of_t, end.end, tasks, str(input_path))
    test, val = protocol.test.seqs, protocol.val.seqs
    runner = OnnxRunner(bundle, device=device)
    with tqdm(total=len(test) + len(val), desc="scoring customers", unit="cust", disable=not progress) as bar:
        outputs = _score(runner, test, batch_size, bar)
        val_outputs = _score(runner, val, batch_size, bar)
    temperatures = bundle.spec.get("temperatures") or {}
    metrics, baselines = evaluate(protocol, outputs, val_outputs, tasks, temperatures)
    metrics.update(
        as_of=as_of_t.isoformat(),
        input=str(input_path),
        bundle=str(bundle.path),
        validation_cutoff=protocol.val.label_window["cutoff"],
        warnings=warnings,
    )
    for w in warnings:
        log.warning("%s", w)
    return Evaluation(bundle, as_of_t, test, outputs, baselines.predict(test), metrics, warnings)
