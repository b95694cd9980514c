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
from journeyformer.export import fuse
from journeyformer.export.bundle import build_bundle, parity_batches
from journeyformer.export.fuse import MS_DOMAIN, fuse_attention
from journeyformer.export.onnx import check_parity, random_inputs, torch_outputs
from journeyformer.inference import choice
from journeyformer.inference.bundle import BundleError, load_bundle
from journeyformer.inference.runner import OnnxRunner
from journeyformer.model.checkpoint import load_network
from journeyformer.model.network import JourneyTransformer

SHAPES = [(1, 1), (2, 64), (9, 3), (33, 17)]
ATOL = 1e-4  # build_bundle's parity tolerance


def _run(path, inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


@pytest.fixture(params=["tiny_trained", "default_config"])
def net(request, tiny_run, default_net) -> JourneyTransformer:
    return (
        load_network(tiny_run.best_checkpoint) if request.param == "tiny_trained" else default_net
    )


@pytest.mark.parametrize("last_position_only", [True, False])
def test_fused_graph_matches_torch(net, onnx_graphs, last_position_only):
    """Every block fused (full blocks Attention, the last-position block MultiHeadAttention);
    outputs equal torch's and the plain graph's within the bundle's parity tolerance, on new
    shapes with mixed lengths and on the bundle's own parity batches."""
    plain, fused, count = onnx_graphs(net, last_position_only)
    blocks = net.cfg.n_layers
    assert count.complete and (count.attention, count.one_query) == (
        (blocks - 1, 1) if last_position_only else (blocks, 0)
    )
    ops = Counter(n.op_type for n in onnx.load(str(fused)).graph.node)
    assert ops["Attention"] == count.attention and ops["MultiHeadAttention"] == count.one_query
    assert ops["Softmax"] < Counter(n.op_type for n in onnx.load(str(plain)).graph.node)["Softmax"]
    for batch, seq_len in SHAPES:
        inputs = random_inputs(net.cfg, batch, seq_len, seed=batch + seq_len)
        ref, got, base = torch_outputs(net, inputs), _run(fused, inputs), _run(plain, inputs)
        for name in net.output_names:
            np.testing.assert_allclose(got[name], ref[name], atol=ATOL, rtol=1e-5, err_msg=name)
            np.testing.assert_allclose(got[name], base[name], atol=ATOL, rtol=1e-5, err_msg=name)
    assert check_parity(
        net, fused, list(parity_batches(net.cfg, (1, 7, 64), (1, 5, None), 0)), ATOL
    ).ok


def _wrong_acausal(node: onnx.NodeProto) -> None:
    for attr in node.attribute:
        if attr.name == "unidirectional":
            attr.i = 0


def _wrong_heads(node: onnx.NodeProto) -> None:
    for attr in node.attribute:
        if attr.name == "num_heads":
            attr.i //= 2


def _wrong_unmasked(node: onnx.NodeProto) -> None:
    if node.op_type == "MultiHeadAttention":
        node.input[4] = ""  # no key padding mask


# Each wrong fusion, and the export it is checked on. Why the default (2-block) model: the
# outputs are read at each customer's last real event, which under causal attention sees every
# real event and no padding; so a causal flag dropped from a 1-block model (the tiny test model)
# changes no output at all, and neither does a dropped padding mask while attention stays
# causal. Dropped causality shows through the second block; a dropped mask shows in the
# one-query block, whose query sees the padding keys unless masked.
WRONG = {
    "acausal": (_wrong_acausal, False),
    "half_the_heads": (_wrong_heads, False),
    "one_query_unmasked": (_wrong_unmasked, True),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_a_wrong_fusion_is_caught(default_net, onnx_graphs, tmp_path, wrong):
    """The bundle's parity check can fail on a fused graph: each deliberately wrong fusion of
    the default model differs from torch by well over its tolerance."""
    net, (corrupt, last_position_only) = default_net, WRONG[wrong]
    _, fused, count = onnx_graphs(net, last_position_only)
    assert count.complete
    model = onnx.load(str(fused))
    fused_nodes = [n for n in model.graph.node if n.domain == MS_DOMAIN]
    for node in fused_nodes:
        corrupt(node)
    onnx.save(model, str(tmp_path / "wrong.onnx"))
    parity = check_parity(
        net,
        tmp_path / "wrong.onnx",
        list(parity_batches(net.cfg, (1, 7, 64), (1, 5, None), 0)),
        ATOL,
    )
    assert not parity.ok
    assert max(parity.max_abs_diff.values()) > 5 * ATOL, parity.max_abs_diff


def test_a_fusion_that_matches_not_every_block_writes_nothing(
    default_net, onnx_graphs, tmp_path, monkeypatch, caplog
):
    """All or nothing: a pattern drift that leaves a block unmatched (here: the one-query block)
    or every block (here: another value path) writes no fused file and warns."""
    net = default_net
    plain, _, _ = onnx_graphs(net, True)
    monkeypatch.setattr(fuse, "_one_query_block", lambda g, split, n_heads: None)
    with caplog.at_level("WARNING", logger="journeyformer.export.fuse"):
        count = fuse_attention(plain, tmp_path / "partial.onnx", net.cfg.n_heads, net.cfg.n_layers)
    assert (count.total, count.complete) == (net.cfg.n_layers - 1, False)
    assert not (tmp_path / "partial.onnx").exists()
    assert (
        f"matched {net.cfg.n_layers - 1} of the model's {net.cfg.n_layers} attention blocks"
        in caplog.text
    )
    monkeypatch.setattr(fuse, "_V_PATH", ("Reshape", "Transpose", "Einsum"))
    count = fuse_attention(plain, tmp_path / "none.onnx", net.cfg.n_heads, net.cfg.n_layers)
    assert count.to_dict() == {
        "blocks": net.cfg.n_layers,
        "attention": 0,
        "one_query": 0,
        "written": False,
    }
    assert not (tmp_path / "none.onnx").exists()


def test_a_bundle_without_a_match_runs_the_plain_graph(tiny_run, tmp_path, monkeypatch, caplog):
    """When fusion matches nothing the export still succeeds, says so in its report, and the
    predictor runs the plain graph and logs why."""
    monkeypatch.setattr(fuse, "_V_PATH", ("Reshape", "Transpose", "Einsum"))
    build_bundle(tiny_run.best_checkpoint, tmp_path / "bundle")
    report = json.loads((tmp_path / "bundle" / "export_report.json").read_text())
    assert report["fused"]["written"] is False and "parity_fused" not in report
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.graphs() == ["plain"] and "fused" not in bundle.spec["onnx"]["files"]
    with caplog.at_level("INFO", logger="journeyformer.inference.runner"):
        runner = OnnxRunner(bundle, threads=1)
    assert runner.graph == "plain" and "onnxruntime graph: plain" in caplog.text


def test_bundle_has_the_fused_graph_with_its_parity(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    assert bundle.graphs() == ["plain", "fused"]
    assert bundle.graphs("int8") == []  # exported without quantize=true
    report = json.loads((tiny_bundle / "export_report.json").read_text())
    assert report["parity_fused"]["ok"]
    assert (
        report["fused"]["written"] and report["fused"]["blocks"] == bundle.spec["model"]["n_layers"]
    )
    assert bundle.spec["onnx"]["files"]["fused"] == "model.fused.onnx"
    with pytest.raises(BundleError, match="quantize=true"):
        bundle.model_path("int8", "fused")


def test_runner_picks_a_graph_by_probe_and_can_be_pinned(tiny_bundle, caplog, monkeypatch):
    bundle = load_bundle(tiny_bundle)
    monkeypatch.setattr(choice, "_CHOSEN", {})
    with caplog.at_level("INFO", logger="journeyformer.inference.runner"):
        auto = OnnxRunner(bundle, threads=1)
    assert auto.graph in ("plain", "fused")
    assert set(auto.graph_timings_ms) == {"plain fp32", "fused fp32"}
    assert auto.graph_timings_ms[f"{auto.graph} fp32"] == min(auto.graph_timings_ms.values())
    assert f"onnxruntime model: {auto.graph} fp32" in caplog.text
    # Remembered for this process: a second runner does not probe again.
    assert OnnxRunner(bundle, threads=1).graph_timings_ms == {}
    for graph in ("plain", "fused"):
        pinned = OnnxRunner(bundle, threads=1, graph=graph)
        assert (pinned.graph, pinned.graph_timings_ms) == (graph, {})
    with pytest.raises(ConfigError, match="graph="):
        OnnxRunner(bundle, graph="fastest")


def test_predictions_equal_on_either_graph(tiny_bundle, events_path):
    events = pl.read_parquet(events_path)
    some = events.filter(
        pl.col("customer_id").is_in(events["customer_id"].unique().head(40).implode())
    )
    plain = Predictor.load(tiny_bundle, graph="plain", threads=1).predict(some)
    fused = Predictor.load(tiny_bundle, graph="fused", threads=1).predict(some)
    assert plain.columns == fused.columns and plain.height == fused.height > 0
    for name, dtype in plain.schema.items():
        if dtype.is_float():
            np.testing.assert_allclose(
                fused[name].to_numpy(), plain[name].to_numpy(), rtol=1e-5, atol=1e-5
            )
        elif not isinstance(dtype, pl.List):
            assert fused[name].to_list() == plain[name].to_list(), name
