"""Which graph the predictor runs on this machine: a short probe at start, remembered per process.

A bundle may hold two fp32 graphs with the same outputs (``model.onnx``, plain ONNX, and
``model.fused.onnx``, attention fused into onnxruntime kernels; :mod:`journeyformer.export.fuse`).
Which is faster depends on the CPU (vector extensions, cache sizes), the thread count and the
onnxruntime build, so ``graph="auto"`` times both on a synthetic batch of the model's real shape
(a few milliseconds each, interleaved, median of several runs), runs the faster and logs the
choice with the timings. ``graph="plain"`` or ``"fused"`` (the ``graph`` key of predict.yaml,
``Predictor.load(graph=...)``) pins it. The choice is kept for the life of the process per
(model files, device, threads), so a second Predictor on the same bundle does not probe again.

No torch.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable

import numpy as np

from journeyformer.inference.bundle import Bundle

log = logging.getLogger(__name__)

# (bundle spec checksum, precision, device, threads) -> chosen graph
_CHOSEN: dict[tuple[str, str, str, int | None], str] = {}


def probe_inputs(bundle: Bundle, batch: int = 64, seq_len: int = 32) -> dict[str, np.ndarray]:
    """A synthetic padded batch of the model's input shapes: every event real, ids 1 (<unk>)."""
    inputs: dict[str, np.ndarray] = {}
    t = min(seq_len, int(bundle.spec.get("max_len") or seq_len))
    for spec in bundle.spec["onnx"]["inputs"]:
        shape = [batch if d == "batch" else t if d == "seq_len" else int(d) for d in spec["shape"]]
        if spec["name"] == "lengths":
            inputs["lengths"] = np.full(batch, t, dtype=np.int64)
        elif spec["dtype"] == "int64":
            inputs[spec["name"]] = np.ones(shape, dtype=np.int64) if len(shape) == 3 else np.zeros(shape, np.int64)
        else:
            inputs[spec["name"]] = np.zeros(shape, dtype=np.float32)
    return inputs


def fastest(
    runs: dict[str, Callable[[dict[str, np.ndarray]], object]],
    inputs: dict[str, np.ndarray],
    rounds: int = 7,
) -> tuple[str, dict[str, float]]:
    """The key of the fastest ``runs`` on ``inputs`` (median seconds of ``rounds``, interleaved
    so that load changes hit every candidate alike) and every candidate's median in ms."""
    for run in runs.values():  # warm-up: allocations, first-call kernel selection
        run(inputs)
    seconds: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for key, run in runs.items():
            start = time.perf_counter()
            run(inputs)
            seconds[key].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) * 1e3 for k, v in seconds.items()}
    return min(medians, key=medians.__getitem__), medians


def remembered(bundle: Bundle, precision: str, device: str, threads: int | None) -> str | None:
    return _CHOSEN.get((str(bundle.spec.get("spec_sha256")), precision, device, threads))


def remember(bundle: Bundle, precision: str, device: str, threads: int | None, graph: str) -> None:
    _CHOSEN[(str(bundle.spec.get("spec_sha256")), precision, device, threads)] = graph
