"""The one batch type: padded model inputs for some samples of a Sequences, NumPy first.

The onnxruntime predictor feeds ``Batch.inputs`` as they are; training converts the same
object to torch tensors (:func:`journeyformer.training.batch.to_torch`). Right padding: sample
i's events sit at positions 0..lengths[i]-1, most recent last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from journeyformer.data.features.sequences import Sequences, ragged_rows
from journeyformer.errors import ConfigError

# The model's inputs, in the order of its forward() and of the ONNX graph.
MODEL_INPUTS = ("categorical", "numeric", "lengths", "stage_now", "context")
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Batch:
    """B samples of one Sequences, T = longest sequence in the batch (or ``max_len``).

    Attributes:
        index: (B,) int64 position of each row in the source Sequences.
        inputs: MODEL_INPUTS name -> array: categorical (B, T, C) int64 vocabulary ids (0 =
            padding, column 0 the action), numeric (B, T, F) float32 (0 at padding), lengths
            (B,) int64 (>= 1), stage_now (B,) int64, context (B, S) float32.
        targets: task -> (B,) label array, or None at predict time.

    Arrays are NumPy; :func:`journeyformer.training.batch.to_torch` gives the same Batch with
    torch tensors.
    """

    index: Any
    inputs: Mapping[str, Any]
    targets: Mapping[str, Any] | None = None

    def __len__(self) -> int:
        return int(self.inputs["lengths"].shape[0])


def pad(seqs: Sequences, index: np.ndarray, max_len: int | None = None) -> dict[str, np.ndarray]:
    """Right-padded arrays for the samples at ``index`` (the one batch contract, in NumPy):
    :class:`Batch`'s ``inputs``. With ``max_len`` shorter than a sequence, its most recent
    ``max_len`` events are kept."""
    index = np.asarray(index, dtype=np.int64)
    lengths = seqs.lengths[index]
    if max_len is not None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        lengths = np.minimum(lengths, max_len)
    t = int(lengths.max(initial=0)) if max_len is None else max_len
    b = len(index)
    rows = ragged_rows(seqs.offsets[1:][index] - lengths, lengths)
    batch_pos = np.repeat(np.arange(b), lengths)
    time_pos = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    categorical = np.zeros((b, t, seqs.categorical.shape[1]), dtype=np.int64)
    numeric = np.zeros((b, t, seqs.numeric.shape[1]), dtype=np.float32)
    categorical[batch_pos, time_pos] = seqs.categorical[rows]
    numeric[batch_pos, time_pos] = seqs.numeric[rows]
    return {
        "categorical": categorical,
        "numeric": numeric,
        "lengths": lengths.astype(np.int64),
        "stage_now": seqs.stage_now[index],
        "context": seqs.context[index],
    }


def make_batch(
    seqs: Sequences, index: np.ndarray, max_len: int | None = None, with_targets: bool = True
) -> Batch:
    """Pad the samples at ``index`` (targets included when ``seqs`` is labelled)."""
    index = np.asarray(index, dtype=np.int64)
    targets = None
    if with_targets and seqs.labels is not None:
        targets = {k: np.ascontiguousarray(v[index]) for k, v in seqs.labels.items()}
    return Batch(index, pad(seqs, index, max_len), targets)


def length_batches(seqs: Sequences, batch_size: int, with_targets: bool = False) -> list[Batch]:
    """Samples sorted by length and cut into batches, each padded to its own longest sequence.

    Sorting first means a batch holds sequences of (nearly) the same length, so almost no
    compute goes to padding; the model is exact under any padding, so order does not matter.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(seqs.lengths, kind="stable")
    return [
        make_batch(seqs, order[i : i + batch_size], with_targets=with_targets)
        for i in range(0, len(order), batch_size)
    ]


def map_batches(fn: Callable[[T], R], items: Sequence[T], workers: int = 1) -> Iterator[R]:
    """``fn`` of each item, in order; with ``workers`` > 1 up to that many run at once in
    threads (for runners that release the GIL, such as an onnxruntime session with one
    intra-op thread: each core works on its own batch)."""
    if workers <= 1 or len(items) < 2:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="batch")
    try:
        yield from pool.map(fn, items)
    finally:  # a batch failed or the caller stopped: batches not yet started are not run
        pool.shutdown(wait=True, cancel_futures=True)


def run_in_batches(
    n: int,
    batches: list[Batch],
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    on_batch: Callable[[int], None] | None = None,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """Call ``run`` (inputs -> outputs by name) on each batch and put every output row back at
    its position in the Sequences: name -> (n, ...) array. Used by every runner alike;
    ``workers``: batches run at once (:func:`map_batches`; a runner's ``workers``)."""
    out: dict[str, np.ndarray] = {}
    results = map_batches(lambda batch: run(dict(batch.inputs)), batches, workers)
    for batch, outputs in zip(batches, results, strict=True):
        for name, value in outputs.items():
            if name not in out:
                out[name] = np.empty((n, *value.shape[1:]), dtype=value.dtype)
            out[name][batch.index] = value
        if on_batch is not None:
            on_batch(len(batch.index))
    return out


def run_model(
    seqs: Sequences,
    runner: Any,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
    batches: list[Batch] | None = None,
) -> tuple[dict[str, np.ndarray], list[Batch]]:
    """The model over every sequence: ``seqs`` -> length batches (:func:`length_batches`, or
    ``batches`` already cut) -> ``runner.run`` on each (``runner.workers`` at once) -> output
    name -> (len(seqs), ...) array in ``seqs`` order; returns (outputs, batches).

    The one loop of every scorer: :func:`journeyformer.inference.loop.score_sequences`
    (predict, the Python API, evaluate, monitor, export) and the torch runners of
    :mod:`journeyformer.model.runner` (training).
    """
    batches = length_batches(seqs, batch_size) if batches is None else batches
    outputs = run_in_batches(len(seqs), batches, runner.run, on_batch, getattr(runner, "workers", 1))
    return outputs, batches
