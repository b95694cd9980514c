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
