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
import polars as pl
from tqdm.auto import tqdm

from journeyformer.data.events.as_of import DataEnd, data_end
from journeyformer.data.events.load import load_events
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.labels.samples import parse_time
from journeyformer.errors import EventDataError
from journeyformer.evaluation.protocol import EvaluationError, evaluate, input_protocol
from journeyformer.inference.bundle import Bundle
from journeyformer.inference.decisions import Decisions
from journeyformer.inference.loop import BULK_BATCH_SIZE, score_sequences
from journeyformer.inference.scoring import ModelChoice, ScoringJob

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


@dataclass
class EvaluationInput:
    """The bundle, its scoring job and the input's events, loaded once for every as_of of an
    evaluation or backtest (:func:`load_input`)."""

    job: ScoringJob
    events: pl.DataFrame
    end: DataEnd
    name: str

    @property
    def bundle(self) -> Bundle:
        return self.job.bundle


def load_input(bundle: Bundle | str | Path, input_path: str | Path, data_overrides: Mapping[str, Any] | None = None,
               device: str = "cpu", batch_size: int = BULK_BATCH_SIZE) -> EvaluationInput:  # fmt: skip
    """Load the bundle and read the events once; the model starts on first use."""
    job = ScoringJob.resolve(
        bundle, model=ModelChoice(device, precision="fp32"), batch_size=batch_size,
        schema_overrides=data_overrides, runner=False, decisions=Decisions(),
    )  # fmt: skip
    try:
        events = load_events(input_path, job.schema)
    except EventDataError as err:
        raise EvaluationError(
            f"{err}\n(the bundle {job.bundle.path} was trained with columns {job.schema.to_dict()['columns']} "
            f"and extras {list(job.schema.extra_categorical) + list(job.schema.extra_numeric)}; "
            "map yours with data.columns.<name>=<your column>)"
        ) from None
    return EvaluationInput(job, events, data_end(events), str(input_path))


def evaluate_bundle(bundle_path: str | Path | Bundle | None, input_path: str | Path | EvaluationInput,
                    as_of: str | datetime | None = None, data_overrides: Mapping[str, Any] | None = None,
                    device: str = "cpu", batch_size: int = BULK_BATCH_SIZE, progress: bool = True) -> Evaluation:  # fmt: skip
    """Score, label and compare; see the module docstring. Raises :class:`EvaluationError`.

    ``input_path`` may be an :class:`EvaluationInput` already loaded (a backtest evaluates
    every date on it; ``bundle_path`` and the settings are then its own)."""
    if isinstance(input_path, EvaluationInput):
        source = input_path
    else:
        assert bundle_path is not None
        source = load_input(bundle_path, input_path, data_overrides, device, batch_size)
    bundle, events, end, job = source.bundle, source.events, source.end, source.job
    pre = bundle.preprocessing
    if as_of is None:
        log.info("%s; as_of = that minus the horizon", end.describe(source.name))
    as_of_t = parse_time(as_of) if as_of is not None else end.end - pre.labels.horizon
    tasks = [t.name for t in bundle.tasks]
    protocol, warnings = input_protocol(pre, events, as_of_t, end.end, tasks, source.name)
    test, val = protocol.test.seqs, protocol.val.seqs
    with tqdm(total=len(test) + len(val), desc="scoring customers", unit="cust", disable=not progress) as bar:
        outputs = score_sequences(test, job.runner, batch_size=job.batch_size, on_batch=bar.update).outputs
        val_outputs = score_sequences(val, job.runner, batch_size=job.batch_size, on_batch=bar.update).outputs
    temperatures = bundle.spec.get("temperatures") or {}
    metrics, baselines = evaluate(protocol, outputs, val_outputs, tasks, temperatures)
    metrics.update(
        as_of=as_of_t.isoformat(),
        input=source.name,
        bundle=str(bundle.path),
        validation_cutoff=protocol.val.label_window["cutoff"],
        warnings=warnings,
    )
    for w in warnings:
        log.warning("%s", w)
    return Evaluation(bundle, as_of_t, test, outputs, baselines.predict(test), metrics, warnings)
