"""engine=ray: the same customers and numbers as engine=local, and a worker that dies
mid-run is retried with nothing lost or doubled. One local Ray (2 CPUs) for the module."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

ray = pytest.importorskip("ray", reason="the [ray] extra (installed by make venv via [dev])")

from journeyformer.errors import ConfigError  # noqa: E402
from journeyformer.inference.job import predict_from_config  # noqa: E402
from journeyformer.inference.ray_driver import (  # noqa: E402
    PartitionScorer,
    check_cpus,
    predict_events_ray,
    size_actors,
)
from journeyformer.publish import verify_manifest  # noqa: E402

pytestmark = pytest.mark.slow
CHUNK = 400  # customers per partition: several partitions from the session's 1,500 customers
# Half a CPU per scoring actor: the 2 CPUs of the test's Ray leave one for reading and shuffling.


@pytest.fixture(scope="module")
def local_ray():
    for attempt in range(3):  # a raylet can die while starting on an overloaded machine
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:  # noqa: BLE001 - retried, then raised
            ray.shutdown()
            if attempt == 2:
                raise
    yield
    gc.collect()  # datasets and object refs released while Ray is still up
    ray.shutdown()
    # A late call into Ray (a finaliser at exit) must not start a second local Ray.
    from ray._private import auto_init_hook

    auto_init_hook.enable_auto_connect = False


@pytest.fixture(scope="module")
def local_result(tiny_bundle, events_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "p.parquet"
    cfg = {"bundle": str(tiny_bundle), "data": {"path": str(events_path)}, "output": str(out),
           "chunk_customers": CHUNK, "progress": False}  # fmt: skip
    return predict_from_config(cfg)


def _ray_frames(out: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    record = verify_manifest(out / "manifest.json")  # every file there with its checksum
    parts = [out / e["path"] for k, e in record["files"].items() if k.startswith("part-")]
    return pl.concat([pl.read_parquet(p) for p in parts]), pl.read_parquet(out / "rejects.parquet")


def test_ray_gives_the_customers_and_numbers_of_the_local_engine(
    local_ray, local_result, tiny_bundle, events_path, tmp_path
):
    out = tmp_path / "ray_out"
    cfg = {"bundle": str(tiny_bundle), "data": {"path": str(events_path)}, "output": str(out),
           "chunk_customers": CHUNK, "engine": {"name": "ray", "num_workers": 2, "num_cpus": 0.5}}  # fmt: skip
    result = predict_from_config(cfg)
    got, got_rej = _ray_frames(out)
    want = pl.read_parquet(local_result.output)
    want_rej = pl.read_parquet(local_result.rejects)
    assert result.n_chunks == local_result.n_chunks > 2
    assert (result.n_scored, result.n_rejected, result.n_events) == (
        local_result.n_scored, local_result.n_rejected, local_result.n_events)  # fmt: skip
    assert got["customer_id"].is_unique().all() and got.height == want.height
    got, want = got.sort("customer_id"), want.sort("customer_id")
    assert got["customer_id"].equals(want["customer_id"])
    for col in want.columns:
        if want[col].dtype.is_float():
            np.testing.assert_allclose(got[col], want[col], atol=1e-6, err_msg=col)
        elif isinstance(want[col].dtype, pl.List) and want[col].dtype.inner.is_float():
            # graph=auto: each engine probes which graph is faster (plain or fused attention),
            # and the two agree to float precision, not bit for bit
            np.testing.assert_allclose(got[col].explode(), want[col].explode(), atol=1e-6, err_msg=col)
        elif col != "as_of":
            assert got[col].equals(want[col]), col
    assert got_rej.sort("customer_id").equals(want_rej.sort("customer_id"))
    record = verify_manifest(out / "manifest.json")
    assert record["counts"]["customers"] == local_result.n_customers


class DiesOnce(PartitionScorer):
    """Kills its own worker process the first time it finishes a partition (a marker file
    says it happened), as a crashed machine would."""

    marker: str = ""

    def on_partition(self, chunk: int) -> None:
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(f"died on chunk {chunk}")
            os._exit(1)


def test_a_worker_killed_mid_run_is_retried_and_nothing_is_lost_or_doubled(
    local_ray, local_result, tiny_bundle, events_path, tmp_path
):
    from ray import cloudpickle  # Ray's own copy pickles the actor class

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    DiesOnce.marker = str(tmp_path / "died")
    out = tmp_path / "ray_out"
    result = predict_events_ray(
        tiny_bundle, events_path, out, chunk_customers=CHUNK, scorer=DiesOnce,
        engine={"num_workers": 2, "num_cpus": 0.5, "max_restarts": 2},
    )  # fmt: skip
    assert Path(DiesOnce.marker).exists()  # a worker really died
    got, rejected = _ray_frames(out)
    want = pl.read_parquet(local_result.output)
    assert got.height == want.height == result.n_scored and got["customer_id"].is_unique().all()
    assert set(got["customer_id"]) == set(want["customer_id"])
    assert rejected.height == local_result.n_rejected
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("part-")) == [
        "manifest.json", "rejects.parquet"]  # fmt: skip


def test_an_actor_pool_that_leaves_no_cpu_for_reading_is_refused(caplog):
    """2 actors x 1 CPU on a 2-CPU local Ray: the read tasks would wait forever (seen in
    bench_scale); refused with what to change. On a joined cluster it only warns."""
    starving = {"address": None, "num_workers": 2, "num_cpus": 1}
    with pytest.raises(ConfigError, match=r"num_workers=2 x engine.num_cpus=1 takes 2 of .* 2 CPUs.*lower engine.num_cpus \(e.g. 0.5\)"):
        check_cpus(starving, 2.0)
    check_cpus({**starving, "num_cpus": 0.5}, 2.0)  # one CPU left: fine
    check_cpus({**starving, "address": "auto"}, 2.0)
    assert "would wait forever" in caplog.text and "unless the cluster scales up" in caplog.text


def test_auto_sizes_the_actor_pool_to_the_machine():
    """engine=ray with defaults runs on a 2-core machine: one actor, one CPU left to read."""
    auto = {"address": None, "num_workers": "auto", "num_cpus": 1}
    assert size_actors(auto, 2.0)["num_workers"] == 1
    check_cpus(size_actors(auto, 2.0), 2.0)  # no refusal
    assert size_actors(auto, 16.0)["num_workers"] == 15
    assert size_actors({**auto, "num_cpus": 0.5}, 2.0)["num_workers"] == 2
    assert size_actors({**auto, "num_workers": 3}, 2.0)["num_workers"] == 3  # a number is kept
