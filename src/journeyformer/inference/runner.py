"""The onnxruntime runner: one padded batch -> named outputs with a bundle's graph (no torch)."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort

from journeyformer.errors import ConfigError, RuntimeSetupError
from journeyformer.inference import choice, verify
from journeyformer.inference.bundle import FUSED_FILES, GRAPHS, PRECISIONS, Bundle
from journeyformer.inference.session import default_threads, make_session

log = logging.getLogger(__name__)

PARALLEL = ("auto", "batches", "operators")


class OnnxRunner:
    """One onnxruntime session over a bundle's model.

    Args:
        bundle: a loaded bundle (:func:`journeyformer.inference.bundle.load_bundle`).
        device: "cpu" or "cuda" (onnxruntime-gpu's CUDA execution provider).
        precision: "fp32", "int8" (the bundle's int8 files, export with quantize=true) or
            "auto" (fp32, and int8 where the bundle records that it met the agreement bar and
            the probe finds it faster on this machine; see :mod:`journeyformer.inference.choice`).
        threads, optimization: see :mod:`journeyformer.inference.session`.
        graph: "auto" (time the bundle's graphs on this machine and run the faster), "plain"
            (model.onnx, model.int8.onnx) or "fused" (fused attention, onnxruntime only).
        parallel: how ``threads`` cores share the work. "batches": the session runs each call
            on one thread and up to ``threads`` batches run at once (:attr:`workers`; callers
            pass it to :func:`journeyformer.data.features.batch.run_in_batches`); "operators": one batch
            at a time, each operator split across ``threads`` intra-op threads; "auto":
            batches on the CPU with more than one thread, operators otherwise. At d_model 64 a
            batch's operators are too small to split well (onnxruntime on 2 threads ran the
            default model 1.3x its 1-thread speed, two 1-thread batches at once 1.9x; README
            "Benchmarks").

    Attributes:
        precision, graph: what runs (never "auto").
        parallel: "batches" or "operators" (never "auto").
        workers: batches to run at once: ``threads`` under "batches", else 1.
        graph_timings_ms: probe milliseconds per batch of 64 by candidate (``"fused int8"``);
            empty when nothing was probed (pinned, one candidate, or remembered).
    """

    def __init__(
        self,
        bundle: Bundle,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        optimization: str = "basic",
        graph: str = "auto",
        parallel: str = "auto",
    ) -> None:
        if graph not in (*GRAPHS, "auto"):
            raise ConfigError(f"graph={graph!r} is not one of {[*GRAPHS, 'auto']}")
        if precision not in (*PRECISIONS, "auto"):
            raise ConfigError(f"precision={precision!r} is not one of {[*PRECISIONS, 'auto']}")
        self.bundle = bundle
        self.input_names = bundle.input_names
        self.output_names = bundle.output_names
        self.parallel, self.workers, session_threads = parallel_plan(parallel, device, threads)
        self.graph_timings_ms: dict[str, float] = {}
        candidates = choice.candidates(bundle, precision, graph, device)
        if not candidates:  # what was pinned is missing: model_path says which file and why
            pinned = (precision if precision != "auto" else "fp32", graph if graph != "auto" else "plain")
            candidates = [pinned]
        log.info(
            "onnxruntime parallelism: %s (%d batch(es) at a time, %d intra-op thread(s) each); pin "
            "it with parallel=batches|operators",
            self.parallel, self.workers, session_threads,
        )  # fmt: skip
        known = choice.remembered(bundle, precision, graph, device, session_threads)
        if known in candidates:  # chosen (and verified) earlier in this process
            candidates = [known]
        sessions = {}
        for c in candidates:  # only graphs that reproduce the golden outputs here may score
            s = make_session(bundle.model_path(*c), device, session_threads, optimization=optimization)
            check = verify.check_graph(bundle, *c, s, device, optimization)
            if check is None or check.ok:
                sessions[c] = s
                continue
            minimum = verify.minimum_runtime(bundle, *c)
            since = f" (it was measured correct from onnxruntime {minimum})" if minimum else ""
            if graph != "auto":
                raise RuntimeSetupError(
                    f"{bundle.path}: graph={graph} was pinned, but the {check.describe()}"
                    f"{since}. Use graph=auto or graph=plain, or another onnxruntime."
                )
            log.warning("%s: the %s%s; not used", bundle.path, check.describe(), since)
        if not sessions:
            raise RuntimeSetupError(
                f"{bundle.path}: no graph of this bundle reproduces its golden outputs on "
                f"onnxruntime {ort.__version__} ({', '.join(choice.name(c) for c in candidates)} "
                "tried; warnings above); install the onnxruntime the bundle was exported with"
            )
        if len(sessions) == 1:
            chosen, self.session = next(iter(sessions.items()))
            if known is None and graph == "auto" and chosen[1] == "plain" and len(candidates) == 1:
                log.info(  # a fused graph was expected; say why it is not run
                    "onnxruntime graph: plain (%s has no %s: exported before fused attention, "
                    "or its export_report.json 'fused' says the fusion did not match)",
                    bundle.path,
                    FUSED_FILES[chosen[0]],
                )
        else:
            named = {choice.name(c): (c, s) for c, s in sessions.items()}
            runs = {k: (lambda inputs, s=s: s.run(None, inputs)) for k, (_, s) in named.items()}
            fastest, self.graph_timings_ms = choice.fastest(runs, choice.probe_inputs(bundle))
            chosen, self.session = named[fastest]
            log.info(
                "onnxruntime model: %s (probe ms per batch of 64: %s); pin it with "
                "graph=plain|fused precision=fp32|int8",
                fastest,
                ", ".join(f"{k} {ms:.2f}" for k, ms in self.graph_timings_ms.items()),
            )
        choice.remember(bundle, precision, graph, device, session_threads, chosen)
        self.precision, self.graph = chosen
        if self.precision == "int8":
            agreement = bundle.int8_agreement(self.graph) or {}
            top1, diff = agreement.get("top1_agreement_min"), agreement.get("headline_abs_diff_max")
            log.info(
                "int8 %s graph: top-1 agreement with fp32 %s, largest headline metric change %s "
                "(validation data at export)",
                self.graph,
                "not recorded" if top1 is None else f"{top1:.4f}",
                "not recorded" if diff is None else f"{diff:.4f}",
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


def parallel_plan(parallel: str, device: str, threads: int | None) -> tuple[str, int, int]:
    """``parallel`` ("auto", "batches" or "operators") -> (what runs, batches at a time,
    intra-op threads per session run); see :class:`OnnxRunner`."""
    if parallel not in PARALLEL:
        raise ConfigError(f"parallel={parallel!r} is not one of {list(PARALLEL)}")
    cores = int(threads or default_threads())
    if parallel == "auto":
        parallel = "batches" if device == "cpu" and cores > 1 else "operators"
    if parallel == "batches" and device != "cpu":
        raise ConfigError(
            f"parallel=batches runs batches on CPU threads; with device={device} use "
            "parallel=operators (or auto)"
        )
    return (parallel, cores, 1) if parallel == "batches" else (parallel, 1, cores)
