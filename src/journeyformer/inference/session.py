"""onnxruntime sessions for scoring, with the thread and optimisation settings chosen on purpose.

The settings, and why:

* ``graph_optimization_level = ORT_ENABLE_BASIC`` (``optimization="basic"``): constant folding
  and redundant-node removal. The extended/all levels add contrib fusions (SkipLayerNorm,
  BiasGelu, FusedMatMul); at d_model=64 their kernels were 5-10% *slower* than the plain ONNX
  ops they replace (min of 15 runs, real length-bucketed batches, 1 thread), so they are off by
  default; ``optimization="all"`` may pay off for wider models. Export checks parity with the
  same settings the predictor uses.
* ``execution_mode = ORT_SEQUENTIAL`` and ``inter_op_num_threads = 1``: the graph is one chain
  of layers, so there are no independent branches for a parallel executor to run.
* ``intra_op_num_threads`` = ``threads`` (default: the machine's cores) under
  ``parallel="operators"``: each MatMul/attention is split across them. Under
  ``parallel="batches"`` (the CPU default with more than one core,
  :class:`journeyformer.inference.runner.OnnxRunner`) it is 1 and each core runs its own batch:
  at d_model 64 one batch's operators are too small to split well.
* ``session.intra_op.allow_spinning = 0``: idle onnxruntime threads sleep instead of spinning,
  because the predictor prepares the next chunk with Polars *while* a batch runs; spinning
  threads would take the cores Polars needs. (Measured in ``benchmarks/bench_inference.py``.)
* ``enable_cpu_mem_arena``/``enable_mem_pattern`` stay on: batches of similar shape reuse memory,
  and the arena is bounded by the largest batch (``batch_size`` x ``max_len``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import onnxruntime as ort

from journeyformer.errors import ConfigError, RuntimeSetupError

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda")
OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_CUDA = "CUDAExecutionProvider"
_GPU_HINT = (
    "keep only the GPU build of onnxruntime: `pip install 'journeyformer[gpu]'`, then "
    "`pip uninstall -y onnxruntime onnxruntime-gpu && pip install --no-deps "
    "onnxruntime-gpu==<version>` (both packages install the same `onnxruntime` module; README "
    "'Install'), with a CUDA and cuDNN version that build supports"
)


def installed_runtimes() -> list[str]:
    """The onnxruntime distributions installed here (more than one shadow each other)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return found


def default_threads() -> int:
    """Cores this process may use (respects CPU affinity / container limits where visible)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def session_options(threads: int | None = None, optimization: str = "basic") -> ort.SessionOptions:
    """Session options as documented in the module docstring."""
    if optimization not in OPTIMIZATION:
        raise ConfigError(f"optimization={optimization!r} is not one of {list(OPTIMIZATION)}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = OPTIMIZATION[optimization]
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = int(threads or default_threads())
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only: shape-inference chatter is not for users
    return opts


def providers_for(device: str) -> list[str | tuple[str, dict]]:
    """Execution providers for ``device``; fails with what to install when CUDA is missing."""
    if device not in DEVICES:
        raise ConfigError(f"device={device!r} is not one of {list(DEVICES)}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if _CUDA not in available:
        runtimes = installed_runtimes()
        both = (
            f" Installed together: {runtimes}; whichever was installed last provides the module."
            if len(runtimes) > 1
            else ""
        )
        raise RuntimeSetupError(
            f"device=cuda needs onnxruntime's {_CUDA}, but this onnxruntime "
            f"({ort.__version__}) only has {available}.{both} To fix: {_GPU_HINT}. "
            "Or use device=cpu."
        )
    return [(_CUDA, {"device_id": 0}), "CPUExecutionProvider"]


def make_session(
    model_path: str | Path,
    device: str = "cpu",
    threads: int | None = None,
    optimization: str = "basic",
) -> ort.InferenceSession:
    """An inference session for ``model_path`` on ``device`` ("cpu" or "cuda")."""
    providers = providers_for(device)
    options = session_options(threads, optimization)
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
    if device == "cuda" and session.get_providers()[0] != _CUDA:
        # onnxruntime falls back to CPU silently when the CUDA libraries fail to load.
        raise RuntimeSetupError(
            f"device=cuda: onnxruntime could not start {_CUDA} (CUDA/cuDNN libraries not found "
            f"or incompatible) and fell back to {session.get_providers()}. To fix: {_GPU_HINT}."
        )
    log.debug(
        "onnxruntime %s on %s, providers %s", ort.__version__, device, session.get_providers()
    )
    return session
