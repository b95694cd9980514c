"""Predictor.load(bundle).predict(events): the same numbers as the predict command."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from journeyformer import Predictor
from journeyformer.errors import EventDataError
from journeyformer.inference.local import predict_events

AS_OF = datetime(2025, 6, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def predictor(tiny_bundle) -> Predictor:
    return Predictor.load(tiny_bundle)


def test_frame_and_path_give_the_job_numbers(predictor, tiny_bundle, events_path, tmp_path):
    predict_events(tiny_bundle, events_path, tmp_path / "job.parquet", as_of=AS_OF, progress=False)
    job = pl.read_parquet(tmp_path / "job.parquet").sort("customer_id")
    from_path = predictor.predict(events_path, as_of="2025-06-01")
    from_frame = predictor.predict(pl.read_parquet(events_path), as_of=AS_OF)
    assert_frame_equal(from_path, job)
    assert_frame_equal(from_frame, job)
    late = pl.read_parquet(tmp_path / "job.rejects.parquet")["customer_id"].sort().to_list()
    assert predictor.last_rejected == late and late


def test_a_few_customers_score_like_in_the_batch(predictor, events_path):
    """The near-real-time use: one customer's events alone give that customer's batch row."""
    events = pl.read_parquet(events_path)
    batch = predictor.predict(events, as_of=AS_OF)
    for cid in batch["customer_id"].sample(3, seed=1).to_list():
        alone = predictor.predict(events.filter(pl.col("customer_id") == cid), as_of=AS_OF)
        expected = batch.filter(pl.col("customer_id") == cid)
        # Another batch shape may change float rounding in the last bits, nothing more.
        assert_frame_equal(alone, expected, check_exact=False, rel_tol=1e-5, abs_tol=1e-6)


def test_no_history_and_bad_input(predictor, events_path):
    events = pl.read_parquet(events_path)
    early = datetime(2000, 1, 1, tzinfo=timezone.utc)
    out = predictor.predict(events.head(50), as_of=early)
    assert out.height == 0 and "churn_probability" in out.columns
    assert len(predictor.last_rejected) == events.head(50)["customer_id"].n_unique()
    with pytest.raises(EventDataError, match="missing column"):
        predictor.predict(events.drop("action"))
    with pytest.raises(TypeError, match="Polars DataFrame"):
        predictor.predict(events.to_dicts())  # type: ignore[arg-type]


def test_small_input_path_gives_the_batch_path_numbers_on_every_customer(predictor, events_path):
    """The NumPy sequences (small inputs) against the Polars ones (the job's), all columns."""
    events = pl.read_parquet(events_path)
    fast = Predictor(predictor.bundle, predictor.runner, small_events=10**9)
    slow = Predictor(predictor.bundle, predictor.runner, small_events=0)
    for as_of in (AS_OF, datetime(2025, 10, 1, tzinfo=timezone.utc)):
        expected = slow.predict(events, as_of=as_of)
        assert expected.height > 500
        assert_frame_equal(fast.predict(events, as_of=as_of), expected, check_exact=False, rel_tol=1e-5, abs_tol=1e-6)
        assert fast.last_rejected == slow.last_rejected
    # groups of 1 and 10 customers, as a service sends them, against their batch rows
    ids = expected["customer_id"].sample(31, seed=2).to_list()
    for group in (ids[:1], ids[1:11], ids[11:]):
        alone = fast.predict(events.filter(pl.col("customer_id").is_in(group)), as_of=as_of)
        assert_frame_equal(alone, expected.filter(pl.col("customer_id").is_in(group)), check_exact=False, rel_tol=1e-5, abs_tol=1e-6)


def test_a_bundle_exported_without_data_says_what_to_re_export_with(predictor, tiny_bundle, events_path, tmp_path, caplog):
    """No reference.json / clusters.json: export says so, predict has no segment or cluster
    column, explain and monitor fail naming data.path."""
    from journeyformer.errors import ConfigError
    from journeyformer.export.decisions import ClusterSettings, add_decision_files
    from journeyformer.inference.bundle import BundleError
    from journeyformer.monitoring.job import monitor_events

    spec: dict = {}
    with caplog.at_level("WARNING"):
        assert add_decision_files(tmp_path, spec, None, None, ClusterSettings()) is None
    assert spec == {"clusters": None, "reference": None}
    assert "export with data.path=<the training events>" in caplog.text
    assert not {"segment", "cluster"} & set(predictor.predict(pl.read_parquet(events_path).head(200), as_of=AS_OF).columns)
    with pytest.raises(ConfigError, match="re-export with data.path"):
        predictor.predict(pl.read_parquet(events_path).head(200), as_of=AS_OF, explain=True)
    with pytest.raises(BundleError, match="no reference.json.*re-export with data.path"):
        monitor_events(tiny_bundle, events_path, tmp_path / "monitor", as_of=AS_OF)
