"""The per-head choice of the run (:mod:`journeyformer.training.blend`) inside each graph file.

Training picks, for each head, the network, a LightGBM on the network's own inputs, or a blend
``w * network + (1 - w) * booster``. Export converts each used booster to ONNX (onnxmltools,
``ai.onnx.ml`` TreeEnsemble operators) and appends it to every graph of the bundle (plain, fused,
int8), after the network:

    features = concat(context, categorical[:, lengths - 1, action], ..[channel], stage_now)  # (B, S + 3)
    <output> = w * network's <output> + (1 - w) * booster(features)

so the bundle's outputs are the shipped ones in every runtime, and golden.json records them. A
multiclass booster knows only the classes seen in training: a constant (k, width) matrix puts
its probabilities in their columns (0 elsewhere). :func:`blend_parity` checks the combined
graph against the network graph's outputs blended in NumPy with LightGBM's own predictions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

log = logging.getLogger(__name__)

# onnxmltools converts LightGBM at this default-domain opset (its newest); the operators it
# emits for boosters (TreeEnsemble*, Identity, Cast, Mul, Exp) mean the same at opset 18.
BOOSTER_OPSET = 15
ML_DOMAIN = "ai.onnx.ml"


class Heads(NamedTuple):
    """The blended heads (network weight < 1), per task: that weight, the LightGBM booster,
    the output blended and, for a multiclass booster, its classes and the output's width."""

    weights: Mapping[str, float]
    boosters: Mapping[str, Any]
    outputs: Mapping[str, str]
    classes: Mapping[str, list[int]]
    widths: Mapping[str, int]


def features_numpy(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """What the graph computes as the boosters' features, from a padded input batch
    (the same columns as :func:`journeyformer.training.blend.model_features`)."""
    cat, lengths = inputs["categorical"], inputs["lengths"]
    last = cat[np.arange(len(lengths)), lengths - 1].astype(np.float32)  # (B, C)
    channel = last[:, 1] if last.shape[1] > 1 else np.zeros(len(lengths), np.float32)
    return np.column_stack(
        [inputs["context"].astype(np.float32), last[:, 0], channel, inputs["stage_now"].astype(np.float32)]
    ).astype(np.float32)


def booster_model(booster: Any, n_features: int) -> onnx.ModelProto:
    """A LightGBM booster as an ONNX model with input ``features`` (B, n_features)."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    return onnxmltools.convert_lightgbm(
        booster,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        target_opset=BOOSTER_OPSET,
        zipmap=False,
    )


def _needed(graph: onnx.GraphProto, output: str) -> list[onnx.NodeProto]:
    """The nodes ``output`` depends on, in graph order."""
    need, keep = {output}, []
    for node in reversed(graph.node):
        if need.intersection(node.output):
            keep.append(node)
            need.update(node.input)
    return keep[::-1]


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]


def add_blend(path: Path, heads: Heads) -> None:
    """Append the boosters and the blend of each blended task to the graph at ``path``, in
    place."""
    model = onnx.load(str(path))
    graph = model.graph
    dims = {i.name: i.type.tensor_type.shape.dim for i in graph.input}
    assert {"categorical", "lengths", "context", "stage_now"} <= set(dims), list(dims)
    n_cat, n_context = dims["categorical"][2].dim_value, dims["context"][1].dim_value
    p = "blend_"
    const = []

    def c(name: str, value: np.ndarray) -> str:
        const.append(numpy_helper.from_array(np.asarray(value), p + name))
        return p + name

    one, axis1 = c("one", np.array(1, np.int64)), c("axis1", np.array([1], np.int64))
    nodes = [
        helper.make_node("Sub", ["lengths", one], [p + "last"]),  # (B,)
        helper.make_node("Unsqueeze", [p + "last", c("axes12", np.array([1, 2], np.int64))], [p + "last3"]),
        helper.make_node("Shape", ["categorical"], [p + "cat_shape"]),
        helper.make_node("Slice", [p + "cat_shape", c("s0", np.array([0], np.int64)), c("s1", np.array([1], np.int64))], [p + "b"]),
        helper.make_node("Concat", [p + "b", c("one_c", np.array([1, n_cat], np.int64))], [p + "idx_shape"], axis=0),
        helper.make_node("Expand", [p + "last3", p + "idx_shape"], [p + "idx"]),  # (B, 1, C)
        helper.make_node("GatherElements", ["categorical", p + "idx"], [p + "last_cat3"], axis=1),
        helper.make_node("Squeeze", [p + "last_cat3", axis1], [p + "last_cat"]),  # (B, C)
        helper.make_node("Cast", [p + "last_cat"], [p + "last_catf"], to=TensorProto.FLOAT),
    ]
    if n_cat > 1:
        nodes.append(helper.make_node(
            "Slice", [p + "last_catf", c("c0", np.array([0], np.int64)), c("c2", np.array([2], np.int64)), axis1],
            [p + "ids"],
        ))  # fmt: skip
    else:  # no channel column: 0, as model_features does
        nodes.append(helper.make_node("Concat", [p + "last_catf", p + "last_catf"], [p + "ids2"], axis=1))
        nodes.append(helper.make_node("Mul", [p + "ids2", c("keep_first", np.array([1, 0], np.float32))], [p + "ids"]))
    nodes += [
        helper.make_node("Cast", ["stage_now"], [p + "stagef"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", [p + "stagef", axis1], [p + "stage2"]),
        helper.make_node("Concat", ["context", p + "ids", p + "stage2"], [p + "features"], axis=1),
    ]
    graph_outputs = {o.name for o in graph.output}
    for task, w in heads.weights.items():
        name, q = heads.outputs[task], f"{p}{task}_"
        _rename(graph, name, q + "network")
        sub = booster_model(heads.boosters[task], n_context + 3).graph
        prob = sub.output[-1].name  # probabilities (classifiers) or variable (regressors)
        renamed = {i.name: q + i.name for i in sub.initializer}
        renamed.update({o: q + o for n in sub.node for o in n.output})
        renamed["features"] = p + "features"
        for k, node in enumerate(_needed(sub, prob)):
            new = onnx.NodeProto()
            new.CopyFrom(node)
            new.name = f"{q}{k}_{node.op_type}"
            new.input[:] = [renamed.get(i, i) for i in node.input]
            new.output[:] = [renamed.get(o, o) for o in node.output]
            nodes.append(new)
        for init in sub.initializer:
            init.name = renamed[init.name]
            const.append(init)
        booster = renamed[prob]
        if task in heads.classes:  # multiclass: (B, k) -> (B, width) columns of the classes seen
            seen = heads.classes[task]
            spread = np.zeros((len(seen), heads.widths[task]), np.float32)
            spread[np.arange(len(seen)), seen] = 1.0
            nodes.append(helper.make_node("MatMul", [booster, c(f"{task}_spread", spread)], [q + "boost"]))
        elif sub.node[0].op_type == "TreeEnsembleClassifier":  # binary: P(class 1), (B,)
            nodes.append(helper.make_node("Gather", [booster, c(f"{task}_col1", np.array(1, np.int64))], [q + "boost"], axis=1))
        else:  # regression (B, 1) -> (B,)
            nodes.append(helper.make_node("Squeeze", [booster, axis1], [q + "boost"]))
        nodes += [
            helper.make_node("Mul", [q + "network", c(f"{task}_w", np.array(w, np.float32))], [q + "a"]),
            helper.make_node("Mul", [q + "boost", c(f"{task}_1mw", np.array(1 - w, np.float32))], [q + "b"]),
            helper.make_node("Add", [q + "a", q + "b"], [name]),
        ]
        assert name in graph_outputs
    graph.node.extend(nodes)
    graph.initializer.extend(const)
    opsets = {o.domain: o for o in model.opset_import}
    if ML_DOMAIN not in opsets:  # TreeEnsemble* as onnxmltools writes them (ai.onnx.ml 1)
        model.opset_import.append(helper.make_opsetid(ML_DOMAIN, 1))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _outputs(path: Path, batches: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Every output of the graph at ``path`` on each batch."""
    from journeyformer.inference.session import make_session

    session = make_session(path, "cpu")
    names = [o.name for o in session.get_outputs()]
    return [dict(zip(names, session.run(None, b), strict=True)) for b in batches]


def blend_parity(
    blended: Path,
    network: list[dict[str, np.ndarray]],
    batches: list[dict[str, np.ndarray]],
    heads: Heads,
    atol: float = 1e-4,
) -> dict[str, float]:
    """Largest |graph - expected| per blended output over ``batches``, where expected is the
    network graph's outputs (``network``, per batch) blended with LightGBM's own prediction of
    :func:`features_numpy`; raises ValueError beyond ``atol`` (relative for amounts > 1)."""
    worst: dict[str, float] = {}
    for inputs, net, got in zip(batches, network, _outputs(blended, batches), strict=True):
        x = features_numpy(inputs)
        for task, w in heads.weights.items():
            raw = np.asarray(heads.boosters[task].predict(x.astype(np.float64)))
            if task in heads.classes:
                full = np.zeros((len(x), heads.widths[task]))
                full[:, heads.classes[task]] = raw.reshape(len(x), -1)
                raw = full
            name = heads.outputs[task]
            want = w * net[name].astype(np.float64) + (1 - w) * raw
            diff = float((np.abs(got[name] - want) / np.maximum(1.0, np.abs(want))).max())
            worst[name] = max(worst.get(name, 0.0), diff)
            if diff > atol:
                raise ValueError(
                    f"{blended}: the blended {name} differs from network + LightGBM by {diff:.3g} "
                    f"(> {atol}); the booster conversion or the feature extraction is wrong"
                )
    return worst


def blend_bundle(
    tmp: Path, run_dir: Path, entry: Mapping[str, Any], batches: list[dict[str, np.ndarray]]
) -> dict[str, Any]:
    """Put the run's per-head choice (its manifest's ``blend`` entry) into every graph file in
    the bundle directory ``tmp``, checking each against NumPy + LightGBM on ``batches``."""
    from journeyformer.errors import RuntimeSetupError
    from journeyformer.tasks import registry

    weights = {t: float(w) for t, w in entry["weights"].items()}
    blended = {t: w for t, w in weights.items() if w < 1.0}
    if not blended:  # every head is the network alone
        return {"weights": weights, "outputs": {}, "parity": {}}
    try:
        import lightgbm as lgb
        import onnxmltools  # noqa: F401
    except ImportError as err:
        raise RuntimeSetupError(
            f"{run_dir}: the run ships LightGBM in the heads {sorted(blended)} (run.json blend), and "
            f"exporting them needs lightgbm and onnxmltools ({err.name} is missing): "
            "pip install 'journeyformer[baseline]', or retrain with blend=false"
        ) from None
    heads = Heads(
        blended,
        boosters={t: lgb.Booster(model_str=(run_dir / f).read_text()) for t, f in entry["files"].items()},
        outputs={t: registry.get(t).metric_output for t in weights},
        classes={t: list(c) for t, c in entry.get("classes", {}).items()},
        widths={t: int(n) for t, n in entry.get("n_classes", {}).items()},
    )
    parity: dict[str, dict[str, float]] = {}
    for path in sorted(tmp.glob("*.onnx")):
        before = _outputs(path, batches)
        add_blend(path, heads)
        parity[path.name] = blend_parity(path, before, batches, heads)
    log.info("per-head choice in every graph (network weights %s); largest difference from "
             "network + LightGBM: %s", weights, parity)  # fmt: skip
    return {"weights": weights, "outputs": heads.outputs, "parity": parity}
