"""The README's Spark recipe run by Spark itself, in local mode: ``mapInArrow`` around the
same per-partition function gives the local job's customers and numbers."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import polars as pl
import pytest

from journeyformer.inference.local import predict_events
from journeyformer.inference.spark import REJECT_REASON, arrow_scorer, spark_schema

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:  # pyspark is installed by [dev]; the JVM comes from the OS
        pytest.skip("no Java runtime on this machine: Spark cannot start (pyspark needs Java 17+)")
    from pyspark.sql import SparkSession

    mp = pytest.MonkeyPatch()
    mp.setenv("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this environment
    mp.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
    session = (SparkSession.builder.master("local[2]").appName("journeyformer-test")
               .config("spark.sql.shuffle.partitions", "3").config("spark.ui.enabled", "false")
               .config("spark.driver.memory", "1g").getOrCreate())  # fmt: skip
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    mp.undo()


def test_spark_map_in_arrow_gives_the_local_jobs_customers_and_numbers(spark, tiny_bundle, events_path, tmp_path):
    job = predict_events(tiny_bundle, events_path, tmp_path / "local.parquet", progress=False)
    events = spark.read.parquet(str(events_path))
    scored = events.repartition(3, "customer_id").mapInArrow(
        arrow_scorer(str(tiny_bundle), as_of=job.as_of), spark_schema(str(tiny_bundle))
    )
    scored.write.parquet(str(tmp_path / "spark"))
    got = pl.read_parquet(tmp_path / "spark" / "*.parquet")
    assert got["customer_id"].is_unique().all() and got.height == job.n_customers
    assert got[REJECT_REASON].drop_nulls().len() == job.n_rejected
    ok = got.filter(pl.col(REJECT_REASON).is_null()).sort("customer_id")
    want = pl.read_parquet(job.output).sort("customer_id")
    assert ok["customer_id"].equals(want["customer_id"])
    for col in ("churn_probability", "expected_value"):
        np.testing.assert_allclose(ok[col], want[col], rtol=1e-5, atol=1e-6)
    assert ok["next_action"].equals(want["next_action"]) and ok["stage"].equals(want["stage"])
