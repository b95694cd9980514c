"""Optional int8 dynamic quantization of the exported graph, and how far it moves predictions.

Dynamic quantization stores MatMul/Gemm weights as int8 and quantizes activations per batch
at run time: a smaller file and usually faster CPU inference, no calibration data needed.
Its cost is measured, not assumed: top-1 agreement with fp32 and the change in churn AUROC on
labelled validation sequences.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

from journeyformer.data.sequences import Sequences
from journeyformer.evaluation.metrics import auroc
from journeyformer.inference.predictor import length_batches, run_in_batches
from journeyformer.inference.session import make_session

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
    """int8 against fp32 on the same validation sequences.

    Attributes:
        rows: sequences compared.
        next_action_top1_agreement / stage_top1_agreement: share of rows with the same top-1.
        churn_auroc_fp32 / churn_auroc_int8: churn AUROC against the labels (NaN when one class).
        churn_auroc_diff: int8 - fp32.
        max_abs_diff: output -> largest |int8 - fp32|.
        size_bytes: file size of each model.
    """

    rows: int
    next_action_top1_agreement: float
    stage_top1_agreement: float
    churn_auroc_fp32: float
    churn_auroc_int8: float
    churn_auroc_diff: float
    max_abs_diff: dict[str, float]
    size_bytes: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def table(self) -> str:
        return (
            f"int8 vs fp32 on {self.rows} validation sequences: next-action top-1 agreement "
            f"{self.next_action_top1_agreement:.4f}, stage top-1 agreement "
            f"{self.stage_top1_agreement:.4f}, churn AUROC {self.churn_auroc_fp32:.4f} -> "
            f"{self.churn_auroc_int8:.4f} (diff {self.churn_auroc_diff:+.4f}); size "
            f"{self.size_bytes['fp32'] / 1e6:.2f} MB -> {self.size_bytes['int8'] / 1e6:.2f} MB"
        )


def _run(path: Path, seqs: Sequences, batch_size: int) -> dict[str, np.ndarray]:
    session = make_session(path, "cpu")
    names = [o.name for o in session.get_outputs()]

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, inputs), strict=True))

    return run_in_batches(len(seqs), length_batches(seqs, batch_size), run)


def compare_int8(
    fp32_path: Path, int8_path: Path, seqs: Sequences, batch_size: int = 256
) -> Int8Report:
    """Agreement of the int8 model with fp32 on labelled ``seqs`` (labels needed for AUROC)."""
    if seqs.labels is None:
        raise ValueError(
            "compare_int8 needs labelled sequences (build_sequences(with_labels=True))"
        )
    fp32, int8 = _run(fp32_path, seqs, batch_size), _run(int8_path, seqs, batch_size)
    churn = seqs.labels["churn"]
    a32, a8 = auroc(fp32["churn_probability"], churn), auroc(int8["churn_probability"], churn)
    agree = lambda name: float(np.mean(fp32[name].argmax(1) == int8[name].argmax(1)))  # noqa: E731
    return Int8Report(
        rows=len(seqs),
        next_action_top1_agreement=agree("next_action_probs"),
        stage_top1_agreement=agree("stage_probs"),
        churn_auroc_fp32=a32,
        churn_auroc_int8=a8,
        churn_auroc_diff=a8 - a32,
        max_abs_diff={k: float(np.abs(fp32[k] - int8[k]).max(initial=0.0)) for k in fp32},
        size_bytes={"fp32": fp32_path.stat().st_size, "int8": int8_path.stat().st_size},
    )
