"""Scoring is a pure function of a partition: any split by customer gives the job's answers,
and the torch and onnxruntime runners agree on the same partition."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from journeyformer.data.events.load import scan_events
from journeyformer.inference.bundle import load_bundle
from journeyformer.inference.local import predict_events
from journeyformer.inference.partition import score_partition
from journeyformer.inference.runner import OnnxRunner
from journeyformer.model.run import load_run_network
from journeyformer.model.runner import TorchRunner


def test_partitions_by_customer_reproduce_the_job(tiny_bundle, tiny_run, events_path, tmp_path):
    bundle = load_bundle(tiny_bundle)
    schema = bundle.schema()
    lf, _ = scan_events(events_path, schema)
    as_of = lf.select(pl.col("timestamp").max()).collect().item()
    job = predict_events(bundle, events_path, tmp_path / "p.parquet", progress=False)
    runner = OnnxRunner(bundle)
    parts = [
        score_partition(
            lf.filter(pl.col("customer_id") % 3 == k).collect(), bundle, schema, job.as_of, runner
        )
        for k in range(3)
    ]
    assert job.as_of == as_of
    got = pl.concat([p.predictions for p in parts]).sort("customer_id")
    want = pl.read_parquet(job.output).sort("customer_id")
    assert got.columns == want.columns and got.height == want.height == job.n_scored
    assert got["customer_id"].to_list() == want["customer_id"].to_list()
    np.testing.assert_allclose(got["churn_probability"], want["churn_probability"], atol=1e-6)
    assert sum(p.n_rejected for p in parts) == job.n_rejected
    assert sum(p.n_customers for p in parts) == job.n_customers
    # torch on the same partition, through the same function
    torch_part = score_partition(
        lf.filter(pl.col("customer_id") % 3 == 0).collect(),
        bundle,
        schema,
        job.as_of,
        TorchRunner(load_run_network(tiny_run.run_dir)[0]),
    )
    onnx_part = parts[0]
    assert torch_part.predictions["customer_id"].to_list() == onnx_part.predictions["customer_id"].to_list()
    for col in ("churn_probability", "spend_probability", "stage_probability_churned"):
        np.testing.assert_allclose(torch_part.predictions[col], onnx_part.predictions[col], atol=1e-4)
    assert (torch_part.predictions["next_action"] == onnx_part.predictions["next_action"]).mean() > 0.99


def test_spark_scorer_on_arrow_partitions_matches_the_job(tiny_bundle, events_path, tmp_path):
    """The function a Spark job maps over its partitions (mapInArrow), fed the same Arrow
    batches Spark would pass: every customer once, the job's numbers (Spark itself is not run
    here; README "Spark")."""
    from journeyformer.inference.spark import (
        REJECT_REASON,
        arrow_scorer,
        output_schema,
        spark_schema,
    )

    job = predict_events(tiny_bundle, events_path, tmp_path / "p.parquet", progress=False)
    scorer = arrow_scorer(str(tiny_bundle), job.as_of)
    raw = pl.read_parquet(events_path)
    out = pl.concat(
        [pl.from_arrow(pa.Table.from_batches(list(scorer(iter(raw.filter(pl.col("customer_id") % 3 == k)
                                                              .to_arrow().to_batches(max_chunksize=500))))))
         for k in range(3)]
    )  # fmt: skip
    assert out.schema == output_schema(str(tiny_bundle))
    batch = next(scorer(iter(raw.head(50).to_arrow().to_batches())))
    assert not any(pa.types.is_large_list(t) or pa.types.is_large_string(t) for t in batch.schema.types)  # Spark reads neither
    assert out["customer_id"].is_unique().all() and out.height == job.n_customers
    scored = out.filter(pl.col(REJECT_REASON).is_null()).drop(REJECT_REASON).sort("customer_id")
    want = pl.read_parquet(job.output).sort("customer_id")
    assert scored["customer_id"].equals(want["customer_id"])
    np.testing.assert_allclose(scored["churn_probability"], want["churn_probability"], atol=1e-6)
    assert scored["next_action"].equals(want["next_action"])
    assert out[REJECT_REASON].drop_nulls().len() == job.n_rejected
    assert "`customer_id` bigint" in spark_schema(str(tiny_bundle)) and "array<string>" in spark_schema(str(tiny_bundle))
