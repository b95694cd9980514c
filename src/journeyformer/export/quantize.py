"""Optional int8 dynamic quantization of the exported graphs, and how far it moves predictions.

Dynamic quantization stores weights as int8 and quantizes activations per batch at run time
(VNNI / AMX run the int8 products fast); no calibration data needed. Only the products that
run at every event are quantized (:func:`token_nodes`): the projections of the encoder blocks
(for the fused graph, the QKV projection inside each ``Attention`` node too). The per-customer
products (the last block's one query, the context MLP, the heads) cost little and stay fp32:
quantizing them bought no speed and moved the predictions most (default model, trained: top-1
agreement of the next action 0.9949 with every product quantized, 0.9992 with the per-event
ones only). Its cost is measured, not assumed: top-1 agreement with fp32 and the change in each
task's headline metric on labelled validation sequences; :data:`AGREEMENT_BAR` is what the
predictor asks before it may pick int8 by itself (``precision=auto``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic
from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

from journeyformer.data.features.sequences import Sequences
from journeyformer.inference.loop import BULK_BATCH_SIZE, score_sequences
from journeyformer.inference.session import make_session
from journeyformer.model.network import EMBEDDING_OUTPUT
from journeyformer.tasks import registry

log = logging.getLogger(__name__)

# What int8 must keep, against fp32 on the validation sequences, before the predictor may choose
# it by itself: the same top-1 class for this share of customers (every class output) and every
# task's headline metric (churn AUROC, ...) within this absolute difference.
AGREEMENT_BAR = {"top1_agreement": 0.995, "headline_abs_diff": 0.001}
# Products with fewer input features than this stay fp32 (the numeric-feature projection: int8
# has nothing to gain at K = 8 and its inputs are raw feature values).
MIN_K = 16
_QUANTIZED_OPS = ("MatMul", "Attention")


def token_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that multiply every event's activations by a constant weight.

    A ``MatMul`` (or a fused ``Attention``, whose weight is the QKV projection) whose second
    input is an initializer of K >= :data:`MIN_K` rows and whose activation is
    ``(batch, seq_len, K)`` with a symbolic sequence axis, as onnxruntime's symbolic shape
    inference finds it; (B, 1, K) one-query products and (B, K) per-customer ones are left out.
    """
    inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    shapes = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*inferred.graph.value_info, *inferred.graph.input]
    }
    weights = {i.name: list(i.dims) for i in inferred.graph.initializer}
    chosen = []
    for node in inferred.graph.node:
        if node.op_type not in _QUANTIZED_OPS or len(node.input) < 2:
            continue
        weight, shape = weights.get(node.input[1]), shapes.get(node.input[0])
        per_event = shape is not None and len(shape) == 3 and isinstance(shape[1], str)
        if weight is not None and len(weight) == 2 and weight[0] >= MIN_K and per_event:
            chosen.append(node.name)
    return chosen


def quantize_int8(fp32_path: str | Path, int8_path: str | Path) -> Path:
    """Write the int8 dynamic quantization of ``fp32_path`` (plain or fused graph): weights
    int8 per output channel, for the per-event products only (:func:`token_nodes`)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the quantizer logs one INFO line per tensor to the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            # Shape inference + graph clean-up first (folds the sliced K/V weights of the last
            # block into initializers), as onnxruntime recommends for quantization.
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            nodes = token_nodes(onnx.load(str(prepared)))
            if not nodes:
                raise ValueError(f"{fp32_path}: no per-event products to quantize")
            quantize_dynamic(
                prepared,
                int8_path,
                op_types_to_quantize=list(_QUANTIZED_OPS),
                nodes_to_quantize=nodes,
                per_channel=True,
                weight_type=QuantType.QInt8,
            )
    finally:
        root.setLevel(level)
    # The quantizer stamps every domain it knows (ai.onnx.ml at opset 5, training, ...) though
    # the graph uses none of them; onnxruntime < 1.18 refuses a model stamped ai.onnx.ml 5.
    model = onnx.load(str(int8_path))
    used = {n.domain for n in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    onnx.save(model, str(int8_path))
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

    def agreement(self) -> dict[str, Any]:
        """The worst top-1 agreement and headline change, and whether both meet
        :data:`AGREEMENT_BAR`; what the bundle records for the predictor."""
        bar = dict(AGREEMENT_BAR)
        top1 = min(self.top1_agreement.values(), default=1.0)
        diffs = [abs(h["diff"]) for h in self.headline.values()]
        worst = max(diffs, default=0.0)
        finite = all(np.isfinite(d) for d in diffs)
        passes = finite and top1 >= bar["top1_agreement"] and worst <= bar["headline_abs_diff"]
        return {
            "rows": self.rows,
            "top1_agreement_min": top1,
            "headline_abs_diff_max": worst if finite else None,
            "bar": bar,
            "passes": bool(passes),
        }

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


class _GraphRunner:
    """One ONNX file on the CPU, one batch at a time (no bundle needed)."""

    workers = 1

    def __init__(self, path: Path) -> None:
        self.session = make_session(path, "cpu")
        self.output_names = tuple(o.name for o in self.session.get_outputs())

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(list(self.output_names), inputs), strict=True))


def _run(path: Path, seqs: Sequences) -> dict[str, np.ndarray]:
    return score_sequences(seqs, _GraphRunner(path), batch_size=BULK_BATCH_SIZE).outputs


def compare_int8(fp32_path: Path, int8_path: Path, seqs: Sequences, tasks: Iterable[str]) -> Int8Report:
    """Agreement of the int8 model with fp32 on labelled ``seqs`` for the enabled ``tasks``."""
    if seqs.labels is None:
        raise ValueError(
            "compare_int8 needs labelled sequences (build_sequences(with_labels=True))"
        )
    fp32, int8 = _run(fp32_path, seqs), _run(int8_path, seqs)
    headline = {}
    for task in registry.enabled(tasks):
        y = seqs.labels[task.name]
        a32 = task.headline_score(fp32[task.metric_output], y)
        a8 = task.headline_score(int8[task.metric_output], y)
        headline[task.name] = {"metric": task.headline, "fp32": a32, "int8": a8, "diff": a8 - a32}
    distributions = [k for k, v in fp32.items() if v.ndim == 2 and k != EMBEDDING_OUTPUT]
    return Int8Report(
        rows=len(seqs),
        top1_agreement={k: float(np.mean(fp32[k].argmax(1) == int8[k].argmax(1))) for k in distributions},
        headline=headline,
        max_abs_diff={k: float(np.abs(fp32[k] - int8[k]).max(initial=0.0)) for k in fp32},
        size_bytes={"fp32": fp32_path.stat().st_size, "int8": int8_path.stat().st_size},
    )
