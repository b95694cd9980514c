"""The predictor's golden check (inference/verify.py): a graph that does not reproduce the
bundle's golden outputs on this runtime never scores. A wrong graph is made here by moving the
recorded outputs the graph is held to (the real wrong-kernel runtimes are in
tests/integration/test_runtime_matrix.py)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from journeyformer.errors import RuntimeSetupError
from journeyformer.inference import verify
from journeyformer.inference.bundle import Bundle, load_bundle
from journeyformer.inference.runner import OnnxRunner
from journeyformer.inference.session import make_session


def _tampered(source: Path, tmp_path: Path, edit, tag: str) -> Bundle:
    """A copy of the bundle whose golden.json went through ``edit`` (a fresh spec checksum, so
    nothing remembered for the original applies)."""
    out = tmp_path / tag
    shutil.copytree(source, out)
    golden = json.loads((out / "golden.json").read_text())
    edit(golden)
    (out / "golden.json").write_text(json.dumps(golden))
    spec = {**load_bundle(source).spec, "spec_sha256": f"tampered-{tag}"}
    return Bundle(out, spec)


def _shift_churn(outputs: dict, by: float) -> None:
    outputs["churn_probability"] = [v + by for v in outputs["churn_probability"]]


def test_every_graph_of_a_fresh_export_passes_on_this_runtime(quantized_bundle):
    bundle = load_bundle(quantized_bundle)
    for precision in ("fp32", "int8"):
        for graph in bundle.graphs(precision):
            session = make_session(bundle.model_path(precision, graph), "cpu")
            check = verify.check_graph(bundle, precision, graph, session)
            assert check is not None and check.ok, check
            assert check.excess < 0.5  # well inside: the tolerance is not tuned to the edge


def test_a_graph_off_by_more_than_the_tolerance_is_dropped_with_a_warning(
    quantized_bundle, tmp_path, caplog
):
    # The fused int8 graph is held to its own recorded outputs: move them by 5e-3 (the size
    # of the wrong fused kernels' error on onnxruntime < 1.21).
    bundle = _tampered(
        quantized_bundle, tmp_path, lambda g: _shift_churn(g["int8_outputs"]["fused"], 5e-3), "int8"
    )
    with caplog.at_level(logging.WARNING, logger="journeyformer.inference.runner"):
        runner = OnnxRunner(bundle, precision="int8", graph="auto", threads=1)
    assert (runner.precision, runner.graph) == ("int8", "plain")
    (warning,) = [r.getMessage() for r in caplog.records if "golden outputs" in r.getMessage()]
    assert "fused int8 graph on onnxruntime" in warning
    assert "largest difference 0.005 in churn_probability" in warning
    assert "measured correct from onnxruntime 1.21.0" in warning
    with pytest.raises(RuntimeSetupError, match="graph=fused was pinned.*fused int8 graph"):
        OnnxRunner(bundle, precision="int8", graph="fused", threads=1)


def test_no_graph_that_reproduces_the_golden_outputs_is_an_error(quantized_bundle, tmp_path):
    bundle = _tampered(quantized_bundle, tmp_path, lambda g: _shift_churn(g["outputs"], 1e-3), "fp32")
    with pytest.raises(RuntimeSetupError, match="no graph of this bundle reproduces"):
        OnnxRunner(bundle, precision="fp32", threads=1)


def test_a_difference_inside_the_tolerance_passes(quantized_bundle, tmp_path):
    # 1e-4 * |churn| + 1e-6 is allowed; half of the smallest allowance is inside it.
    def edit(g):
        smallest = min(abs(v) for v in g["outputs"]["churn_probability"])
        _shift_churn(g["outputs"], 0.5 * (1e-6 + 1e-4 * smallest))

    bundle = _tampered(quantized_bundle, tmp_path, edit, "inside")
    assert OnnxRunner(bundle, precision="fp32", graph="plain", threads=1).graph == "plain"


def test_a_bundle_without_golden_int8_outputs_runs_unverified_with_a_warning(
    quantized_bundle, tmp_path, caplog
):
    bundle = _tampered(quantized_bundle, tmp_path, lambda g: g.pop("int8_outputs"), "old")
    with caplog.at_level(logging.WARNING, logger="journeyformer.inference.verify"):
        runner = OnnxRunner(bundle, precision="int8", graph="plain", threads=1)
    assert runner.precision == "int8"
    assert any("not verified" in r.getMessage() for r in caplog.records)
