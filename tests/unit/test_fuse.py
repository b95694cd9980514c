"""Fused attention graph (export/fuse.py) and the predictor's choice of graph (inference/choice.py)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import polars as pl
import pytest

from journeyformer import Predictor
from journeyformer.errors import ConfigError
from journeyformer.export.fuse import MS_DOMAIN, fuse_attention
from journeyformer.export.onnx import export_onnx, random_inputs, torch_outputs
from journeyformer.inference import choice
from journeyformer.inference.bundle import load_bundle
from journeyformer.inference.runner import OnnxRunner
from journeyformer.model.checkpoint import load_network

SHAPES = [(1, 1), (2, 64), (9, 3), (33, 17)]


def _run(path, inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


@pytest.mark.parametrize("last_position_only", [True, False])
def test_fused_graph_matches_torch(tiny_run, tmp_path, last_position_only):
    """Full blocks become Attention, the last-position block MultiHeadAttention; outputs equal
    torch's (and the plain graph's) on new shapes with mixed lengths."""
    net = load_network(tiny_run.best_checkpoint)
    plain = export_onnx(net, tmp_path / "model.onnx", last_position_only=last_position_only)
    count = fuse_attention(plain, tmp_path / "fused.onnx", net.cfg.n_heads)
    blocks = net.cfg.n_layers
    assert (count.attention, count.one_query) == (
        (blocks - 1, 1) if last_position_only else (blocks, 0)
    )
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node)
    assert ops["Attention"] == count.attention and ops["MultiHeadAttention"] == count.one_query
    assert ops["Softmax"] < Counter(n.op_type for n in onnx.load(str(plain)).graph.node)["Softmax"]
    for batch, seq_len in SHAPES:
        inputs = random_inputs(net.cfg, batch, seq_len, seed=batch + seq_len)
        ref, got = torch_outputs(net, inputs), _run(tmp_path / "fused.onnx", inputs)
        for name in net.output_names:
            np.testing.assert_allclose(got[name], ref[name], atol=1e-4, rtol=1e-5, err_msg=name)


def test_a_wrong_fusion_is_caught(tiny_run, tmp_path):
    """The comparison above can fail: attention without the causal flag changes the outputs."""
    net = load_network(tiny_run.best_checkpoint)
    plain = export_onnx(net, tmp_path / "model.onnx", last_position_only=False)
    fuse_attention(plain, tmp_path / "fused.onnx", net.cfg.n_heads)
    model = onnx.load(str(tmp_path / "fused.onnx"))
    for node in model.graph.node:
        if node.domain == MS_DOMAIN:
            for attr in node.attribute:
                if attr.name == "unidirectional":
                    attr.i = 0
    onnx.save(model, str(tmp_path / "acausal.onnx"))
    inputs = random_inputs(net.cfg, 16, 20, seed=0)
    ref, got = torch_outputs(net, inputs), _run(tmp_path / "acausal.onnx", inputs)
    assert max(np.abs(got[n] - ref[n]).max() for n in net.output_names) > 1e-3


def test_bundle_has_the_fused_graph_with_its_parity(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    assert bundle.graphs() == ["plain", "fused"]
    assert bundle.graphs("int8") == ["plain"]
    report = json.loads((tiny_bundle / "export_report.json").read_text())
    assert report["parity_fused"]["ok"]
    assert bundle.spec["onnx"]["files"]["fused"] == "model.fused.onnx"
    with pytest.raises(ConfigError, match="fp32 only"):
        bundle.model_path("int8", "fused")


def test_runner_picks_a_graph_by_probe_and_can_be_pinned(tiny_bundle, caplog, monkeypatch):
    bundle = load_bundle(tiny_bundle)
    monkeypatch.setattr(choice, "_CHOSEN", {})
    with caplog.at_level("INFO", logger="journeyformer.inference.runner"):
        auto = OnnxRunner(bundle, threads=1)
    assert auto.graph in ("plain", "fused")
    assert set(auto.graph_timings_ms) == {"plain", "fused"}
    assert auto.graph_timings_ms[auto.graph] == min(auto.graph_timings_ms.values())
    assert f"onnxruntime graph: {auto.graph}" in caplog.text
    # Remembered for this process: a second runner does not probe again.
    assert OnnxRunner(bundle, threads=1).graph_timings_ms == {}
    for graph in ("plain", "fused"):
        pinned = OnnxRunner(bundle, threads=1, graph=graph)
        assert (pinned.graph, pinned.graph_timings_ms) == (graph, {})
    with pytest.raises(ConfigError, match="graph="):
        OnnxRunner(bundle, graph="fastest")


def test_fastest_takes_the_lowest_median():
    slow_calls = []

    def slow(inputs):
        slow_calls.append(1)
        sum(range(20000))

    best, ms = choice.fastest({"slow": slow, "fast": lambda inputs: None}, {}, rounds=3)
    assert best == "fast" and ms["fast"] < ms["slow"] and len(slow_calls) == 4


def test_predictions_equal_on_either_graph(tiny_bundle, events_path):
    events = pl.read_parquet(events_path)
    some = events.filter(pl.col("customer_id").is_in(events["customer_id"].unique().head(40).implode()))
    plain = Predictor.load(tiny_bundle, graph="plain", threads=1).predict(some)
    fused = Predictor.load(tiny_bundle, graph="fused", threads=1).predict(some)
    assert plain.columns == fused.columns and plain.height == fused.height > 0
    for name, dtype in plain.schema.items():
        if dtype.is_float():
            np.testing.assert_allclose(fused[name].to_numpy(), plain[name].to_numpy(), rtol=1e-5, atol=1e-5)
        elif not isinstance(dtype, pl.List):
            assert fused[name].to_list() == plain[name].to_list(), name
