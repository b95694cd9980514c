"""The one scoring loop: sequences -> length batches -> runner -> outputs -> predictions frame.

Every scorer calls :func:`score_sequences`: the drivers and the Python API through
:class:`journeyformer.inference.scoring.ScoringJob`, evaluate, monitor and export directly; the
torch runners of :mod:`journeyformer.model.runner` share its model step,
:func:`journeyformer.data.features.batch.run_model`. A runner turns one padded batch (input
name -> array, :data:`journeyformer.data.features.batch.MODEL_INPUTS`) into named outputs:
:class:`journeyformer.inference.runner.OnnxRunner` (fp32 or int8, no torch) or
:class:`journeyformer.model.runner.TorchRunner` (a checkpoint, eager torch). Needs no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np
import polars as pl

from journeyformer.data.events.timestamps import UTC_US, epoch_micros
from journeyformer.data.features.batch import Batch, run_model
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.tasks.base import TOP_K, Task, TaskContext, lists

if TYPE_CHECKING:
    from journeyformer.inference.decisions import Decisions

# The defaults of the scoring settings, each in one place: these two here, CHUNK_CUSTOMERS with
# the chunks (data/events/partitions.py), TOP_K with the task context (tasks/base.py). The job
# configs (configs/predict.yaml, ...) show the same values to the command line.
BATCH_SIZE = 64  # customers per model call when predicting: small batches stay in cache
# customers per call where whole populations are scored (evaluate, monitor, export)
BULK_BATCH_SIZE = 256


class Runner(Protocol):
    """Runs the model on one padded batch: input name -> (B, ...) array to output name ->
    (B, ...) array, for the outputs in ``output_names``."""

    output_names: tuple[str, ...]
    workers: int  # batches to run at once (run_in_batches)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class ScoringSpec(Protocol):
    """What scoring needs besides the runner (a loaded bundle fits)."""

    @property
    def preprocessing(self) -> Preprocessing: ...

    @property
    def tasks(self) -> list[Task]: ...

    def context(self, top_k: int = TOP_K) -> TaskContext: ...


@dataclass
class Scored:
    """What :func:`score_sequences` gives: the model's outputs (name -> (N, ...) in ``seqs``
    order), the batches they came from, and the predictions frame (None when not asked)."""

    outputs: dict[str, np.ndarray]
    batches: list[Batch]
    frame: pl.DataFrame | None = None


def score_sequences(
    seqs: Sequences,
    runner: Runner,
    spec: ScoringSpec | None = None,
    as_of: datetime | None = None,
    *,
    batch_size: int = BATCH_SIZE,
    top_k: int = TOP_K,
    with_embedding: bool = False,
    decisions: Decisions | None = None,
    batches: list[Batch] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Scored:
    """The scoring loop: ``seqs`` -> length batches (or ``batches`` already cut) -> ``runner``
    -> outputs; with ``spec`` and ``as_of`` also the predictions frame
    (:func:`prediction_frame`) and the columns ``decisions``
    adds (segment, cluster, drivers)."""
    outputs, batches = run_model(seqs, runner, batch_size, on_batch, batches)
    if spec is None or as_of is None:
        return Scored(outputs, batches)
    frame = prediction_frame(seqs, outputs, spec, as_of, top_k, with_embedding)
    if decisions is not None:
        frame = decisions.annotate(
            frame, seqs, outputs, batches, runner.run, getattr(runner, "workers", 1)
        )
    return Scored(outputs, batches, frame)


def prediction_schema(
    spec: ScoringSpec,
    customer_id: pl.DataType,
    with_embedding: bool = False,
    decisions: Decisions | None = None,
) -> pl.Schema:
    """Column -> dtype of the predictions table (see :func:`prediction_frame`), then the
    columns ``decisions`` adds (segment, cluster, drivers)."""
    ctx = spec.context()
    return pl.Schema(
        {
            "customer_id": customer_id,
            "as_of": pl.Datetime("us", "UTC"),
            "n_events": pl.Int64,
            **{c: t for task in spec.tasks for c, t in task.columns(ctx).items()},
            **({"embedding": pl.List(pl.Float32)} if with_embedding else {}),
            **(decisions.schema() if decisions is not None else {}),
        }
    )


def prediction_frame(
    seqs: Sequences,
    outputs: Mapping[str, np.ndarray],
    spec: ScoringSpec,
    as_of: datetime,
    top_k: int = TOP_K,
    with_embedding: bool = False,
) -> pl.DataFrame:
    """The predictions table, one row per customer of ``seqs``, in ``seqs`` order.

    Columns: customer_id, as_of (UTC), n_events (events at or before as_of), then each enabled
    task's columns (:meth:`journeyformer.tasks.base.Task.columns`), e.g. churn_probability (no
    activity within the horizon), next_action, next_action_probability, top_actions (``top_k``
    action names, best first), top_action_probabilities, stage (most likely lifecycle stage at
    as_of + horizon) and stage_probability_<stage>, spend_probability (any spend within the
    horizon), expected_value (expected spend within the horizon, currency units); and with
    ``with_embedding``, embedding (D floats).
    """
    ctx = spec.context(top_k)
    columns = {
        "customer_id": seqs.customer_id,
        # From epoch microseconds: a time-zone-aware literal costs milliseconds to build.
        "as_of": pl.Series(np.full(len(seqs), epoch_micros(as_of), dtype=np.int64)).cast(UTC_US),
        "n_events": seqs.summary.get_column("n_events"),
    }
    for task in spec.tasks:
        columns |= task.column_values(outputs, ctx)
    if with_embedding:
        columns["embedding"] = lists(outputs["embedding"], pl.Float32)
    schema = prediction_schema(spec, seqs.customer_id.dtype, with_embedding)
    return pl.DataFrame(
        [pl.Series(name, values).cast(schema[name]) for name, values in columns.items()]
    )
