"""No graph scores until it has reproduced the bundle's golden outputs on this runtime.

A graph that loads is not yet a graph that is right: onnxruntime's fused attention kernels
(``model.fused.onnx``, ``model.fused.int8.onnx``) run without error and return wrong outputs on
onnxruntime 1.15-1.20 (churn off by up to 0.15), and a CUDA build or another thread setting may
change results too. So before the predictor uses a graph it runs ``golden.json``'s inputs
(:mod:`journeyformer.export.golden`) through that very session and compares with the outputs
recorded at export: the fp32 graphs with ``outputs``, each int8 graph with its own
``int8_outputs``, within ``golden.json``'s ``tolerance``. A graph outside it is dropped with a
one-line warning (graph, runtime, largest difference), or refused when it was pinned
(:class:`journeyformer.inference.runner.OnnxRunner`). A few customers, one batch: milliseconds.
Results are kept per process, so a second predictor on the same bundle does not run it again.

No torch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from journeyformer.inference.bundle import Bundle

log = logging.getLogger(__name__)

# (bundle spec checksum, precision, graph, device, optimization) -> result
_CHECKED: dict[tuple[str, str, str, str, str], GraphCheck] = {}
_WARNED_NO_GOLDEN: set[str] = set()


@dataclass(frozen=True)
class GraphCheck:
    """One graph's golden check on this runtime.

    ``excess``: the largest ``|got - expected| / (atol + rtol * |expected|)`` over every output
    value (<= 1 passes); ``max_abs_diff`` and ``output``: the largest absolute difference and
    the output it is in; ``error``: why the graph could not run the golden inputs at all."""

    precision: str
    graph: str
    runtime: str
    excess: float
    max_abs_diff: float
    output: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.excess <= 1.0

    def describe(self) -> str:
        what = f"{self.graph} {self.precision} graph on onnxruntime {self.runtime}"
        if self.error is not None:
            return f"{what} cannot run the golden inputs: {self.error}"
        return (
            f"{what} does not reproduce the bundle's golden outputs: largest difference "
            f"{self.max_abs_diff:.3g} in {self.output} ({self.excess:.3g}x the tolerance)"
        )


def _compare(
    got: dict[str, np.ndarray], expected: dict[str, list], tol: dict[str, float]
) -> tuple[float, float, str]:
    excess, max_abs, where = 0.0, 0.0, ""
    for name, want in expected.items():
        want_arr = np.asarray(want, dtype=np.float64)
        diff = np.abs(np.asarray(got[name], dtype=np.float64) - want_arr)
        if diff.shape != want_arr.shape:
            return float("inf"), float("inf"), f"{name} (shape {diff.shape} vs {want_arr.shape})"
        ratio = diff / (tol["atol"] + tol["rtol"] * np.abs(want_arr))
        ratio = np.where(np.isnan(ratio), np.inf, ratio)  # NaN out: never a pass
        if ratio.size and float(ratio.max()) > excess:
            excess, where = float(ratio.max()), name
            max_abs = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("inf")
    return excess, max_abs, where or next(iter(expected), "")


def check_graph(
    bundle: Bundle,
    precision: str,
    graph: str,
    session: ort.InferenceSession,
    device: str = "cpu",
    optimization: str = "basic",
) -> GraphCheck | None:
    """Run the golden inputs through ``session`` (the bundle's ``precision``/``graph`` file) and
    compare with the recorded outputs. None when the bundle has no golden outputs for this
    graph (exported before they were recorded): warned once per bundle, nothing verified."""
    key = (str(bundle.spec.get("spec_sha256")), precision, graph, device, optimization)
    if key in _CHECKED:
        return _CHECKED[key]
    if "golden" not in bundle.spec:  # a bundle being built: export writes golden.json last
        return None
    path = bundle.path / str(bundle.spec["golden"])
    data = json.loads(path.read_text()) if path.is_file() else None
    expected = None
    if data is not None:
        expected = data["outputs"] if precision == "fp32" else data.get("int8_outputs", {}).get(graph)
    if expected is None:
        if key[0] not in _WARNED_NO_GOLDEN:
            _WARNED_NO_GOLDEN.add(key[0])
            log.warning(
                "%s: no golden outputs for the %s %s graph in golden.json (exported by an older "
                "journeyformer), so it is not verified on onnxruntime %s; re-export the bundle",
                bundle.path, graph, precision, ort.__version__,
            )  # fmt: skip
        return None
    tol = data["tolerance"]["outputs" if precision == "fp32" else "int8_outputs"]
    dtypes = {i["name"]: i["dtype"] for i in bundle.spec["onnx"]["inputs"]}
    feeds = {k: np.asarray(v, dtype=dtypes[k]) for k, v in data["inputs"].items()}
    names = list(expected)
    try:
        got = dict(zip(names, session.run(names, feeds), strict=True))
    except Exception as exc:  # noqa: BLE001 - any failure to run is a failed check, said whole
        result = GraphCheck(precision, graph, ort.__version__, float("inf"), float("inf"), "",
                            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")  # fmt: skip
    else:
        excess, max_abs, where = _compare(got, expected, tol)
        result = GraphCheck(precision, graph, ort.__version__, excess, max_abs, where)
    _CHECKED[key] = result
    log.debug("golden check: %s %s on onnxruntime %s: %.3g x tolerance", graph, precision,
              ort.__version__, result.excess)  # fmt: skip
    return result


def minimum_runtime(bundle: Bundle, precision: str, graph: str) -> str | None:
    """The oldest onnxruntime that reproduced this graph's golden outputs when measured
    (``preprocessing.json`` ``onnx.min_onnxruntime``), or None when not recorded."""
    file = bundle.model_path(precision, graph).name
    return (bundle.spec["onnx"].get("min_onnxruntime") or {}).get(file)
