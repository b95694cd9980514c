"""JourneyTransformer -> ONNX with dynamic batch and sequence axes, and the parity check.

The graph comes from ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript), with
``dynamic_shapes`` marking axis 0 (``batch``) of every input and axis 1 (``seq_len``) of the
per-event inputs. The example batch has B, T >= 2 so neither axis is specialised to a constant,
and the attention mask, the recency positions and the gather of the last real event are traced
as shape-generic ops (Range/Less/GatherElements), valid for any T.

By default the traced network computes its last block at the last event only
(``JourneyTransformer.predict(last_only=True)``: same outputs, fewer FLOPs).

Two fixes are applied to the exported graph:

* the dynamo exporter names graph values after the aten op that made them, so an internal
  value may already be called ``embedding`` (the first ``nn.Embedding``); such values are
  renamed before the outputs get their names (``net.output_names``), or the model would not
  be in SSA form;
* symbolic dimensions get stable names (``batch``, ``seq_len``) for other runtimes.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from journeyformer.data.features.batch import MODEL_INPUTS
from journeyformer.errors import JourneyformerError
from journeyformer.inference.session import make_session
from journeyformer.model.config import ModelConfig
from journeyformer.model.network import InferenceWrapper, JourneyTransformer
from journeyformer.tasks.base import AMOUNT, DISTRIBUTION, RANKED_IDS, RANKED_SCORES, Output, Task

log = logging.getLogger(__name__)

BATCH, SEQ = "batch", "seq_len"
PER_EVENT = ("categorical", "numeric")  # the inputs with a seq_len axis
# The lowest opset the exporter writes (it raises opsets below 18 to 18 or fails on them), saved
# with the lowest IR version that carries it (8), so older runtimes load the model (IR 10 needed
# onnxruntime >= 1.18).
OPSET = 18
# The onnxruntime releases every graph file is run on against the golden examples
# (tests/integration/test_runtime_matrix.py; `make venv` installs each into .venv/ort/<version>):
# the oldest with Python 3.11 wheels, the pyproject floor, the last and the first release around
# the fused-attention fix, and the installed one.
RUNTIME_MATRIX = ("1.15.0", "1.18.0", "1.20.1", "1.21.0")
# The oldest release of RUNTIME_MATRIX that reproduces each graph's golden outputs (recorded in
# every bundle as onnx.min_onnxruntime; the test fails when the matrix says otherwise). The fused
# attention kernels load and return wrong outputs before 1.21.0 (6e-3 to 2e-2 off on the golden
# outputs; churn up to 0.15 off on 2,000 customers of the default model).
MIN_ONNXRUNTIME = {
    "model.onnx": "1.15.0",
    "model.int8.onnx": "1.15.0",
    "model.fused.onnx": "1.21.0",
    "model.fused.int8.onnx": "1.21.0",
}
# Two classes closer than this are a tie: either may be top-1 in float32.
TIE = 1e-6


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress chatter (INFO per optimisation pass, warnings about
    torchvision ops this model does not use); real errors still raise."""
    names = ("torch.onnx", "onnxscript", "onnx_ir")
    levels = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", module=r"torch\.onnx.*")
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


class ExportParityError(JourneyformerError, RuntimeError):
    """onnxruntime disagrees with torch beyond tolerance; the message holds the table."""


def io_spec(net: JourneyTransformer) -> dict[str, list[dict[str, Any]]]:
    """Names, dtypes and shapes of the graph's inputs and outputs (strings for dynamic axes).

    Outputs also carry their ``kind`` (distribution, probability, amount, embedding).
    """
    cfg = net.cfg
    inputs = [
        ("categorical", "int64", [BATCH, SEQ, len(cfg.categorical_sizes)]),
        ("numeric", "float32", [BATCH, SEQ, cfg.n_numeric]),
        ("lengths", "int64", [BATCH]),
        ("stage_now", "int64", [BATCH]),
        ("context", "float32", [BATCH, cfg.n_context]),
    ]
    assert tuple(n for n, _, _ in inputs) == MODEL_INPUTS
    return {
        "inputs": [{"name": n, "dtype": t, "shape": sh} for n, t, sh in inputs],
        "outputs": [
            {"name": o.name, "dtype": o.dtype, "shape": [BATCH, *o.shape], "kind": o.kind}
            for o in net.outputs
        ],
    }


def random_inputs(
    cfg: ModelConfig, batch: int, seq_len: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """A valid right-padded batch of random events: ids in range (``<unk>`` included), every
    length in 1..seq_len with the first row exactly ``seq_len`` long."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, seq_len + 1, size=batch)
    lengths[0] = seq_len
    real = np.arange(seq_len)[None, :] < lengths[:, None]  # (B, T)
    ids = [rng.integers(1, size, size=(batch, seq_len)) for size in cfg.categorical_sizes]
    categorical = np.stack(ids, axis=-1) * real[..., None]
    numeric = rng.normal(size=(batch, seq_len, cfg.n_numeric)).astype(np.float32) * real[..., None]
    return {
        "categorical": categorical.astype(np.int64),
        "numeric": numeric.astype(np.float32),
        "lengths": lengths.astype(np.int64),
        "stage_now": rng.integers(0, cfg.n_stages, size=batch).astype(np.int64),
        "context": np.abs(rng.normal(size=(batch, cfg.n_context))).astype(np.float32),
    }


def export_onnx(
    net: JourneyTransformer,
    path: str | Path,
    *,
    opset: int = OPSET,
    last_position_only: bool = True,
) -> Path:
    """Write ``net``'s inference outputs (eval mode) to ``path`` and run ``onnx.checker``.

    Args:
        opset: ONNX opset (>= 18); the file gets the lowest IR version that carries it.
        last_position_only: the last block at the last event only (same outputs, ~40% fewer
            FLOPs for 2 blocks); False exports every position of every block.
    """
    wrapper = InferenceWrapper(net.eval(), last_only=last_position_only).eval()
    args = tuple(torch.from_numpy(v) for v in random_inputs(net.cfg, 3, 11).values())
    batch, seq = torch.export.Dim(BATCH), torch.export.Dim(SEQ)
    dynamic = {n: {0: batch, 1: seq} if n in PER_EVENT else {0: batch} for n in MODEL_INPUTS}
    with torch.no_grad(), quiet_exporter():
        program = torch.onnx.export(
            wrapper,
            args,
            input_names=list(MODEL_INPUTS),
            dynamic_shapes=dynamic,
            dynamo=True,
            optimize=True,
            opset_version=opset,
            verbose=False,
        )
    _name_outputs(program.model.graph, net.output_names)
    path = Path(path)
    program.save(str(path))
    model = onnx.load(str(path))
    _name_dims(model)
    written = {o.domain: o.version for o in model.opset_import}.get("", 0)
    if written != opset:
        raise ValueError(f"opset={opset}: the exporter wrote opset {written}; use opset >= {OPSET}")
    model.ir_version = lowest_ir_version(opset)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def lowest_ir_version(opset: int) -> int:
    """The IR version of the first ONNX release with ``opset`` (opset 18 -> IR 8).

    Runtimes check the IR version before anything else; the exporter writes the newest (10,
    which onnxruntime < 1.18 refuses) although the graph uses nothing newer than ``opset``.
    """
    versions = [ir for _, ir, ai_onnx, *_ in onnx.helper.VERSION_TABLE if ai_onnx >= opset]
    if not versions:
        raise ValueError(f"opset {opset} is newer than this onnx package knows")
    return min(versions)


def _name_outputs(graph: Any, names: Sequence[str]) -> None:
    """Give the graph outputs ``names``, first renaming internal values that hold those names."""
    outputs = list(graph.outputs)
    if len(outputs) != len(names):
        raise RuntimeError(f"the exported graph has {len(outputs)} outputs, expected {len(names)}")
    wanted = set(names)
    for node in graph:
        for value in node.outputs:
            if value.name in wanted and value not in outputs:
                value.name = f"_{value.name}"
    for value, name in zip(outputs, names, strict=True):
        value.name = name


def _name_dims(model: onnx.ModelProto) -> None:
    """Name the symbolic dims ``batch`` and ``seq_len`` (torch calls them s0, s1, ...)."""
    first = {}
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis, name in ((0, BATCH), (1, SEQ)):
            if value.name in PER_EVENT and axis < len(dims) and dims[axis].dim_param:
                first[dims[axis].dim_param] = name
    for value in (*model.graph.input, *model.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in first:
                dim.dim_param = first[dim.dim_param]


@dataclass
class ParityReport:
    """onnxruntime vs torch over several batches.

    Attributes:
        outputs: the compared outputs (name, shape, kind), in graph order.
        max_abs_diff: output -> largest |onnx - torch| over all batches.
        max_rel_diff: output -> largest |onnx - torch| / max(1, |torch|) (what counts for
            ``amount`` outputs, in currency units and possibly large); for an effect, over
            the amounts it is the difference of (:meth:`Task.parity_scale`).
        top1_mismatches: distribution output -> rows whose top-1 differs (ties excluded).
        ties: distribution output -> rows whose two best classes were within TIE (not compared).
        shapes: (B, T) of every batch compared.
    """

    atol: float
    outputs: tuple[Output, ...] = ()
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    max_rel_diff: dict[str, float] = field(default_factory=dict)
    top1_mismatches: dict[str, int] = field(default_factory=dict)
    ties: dict[str, int] = field(default_factory=dict)
    shapes: list[tuple[int, int]] = field(default_factory=list)
    rows: int = 0

    def failures(self) -> list[str]:
        bad = []
        for o in self.outputs:
            # Probabilities and embeddings: absolute. Amounts: relative above 1 unit.
            diff = self.max_rel_diff[o.name] if o.kind == AMOUNT else self.max_abs_diff[o.name]
            if not diff <= self.atol:  # also catches NaN
                bad.append(f"{o.name}: max diff {diff:.3g} > {self.atol:g}")
        bad += [f"{n}: top-1 differs on {k} rows" for n, k in self.top1_mismatches.items() if k]
        return bad

    @property
    def ok(self) -> bool:
        return not self.failures()

    def table(self) -> str:
        lines = [f"parity onnxruntime vs torch: {self.rows} rows in batches (B, T) {self.shapes}"]
        for o in self.outputs:
            extra = ""
            if o.name in self.top1_mismatches:
                extra = f"  top-1 mismatches {self.top1_mismatches[o.name]} (ties {self.ties[o.name]})"
            lines.append(
                f"  {o.name:<18} max abs diff {self.max_abs_diff[o.name]:.3e}  "
                f"max rel diff {self.max_rel_diff[o.name]:.3e}{extra}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "atol": self.atol,
            "rows": self.rows,
            "shapes": [list(s) for s in self.shapes],
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "top1_mismatches": self.top1_mismatches,
            "ties": self.ties,
            "ok": self.ok,
        }


def torch_outputs(
    net: JourneyTransformer, inputs: dict[str, np.ndarray], last_only: bool = False
) -> dict[str, np.ndarray]:
    """Output name -> array of the eager network (every position of every block by default:
    the reference the exported graph is held to)."""
    with torch.no_grad():
        outs = net.eval().predict(*(torch.from_numpy(inputs[n]) for n in MODEL_INPUTS), last_only=last_only)
    return {n: o.numpy() for n, o in outs.items()}


def _top1_mismatch(ref: np.ndarray, got: np.ndarray) -> tuple[int, int]:
    """(mismatching rows, tied rows) of argmax over the last axis."""
    top2 = np.sort(ref, axis=1)[:, -2:]
    tie = (top2[:, 1] - top2[:, 0]) < TIE if ref.shape[1] > 1 else np.zeros(len(ref), bool)
    differ = ref.argmax(1) != got.argmax(1)
    return int((differ & ~tie).sum()), int(tie.sum())


def _ranked_mismatch(ref: np.ndarray, got: np.ndarray, scores: np.ndarray) -> tuple[int, int]:
    """(rows whose ids differ at an untied position, rows with a tie) of (B, k) ranked ids;
    a position is tied when its torch score is within TIE * 10 of a neighbour's."""
    if got.shape != ref.shape:
        raise ExportParityError(f"ranked ids: onnxruntime shape {got.shape} != torch {ref.shape}")
    gap = np.abs(np.diff(scores.astype(np.float64), axis=1)) < TIE * 10  # (B, k - 1)
    tied = np.zeros(ref.shape, dtype=bool)
    tied[:, 1:] |= gap
    tied[:, :-1] |= gap
    differ = ref != got
    return int((differ & ~tied).any(1).sum()), int(tied.any(1).sum())


def check_parity(
    net: JourneyTransformer,
    model_path: str | Path,
    batches: Iterable[dict[str, np.ndarray]],
    atol: float = 1e-4,
) -> ParityReport:
    """Compare torch and onnxruntime (with the predictor's session settings) on ``batches``."""
    session = make_session(model_path, "cpu")
    names = list(net.output_names)
    of_kind = {k: [o.name for o in net.outputs if o.kind == k] for k in (DISTRIBUTION, RANKED_IDS, RANKED_SCORES)}
    classes = of_kind[DISTRIBUTION]
    # Ranked ids (next items) are compared through their scores: a near-tie may swap places.
    ranked = dict(zip(of_kind[RANKED_IDS], of_kind[RANKED_SCORES], strict=True))
    compared = (*classes, *ranked)
    report = ParityReport(
        atol=atol,
        outputs=net.outputs,
        max_abs_diff=dict.fromkeys(names, 0.0),
        max_rel_diff=dict.fromkeys(names, 0.0),
        top1_mismatches=dict.fromkeys(compared, 0),
        ties=dict.fromkeys(compared, 0),
    )
    # tasks with an output whose rounding follows other amounts (Task.parity_scale): their raw
    # head outputs are needed too, which costs a second forward pass, so only for them
    scaled = [t for t in net.tasks if type(t).parity_scale is not Task.parity_scale]
    for inputs in batches:
        ref = torch_outputs(net, inputs)
        scale = {}
        if scaled:
            with torch.no_grad():
                raw = net.eval()(*(torch.from_numpy(inputs[n]) for n in MODEL_INPUTS)).raw
            scale = {k: v.numpy() for t in scaled for k, v in t.parity_scale(raw[t.name]).items()}
        got = dict(zip(names, session.run(names, inputs), strict=True))
        report.shapes.append(tuple(int(x) for x in inputs["categorical"].shape[:2]))
        report.rows += len(inputs["lengths"])
        # ids: equal wherever their scores are not tied
        counts = {n: _ranked_mismatch(ref[n], got[n], ref[s]) for n, s in ranked.items()}
        for name in (n for n in names if n not in ranked):
            if got[name].shape != ref[name].shape:
                raise ExportParityError(
                    f"{name}: onnxruntime shape {got[name].shape} != torch {ref[name].shape}"
                )
            diff = np.abs(got[name].astype(np.float64) - ref[name])
            rel = diff / np.maximum(1.0, scale.get(name, np.abs(ref[name])))
            report.max_abs_diff[name] = max(report.max_abs_diff[name], float(np.max(diff, initial=0.0)))
            report.max_rel_diff[name] = max(report.max_rel_diff[name], float(np.max(rel, initial=0.0)))
            if np.isnan(diff).any():
                report.max_abs_diff[name] = report.max_rel_diff[name] = float("nan")
        counts |= {n: _top1_mismatch(ref[n], got[n]) for n in classes}
        for name, (mismatch, ties) in counts.items():
            report.top1_mismatches[name] += mismatch
            report.ties[name] += ties
    return report
