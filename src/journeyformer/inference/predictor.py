"""Score Sequences with the bundle's ONNX model in onnxruntime, and format the predictions.

No torch here: the nightly scoring job runs with onnxruntime, Polars and NumPy only.

Example::

    bundle = load_bundle("checkpoints/small_h30_s42/bundle")
    predictor = Predictor(bundle)
    seqs = build_sequences(events, as_of, bundle.vocabs, bundle.features, bundle.labels,
                           with_labels=False)
    frame = predictor.to_frame(seqs, predictor.predict(seqs), as_of)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from journeyformer.data.sequences import Sequences, pad
from journeyformer.inference.bundle import Bundle
from journeyformer.inference.session import make_session
from journeyformer.errors import ConfigError
from journeyformer.tasks.base import lists


@dataclass
class Batch:
    """Padded model inputs for some samples of one Sequences.

    Attributes:
        index: (B,) positions of the rows in the Sequences.
        inputs: input name -> array, as :func:`journeyformer.data.sequences.pad` returns them.
    """

    index: np.ndarray
    inputs: dict[str, np.ndarray]


def length_batches(seqs: Sequences, batch_size: int) -> list[Batch]:
    """Samples sorted by length and cut into batches, each padded to its own longest sequence.

    Sorting first means a batch holds sequences of (nearly) the same length, so almost no
    compute goes to padding; the model is exact under any padding, so order does not matter.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(seqs.lengths, kind="stable")
    return [
        Batch(idx, pad(seqs, idx))
        for idx in (order[i : i + batch_size] for i in range(0, len(order), batch_size))
    ]


def run_in_batches(
    n: int,
    batches: list[Batch],
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Call ``run`` (inputs -> outputs by name) on each batch and put every output row back at
    its position in the Sequences: name -> (n, ...) array. Used by onnxruntime and torch alike."""
    out: dict[str, np.ndarray] = {}
    for batch in batches:
        for name, value in run(batch.inputs).items():
            if name not in out:
                out[name] = np.empty((n, *value.shape[1:]), dtype=value.dtype)
            out[name][batch.index] = value
        if on_batch is not None:
            on_batch(len(batch.index))
    return out


class Predictor:
    """One onnxruntime session over a bundle's model.

    Args:
        bundle: a loaded bundle (:func:`journeyformer.inference.bundle.load_bundle`).
        device: "cpu" or "cuda" (onnxruntime-gpu's CUDA execution provider).
        precision: "fp32" (model.onnx) or "int8" (model.int8.onnx).
        threads: onnxruntime intra-op threads; None = every core available.
        batch_size: customers per onnxruntime call.
        spinning, optimization: see :mod:`journeyformer.inference.session`.
    """

    def __init__(
        self,
        bundle: Bundle,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        batch_size: int = 64,
        spinning: bool = False,
        optimization: str = "basic",
    ) -> None:
        self.bundle = bundle
        self.batch_size = int(batch_size)
        self.session = make_session(
            bundle.model_path(precision), device, threads, spinning, optimization
        )
        self.input_names = bundle.input_names
        self.output_names = bundle.output_names
        got = tuple(i.name for i in self.session.get_inputs())
        if got != self.input_names:
            raise ConfigError(
                f"{bundle.path}: model inputs {got} differ from preprocessing.json "
                f"{self.input_names}; re-export the bundle"
            )

    def batches(self, seqs: Sequences) -> list[Batch]:
        return length_batches(seqs, self.batch_size)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One batch: input name -> array, to output name -> (B, ...) array."""
        outs = self.session.run(self.output_names, {n: inputs[n] for n in self.input_names})
        return dict(zip(self.output_names, outs, strict=True))

    def run_batches(
        self, n: int, batches: list[Batch], on_batch: Callable[[int], None] | None = None
    ) -> dict[str, np.ndarray]:
        """Output name -> (n, ...) array with rows back in Sequences order."""
        return run_in_batches(n, batches, self.run, on_batch)

    def predict(
        self, seqs: Sequences, on_batch: Callable[[int], None] | None = None
    ) -> dict[str, np.ndarray]:
        """Output name -> (N, ...) array in the order of ``seqs`` (``bundle.output_names``)."""
        return self.run_batches(len(seqs), self.batches(seqs), on_batch)

    def to_frame(
        self,
        seqs: Sequences,
        outputs: dict[str, np.ndarray],
        as_of: datetime,
        top_k: int = 3,
        with_embedding: bool = False,
    ) -> pl.DataFrame:
        """One row per customer; see :func:`prediction_frame`."""
        return prediction_frame(seqs, outputs, self.bundle, as_of, top_k, with_embedding)


def prediction_schema(
    bundle: Bundle, customer_id: pl.DataType, with_embedding: bool = False
) -> pl.Schema:
    """Column -> dtype of the predictions table (see :func:`prediction_frame`)."""
    ctx = bundle.context()
    return pl.Schema(
        {
            "customer_id": customer_id,
            "as_of": pl.Datetime("us", "UTC"),
            "n_events": pl.Int64,
            **{c: t for task in bundle.tasks for c, t in task.columns(ctx).items()},
            **({"embedding": pl.List(pl.Float32)} if with_embedding else {}),
        }
    )


def prediction_frame(
    seqs: Sequences,
    outputs: dict[str, np.ndarray],
    bundle: Bundle,
    as_of: datetime,
    top_k: int = 3,
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
    ctx = bundle.context(top_k)
    columns = {
        "customer_id": seqs.customer_id,
        "as_of": pl.repeat(as_of, len(seqs), dtype=pl.Datetime("us", "UTC"), eager=True),
        "n_events": seqs.summary.get_column("n_events"),
    }
    for task in bundle.tasks:
        columns |= task.column_values(outputs, ctx)
    if with_embedding:
        columns["embedding"] = lists(outputs["embedding"], pl.Float32)
    schema = prediction_schema(bundle, seqs.customer_id.dtype, with_embedding)
    return pl.DataFrame([pl.Series(name, values).cast(schema[name]) for name, values in columns.items()])
