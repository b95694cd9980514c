"""Which model file the predictor runs on this machine: a short probe at start, remembered per
process.

A bundle may hold two fp32 graphs with the same outputs (``model.onnx``, plain ONNX, and
``model.fused.onnx``, attention fused into onnxruntime kernels; :mod:`journeyformer.export.fuse`)
and, exported with ``quantize=true``, the int8 quantization of each
(:mod:`journeyformer.export.quantize`). Which is faster depends on the CPU (vector extensions,
VNNI/AMX for int8, cache sizes), the thread count and the onnxruntime build, so ``graph="auto"``
and ``precision="auto"`` time the candidates on a synthetic batch of the model's real shape (a
few milliseconds each, interleaved, median of several runs), run the fastest and log the choice
with the timings. int8 is a candidate under ``precision="auto"`` only where the bundle records
that it met the agreement bar against fp32 on validation data
(:data:`journeyformer.export.quantize.AGREEMENT_BAR`), and only on the CPU. ``graph="plain"`` or
``"fused"`` and ``precision="fp32"`` or ``"int8"`` (predict.yaml, ``Predictor.load(...)``) pin
them. The choice is kept for the life of the process per (model files, device, threads, what
was pinned), so a second Predictor on the same bundle does not probe again.

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

# A candidate model file: (precision, graph), e.g. ("int8", "fused").
Candidate = tuple[str, str]
# (bundle spec checksum, precision asked, graph asked, device, threads) -> chosen candidate
_CHOSEN: dict[tuple[str, str, str, str, int | None], Candidate] = {}


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


def candidates(bundle: Bundle, precision: str, graph: str, device: str) -> list[Candidate]:
    """The (precision, graph) files the predictor may run for what was asked (each "auto" or
    pinned): every graph the bundle has; int8 under ``precision="auto"`` only on the CPU and
    only where the bundle records that it met the agreement bar."""
    precisions = ["fp32", "int8"] if precision == "auto" else [precision]
    found = []
    for p in precisions:
        for g in bundle.graphs(p):
            if graph not in ("auto", g):
                continue
            if precision == "auto" and p == "int8":
                agreement = bundle.int8_agreement(g)
                if device != "cpu" or not (agreement and agreement.get("passes")):
                    continue
            found.append((p, g))
    return found


def name(candidate: Candidate) -> str:
    """``"fused int8"`` for ("int8", "fused")."""
    return f"{candidate[1]} {candidate[0]}"


def _key(bundle: Bundle, precision: str, graph: str, device: str, threads: int | None) -> tuple:
    return (str(bundle.spec.get("spec_sha256")), precision, graph, device, threads)


def remembered(
    bundle: Bundle, precision: str, graph: str, device: str, threads: int | None
) -> Candidate | None:
    return _CHOSEN.get(_key(bundle, precision, graph, device, threads))


def remember(
    bundle: Bundle, precision: str, graph: str, device: str, threads: int | None, chosen: Candidate
) -> None:
    _CHOSEN[_key(bundle, precision, graph, device, threads)] = chosen
