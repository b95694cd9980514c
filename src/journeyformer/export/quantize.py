"""Optional int8 dynamic quantization of the exported graph, and how far it moves predictions.

Dynamic quantization stores MatMul/Gemm weights as int8 and quantizes activations per batch
at run time: a smaller file and usually faster CPU inference, no calibration data needed.
Its cost is measured, not assumed: top-1 agreement with fp32 and the change in churn AUROC on
labelled validation sequences.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

from journeyformer.data.batch import length_batches, run_in_batches
from journeyformer.data.sequences import Sequences
from journeyformer.inference.session import make_session
from journeyformer.model.network import EMBEDDING_OUTPUT
from journeyformer.tasks import registry

log = logging.getLogger(__name__)


def quantize_int8(fp32_path: str | Path, int8_path: str | Path) -> Path:
    """Write the int8 dynamic quantization of ``fp32_path`` (weights int8, per channel)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the quantizer logs one INFO line per tensor to the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            # Shape inference + graph clean-up first, as onnxruntime recommends for quantization.
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            quantize_dynamic(
                prepared,
                int8_path,
                op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=True,
                weight_type=QuantType.QInt8,
            )
    finally:
        root.setLevel(level)
    return Path(int8_path)


@dataclass
class Int8Report:
    """int8 against fp32 on the same validation sequences, for every enabled task.

    Attributes:
        rows: sequences compared.
        top1_agreement: class-distribution output -> share of rows with the same top-1.
        headline: task -> {"metric", "fp32", "int8", "diff"} the task's headline metric
            against the labels with each model (diff = int8 - fp32; NaN when undefined).
        max_abs_diff: output -> largest |int8 - fp32|.
        size_bytes: file size of each model.
    """

    rows: int
    top1_agreement: dict[str, float]
    headline: dict[str, dict[str, Any]]
    max_abs_diff: dict[str, float]
    size_bytes: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def table(self) -> str:
        agree = ", ".join(f"{n} top-1 agreement {v:.4f}" for n, v in self.top1_agreement.items())
        heads = ", ".join(
            f"{t} {h['metric']} {h['fp32']:.4f} -> {h['int8']:.4f} ({h['diff']:+.4f})"
            for t, h in self.headline.items()
        )
        return (
            f"int8 vs fp32 on {self.rows} validation sequences: {agree}; {heads}; size "
            f"{self.size_bytes['fp32'] / 1e6:.2f} MB -> {self.size_bytes['int8'] / 1e6:.2f} MB"
        )


def _run(path: Path, seqs: Sequences, batch_size: int) -> dict[str, np.ndarray]:
    session = make_session(path, "cpu")
    names = [o.name for o in session.get_outputs()]

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, inputs), strict=True))

    return run_in_batches(len(seqs), length_batches(seqs, batch_size), run)


def compare_int8(
    fp32_path: Path,
    int8_path: Path,
    seqs: Sequences,
    tasks: Iterable[str],
    batch_size: int = 256,
) -> Int8Report:
    """Agreement of the int8 model with fp32 on labelled ``seqs`` for the enabled ``tasks``."""
    if seqs.labels is None:
        raise ValueError(
            "compare_int8 needs labelled sequences (build_sequences(with_labels=True))"
        )
    fp32, int8 = _run(fp32_path, seqs, batch_size), _run(int8_path, seqs, batch_size)
    headline = {}
    for task in registry.enabled(tasks):
        y = seqs.labels[task.name]
        a32 = task.score(fp32[task.metric_output], y)[task.headline]
        a8 = task.score(int8[task.metric_output], y)[task.headline]
        headline[task.name] = {"metric": task.headline, "fp32": a32, "int8": a8, "diff": a8 - a32}
    distributions = [k for k, v in fp32.items() if v.ndim == 2 and k != EMBEDDING_OUTPUT]
    return Int8Report(
        rows=len(seqs),
        top1_agreement={k: float(np.mean(fp32[k].argmax(1) == int8[k].argmax(1))) for k in distributions},
        headline=headline,
        max_abs_diff={k: float(np.abs(fp32[k] - int8[k]).max(initial=0.0)) for k in fp32},
        size_bytes={"fp32": fp32_path.stat().st_size, "int8": int8_path.stat().st_size},
    )
