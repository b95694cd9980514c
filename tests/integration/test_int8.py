"""int8: which products are quantized (export/quantize.py), what export records, and when the
predictor picks int8 by itself (inference/choice.py, precision=auto)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import onnx
import pytest

from journeyformer.errors import ConfigError
from journeyformer.export.onnx import random_inputs
from journeyformer.export.quantize import AGREEMENT_BAR, quantize_int8
from journeyformer.inference import choice
from journeyformer.inference.bundle import Bundle, load_bundle
from journeyformer.inference.runner import OnnxRunner

QUANTIZED_OPS = ("MatMulInteger", "DynamicQuantizeMatMul", "QAttention")


@pytest.fixture(scope="module")
def int8_bundle(quantized_bundle):
    return quantized_bundle


def _ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_only_the_per_event_products_are_quantized(default_net, onnx_graphs, tmp_path):
    """Default model (2 blocks): the first block's QKV, output and two MLP products and the
    last block's key/value projection run at every event and become int8; the last block's
    one-query products, the context MLP and the heads (Gemm) stay fp32, in both graphs."""
    net = default_net
    plain, fused, count = onnx_graphs(net, True)
    assert count.complete
    full_blocks = net.cfg.n_layers - 1
    for source, qattention in ((plain, 0), (fused, full_blocks)):
        before = _ops(source)
        after = _ops(quantize_int8(source, tmp_path / f"{source.stem}.int8.onnx"))
        quantized = sum(after[op] for op in QUANTIZED_OPS)
        assert quantized == 4 * full_blocks + 1, after
        assert after["QAttention"] == qattention and after["Attention"] == 0
        # Everything else stays fp32 (pre-processing writes Gemm as MatMul + Add): the context
        # MLP and heads, the one-query block's products, the numeric projection (K < 16).
        products = before["MatMul"] + before["Gemm"]
        assert after["MatMul"] + after["Gemm"] == products - (quantized - qattention)
        assert after["MultiHeadAttention"] == before["MultiHeadAttention"]


def test_int8_outputs_are_close_to_fp32_but_not_identical(default_net, onnx_graphs, tmp_path):
    from journeyformer.export.onnx import torch_outputs

    plain, _, _ = onnx_graphs(default_net, True)
    int8 = quantize_int8(plain, tmp_path / "model.int8.onnx")
    import onnxruntime as ort

    session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    inputs = random_inputs(default_net.cfg, 32, 20, seed=1)
    got = dict(zip(names, session.run(names, inputs), strict=True))
    ref = torch_outputs(default_net, inputs)
    diff = np.abs(got["next_action_probs"] - ref["next_action_probs"]).max()
    assert 0 < diff < 0.05


def test_export_writes_both_int8_graphs_and_records_their_agreement(int8_bundle):
    bundle = load_bundle(int8_bundle)
    assert bundle.graphs("int8") == ["plain", "fused"]
    assert bundle.spec["onnx"]["files"]["fused_int8"] == "model.fused.int8.onnx"
    report = json.loads((int8_bundle / "export_report.json").read_text())
    for graph, key in (("plain", "int8"), ("fused", "int8_fused")):
        recorded, compared = bundle.int8_agreement(graph), report[key]
        assert recorded["rows"] == compared["rows"] > 0
        assert recorded["top1_agreement_min"] == min(compared["top1_agreement"].values())
        worst = max(abs(h["diff"]) for h in compared["headline"].values())
        assert recorded["passes"] == (
            recorded["top1_agreement_min"] >= AGREEMENT_BAR["top1_agreement"]
            and worst <= AGREEMENT_BAR["headline_abs_diff"]
        )


def _with_agreement(bundle: Bundle, passes: bool | None) -> Bundle:
    """The bundle as if export had recorded int8 meeting the bar (True), missing it (False) or
    nothing (None, a bundle exported before this was recorded)."""
    onnx_spec = dict(bundle.spec["onnx"])
    if passes is None:
        onnx_spec.pop("int8_agreement", None)
    else:
        onnx_spec["int8_agreement"] = {
            g: {**a, "passes": passes} for g, a in onnx_spec["int8_agreement"].items()
        }
    # a new checksum: the runner remembers its choice per bundle spec
    return replace(bundle, spec={**bundle.spec, "onnx": onnx_spec, "spec_sha256": f"test-{passes}"})


def test_auto_precision_runs_int8_only_where_export_says_it_agrees(int8_bundle, monkeypatch, caplog):
    monkeypatch.setattr(choice, "_CHOSEN", {})
    bundle = load_bundle(int8_bundle)
    with caplog.at_level("INFO", logger="journeyformer.inference.runner"):
        auto = OnnxRunner(_with_agreement(bundle, True), precision="auto", threads=1)
    assert set(auto.graph_timings_ms) == {"plain fp32", "fused fp32", "plain int8", "fused int8"}
    assert auto.graph_timings_ms[f"{auto.graph} {auto.precision}"] == min(auto.graph_timings_ms.values())
    assert f"onnxruntime model: {auto.graph} {auto.precision}" in caplog.text
    for passes in (False, None):
        fp32_only = OnnxRunner(_with_agreement(bundle, passes), precision="auto", threads=1)
        assert set(fp32_only.graph_timings_ms) == {"plain fp32", "fused fp32"}
        assert fp32_only.precision == "fp32"
    assert choice.candidates(_with_agreement(bundle, True), "auto", "auto", "cuda") == [
        ("fp32", "plain"),
        ("fp32", "fused"),
    ]


def test_int8_can_be_pinned_and_really_runs_the_int8_file(int8_bundle, caplog):
    bundle = _with_agreement(load_bundle(int8_bundle), False)
    inputs = random_inputs(_cfg(bundle), 16, 12, seed=2)
    with caplog.at_level("INFO", logger="journeyformer.inference.runner"):
        pinned = OnnxRunner(bundle, precision="int8", graph="fused", threads=1)
    assert (pinned.precision, pinned.graph, pinned.graph_timings_ms) == ("int8", "fused", {})
    assert "int8 fused graph: top-1 agreement with fp32" in caplog.text
    fp32 = OnnxRunner(bundle, precision="fp32", graph="fused", threads=1)
    got, ref = pinned.run(inputs), fp32.run(inputs)
    assert 0 < np.abs(got["next_action_probs"] - ref["next_action_probs"]).max() < 0.05
    with pytest.raises(ConfigError, match="precision="):
        OnnxRunner(bundle, precision="int4")


def _cfg(bundle: Bundle):
    from journeyformer.model.config import ModelConfig

    return ModelConfig(**bundle.spec["model"])
