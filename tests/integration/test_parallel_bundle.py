"""How the onnxruntime runner shares its threads on a real bundle (inference/runner.py
parallel=; the plan itself and batches run at once: tests/unit/test_parallel.py)."""

from __future__ import annotations

import numpy as np
import polars as pl

from journeyformer.inference.bundle import load_bundle
from journeyformer.inference.local import predict_events
from journeyformer.inference.runner import OnnxRunner


def test_runner_sessions_follow_the_plan(tiny_bundle, caplog):
    bundle = load_bundle(tiny_bundle)
    with caplog.at_level("INFO", logger="journeyformer.inference.runner"):
        batches = OnnxRunner(bundle, threads=2, graph="fused")
    assert (batches.parallel, batches.workers) == ("batches", 2)
    assert batches.session.get_session_options().intra_op_num_threads == 1
    assert "onnxruntime parallelism: batches (2 batch(es) at a time, 1 intra-op thread(s) each)" in caplog.text
    operators = OnnxRunner(bundle, threads=2, graph="fused", parallel="operators")
    assert (operators.parallel, operators.workers) == ("operators", 1)
    assert operators.session.get_session_options().intra_op_num_threads == 2


def test_predictions_equal_either_way(tiny_bundle, events_path, tmp_path):
    """The predict job with two batches at a time writes what one batch at a time writes
    (explanations: tests/integration/test_decisions.py)."""
    frames = {}
    for parallel in ("batches", "operators"):
        out = tmp_path / f"{parallel}.parquet"
        result = predict_events(
            tiny_bundle, events_path, out, threads=2, parallel=parallel, batch_size=16, progress=False
        )
        assert result.n_scored > 32  # more than two batches
        frames[parallel] = pl.read_parquet(out)
    a, b = frames["batches"], frames["operators"]
    assert a.columns == b.columns and a["customer_id"].to_list() == b["customer_id"].to_list()
    for name, dtype in a.schema.items():
        if dtype.is_float():
            np.testing.assert_allclose(a[name].to_numpy(), b[name].to_numpy(), rtol=1e-5, atol=1e-6)
        elif not isinstance(dtype, pl.List):
            assert a[name].to_list() == b[name].to_list(), name
