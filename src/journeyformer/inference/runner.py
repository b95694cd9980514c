"""The onnxruntime runner: one padded batch -> named outputs with a bundle's graph (no torch)."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort

from journeyformer.errors import ConfigError
from journeyformer.inference import choice
from journeyformer.inference.bundle import FUSED_FILE, GRAPHS, Bundle
from journeyformer.inference.session import make_session

log = logging.getLogger(__name__)


class OnnxRunner:
    """One onnxruntime session over a bundle's model.

    Args:
        bundle: a loaded bundle (:func:`journeyformer.inference.bundle.load_bundle`).
        device: "cpu" or "cuda" (onnxruntime-gpu's CUDA execution provider).
        precision: "fp32" (model.onnx) or "int8" (model.int8.onnx).
        threads, spinning, optimization: see :mod:`journeyformer.inference.session`.
        graph: "auto" (time the bundle's graphs on this machine and run the faster; see
            :mod:`journeyformer.inference.choice`), "plain" (model.onnx) or "fused"
            (model.fused.onnx, fused attention; fp32 only).
    """

    def __init__(
        self,
        bundle: Bundle,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        spinning: bool = False,
        optimization: str = "basic",
        graph: str = "auto",
    ) -> None:
        if graph not in (*GRAPHS, "auto"):
            raise ConfigError(f"graph={graph!r} is not one of {[*GRAPHS, 'auto']}")
        self.bundle = bundle
        self.input_names = bundle.input_names
        self.output_names = bundle.output_names

        def session(g: str) -> ort.InferenceSession:
            return make_session(bundle.model_path(precision, g), device, threads, spinning, optimization)

        self.graph_timings_ms: dict[str, float] = {}
        candidates = bundle.graphs(precision)
        if graph != "auto":
            self.graph, self.session = graph, session(graph)
        elif len(candidates) == 1:
            self.graph, self.session = candidates[0], session(candidates[0])
            if precision == "fp32":  # a fused graph was expected; say why it is not run
                log.info(
                    "onnxruntime graph: plain (%s has no %s: exported before fused attention, "
                    "or its export_report.json 'fused' says the fusion did not match)",
                    bundle.path,
                    FUSED_FILE,
                )
        else:
            known = choice.remembered(bundle, precision, device, threads)
            if known is not None:
                self.graph, self.session = known, session(known)
            else:
                sessions = {g: session(g) for g in candidates}
                runs = {g: (lambda inputs, s=s: s.run(None, inputs)) for g, s in sessions.items()}
                self.graph, self.graph_timings_ms = choice.fastest(runs, choice.probe_inputs(bundle))
                self.session = sessions[self.graph]
                choice.remember(bundle, precision, device, threads, self.graph)
                log.info(
                    "onnxruntime graph: %s (probe ms per batch of 64: %s); pin it with graph=%s",
                    self.graph,
                    ", ".join(f"{g} {ms:.2f}" for g, ms in self.graph_timings_ms.items()),
                    "|".join(GRAPHS),
                )
        got = tuple(i.name for i in self.session.get_inputs())
        if got != self.input_names:
            raise ConfigError(
                f"{bundle.path}: model inputs {got} differ from preprocessing.json "
                f"{self.input_names}; re-export the bundle"
            )

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One batch: input name -> array, to output name -> (B, ...) array."""
        outs = self.session.run(list(self.output_names), {n: inputs[n] for n in self.input_names})
        return dict(zip(self.output_names, outs, strict=True))
