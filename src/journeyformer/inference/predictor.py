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
from journeyformer.data.vocab import PAD_ID, UNK_ID
from journeyformer.inference.bundle import Bundle
from journeyformer.inference.session import make_session


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
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
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
            raise ValueError(
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
        """Output name -> (N, ...) array in the order of ``seqs`` (see the OUTPUTS contract)."""
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


def top_actions(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, A) next-action probabilities -> ids (N, k) and probabilities (N, k), best first.

    ``<pad>`` and ``<unk>`` are never proposed (their probability is left as it is, not spread
    over the others, so the columns stay the model's own probabilities).
    """
    scores = probs.copy()
    scores[:, [PAD_ID, UNK_ID]] = -1.0
    k = max(1, min(k, scores.shape[1] - 2))
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1)
    return ids, np.take_along_axis(probs, ids, axis=1)


def _lists(values: np.ndarray, dtype: pl.DataType) -> pl.Series:
    """(N, k) array -> a List column of length-k lists (plain lists read anywhere)."""
    n, k = values.shape
    flat = pl.Series(values.reshape(-1), dtype=dtype)
    return flat.reshape((n, k)).cast(pl.List(dtype))


def prediction_schema(
    bundle: Bundle, customer_id: pl.DataType, with_embedding: bool = False
) -> pl.Schema:
    """Column -> dtype of the predictions table (see :func:`prediction_frame`)."""
    f32 = pl.Float32
    return pl.Schema(
        {
            "customer_id": customer_id,
            "as_of": pl.Datetime("us", "UTC"),
            "n_events": pl.Int64,
            "churn_probability": f32,
            "next_action": pl.String,
            "next_action_probability": f32,
            "top_actions": pl.List(pl.String),
            "top_action_probabilities": pl.List(f32),
            "stage": pl.String,
            **{f"stage_probability_{s}": f32 for s in bundle.stages},
            "spend_probability": f32,
            "expected_value": f32,
            **({"embedding": pl.List(f32)} if with_embedding else {}),
        }
    )


# Prediction columns per task (stage also owns every stage_probability_<stage>).
TASK_COLUMNS = {
    "next_action": ("next_action", "next_action_probability", "top_actions", "top_action_probabilities"),
    "churn": ("churn_probability",),
    "stage": ("stage",),
    "value": ("spend_probability", "expected_value"),
}


def prediction_frame(
    seqs: Sequences,
    outputs: dict[str, np.ndarray],
    bundle: Bundle,
    as_of: datetime,
    top_k: int = 3,
    with_embedding: bool = False,
) -> pl.DataFrame:
    """The predictions table, one row per customer of ``seqs``, in ``seqs`` order.

    Columns: customer_id, as_of (UTC), n_events (events at or before as_of), churn_probability
    (no activity within the horizon), next_action and next_action_probability, top_actions
    (``top_k`` action names, best first) and top_action_probabilities, stage (most likely
    lifecycle stage at as_of + horizon) and stage_probability_<stage> for every stage,
    spend_probability (any spend within the horizon), expected_value (expected spend within the
    horizon, currency units) and, with ``with_embedding``, embedding (D floats).
    """
    actions = np.asarray(bundle.actions, dtype=object)
    stages = np.asarray(bundle.stages, dtype=object)
    ids, probs = top_actions(outputs["next_action_probs"], top_k)
    stage_probs = outputs["stage_probs"]
    columns = {
        "customer_id": seqs.customer_id,
        "as_of": pl.repeat(as_of, len(seqs), dtype=pl.Datetime("us", "UTC"), eager=True),
        "n_events": seqs.summary.get_column("n_events"),
        "churn_probability": outputs["churn_probability"],
        "next_action": actions[ids[:, 0]],
        "next_action_probability": probs[:, 0],
        "top_actions": _lists(actions[ids].astype(str), pl.String),
        "top_action_probabilities": _lists(probs, pl.Float32),
        "stage": stages[stage_probs.argmax(axis=1)],
        **{f"stage_probability_{s}": stage_probs[:, i] for i, s in enumerate(stages)},
        "spend_probability": outputs["spend_probability"],
        "expected_value": outputs["expected_value"],
    }
    if with_embedding:
        columns["embedding"] = _lists(outputs["embedding"], pl.Float32)
    schema = prediction_schema(bundle, seqs.customer_id.dtype, with_embedding)
    # Heads switched off in training give zeros in the graph; publish nulls, not a fake answer.
    enabled = set(bundle.spec.get("tasks", TASK_COLUMNS))
    off = {c for task, cols in TASK_COLUMNS.items() if task not in enabled for c in cols}
    off |= {c for c in columns if c.startswith("stage_probability_") and "stage" not in enabled}
    return pl.DataFrame(
        [
            pl.Series(name, [None] * len(seqs), dtype=schema[name])
            if name in off
            else pl.Series(name, values).cast(schema[name])
            for name, values in columns.items()
        ]
    )
