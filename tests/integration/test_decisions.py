"""From scores to decisions on a trained tiny model: segments, clusters, drift, explanations.

One synthetic world with a planted churn driver (``ticket_hazard``: an unresolved support ticket
raises the daily churn hazard), one tiny model trained on it and exported with its events (so
the bundle gets reference.json and clusters.json); every test below reads that bundle.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support import assert_same_predictions, compose_train, tiny_overrides

from journeyformer.data.labels.samples import parse_time
from journeyformer.inference.bundle import BundleError, load_bundle
from journeyformer.inference.decisions import Decisions, default_segments
from journeyformer.inference.local import predict_events
from journeyformer.inference.reference import reference_of
from journeyformer.monitoring.job import EXIT_DRIFT, monitor_events
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_journeys, write_journeys

pytestmark = pytest.mark.slow

WORLD = {"n_customers": 2500, "ticket_hazard": 0.15}  # a strong planted driver
GRACE_DAYS = 2.0  # the generator's TICKET_GRACE: an open ticket raises the hazard after it


def world(path: Path, seed: int, **changes) -> Path:
    write_journeys(generate_journeys(SyntheticConfig(**{**WORLD, "seed": seed, **changes})), path)
    return path / "events.parquet"


@pytest.fixture(scope="module")
def ticket_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return world(tmp_path_factory.mktemp("ticket_world"), seed=11)


@pytest.fixture(scope="module")
def decision_bundle(ticket_events: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained long enough to learn the ticket effect, exported with its data."""
    from journeyformer.export.bundle import ValidationData, build_bundle
    from journeyformer.pipelines import train

    run_dir = tmp_path_factory.mktemp("ticket_run")
    overrides = [
        *tiny_overrides(ticket_events),
        "trainer.max_epochs=6",
        "model.standardize_context=true",
        "model.optimizer.lr=5e-3",
        "evaluate=false",
    ]
    result = train(compose_train(overrides, run_dir))
    out = tmp_path_factory.mktemp("ticket_bundle") / "bundle"
    build_bundle(result.best_checkpoint, out, validation=ValidationData(str(ticket_events)))
    return out


def cutoff(bundle: Path, split: str) -> datetime:
    """The split's latest cutoff (validation may pool several: the reference is at the latest)."""
    cuts = json.loads((bundle / "preprocessing.json").read_text())["preprocessing"]["cutoffs"][split]
    return max(parse_time(c) for c in cuts)


def test_the_bundle_holds_its_reference_and_clusters_under_the_integrity_check(decision_bundle, tmp_path):
    bundle = load_bundle(decision_bundle)
    spec = bundle.spec
    assert spec["reference"] == "reference.json" and spec["clusters"] == "clusters.json"
    assert {"reference.json", "clusters.json"} <= set(spec["files"])
    ref = reference_of(bundle)
    assert ref is not None and ref.n_customers > 200
    groups = {name.split("/")[0] for name in ref.columns}
    assert groups == {"context", "customer", "sequence", "event", "score"}
    n_context = len(bundle.preprocessing.context_names)
    assert sum(name.startswith("context/") for name in ref.columns) == n_context
    assert {"event/action", "event/channel", "sequence/length", "score/churn_probability", "score/expected_value", "score/cluster"} <= set(ref.columns)
    clusters = json.loads((decision_bundle / "clusters.json").read_text())
    assert clusters["k"] == 8 and sorted(clusters["sizes"], reverse=True) == clusters["sizes"]
    # an edited reference is refused
    copy = tmp_path / "bundle"
    shutil.copytree(decision_bundle, copy)
    (copy / "reference.json").write_text((copy / "reference.json").read_text().replace('"n": ', '"n":  ', 1))
    with pytest.raises(BundleError, match="reference.json: size check failed|reference.json: checksum"):
        load_bundle(copy)


def test_predict_gives_every_customer_a_segment_by_the_first_matching_rule_and_a_cluster(decision_bundle, ticket_events, tmp_path):
    as_of = cutoff(decision_bundle, "test")
    out = tmp_path / "p.parquet"
    predict_events(decision_bundle, ticket_events, out, as_of=as_of, progress=False)
    p = pl.read_parquet(out)
    bundle = load_bundle(decision_bundle)
    rules = Decisions.for_bundle(bundle).segments
    assert rules is not None
    assert set(p["segment"].unique()) <= set(rules.names) and p["segment"].null_count() == 0
    assert p["segment"].n_unique() >= 3
    assert p["cluster"].min() >= 0 and p["cluster"].max() < 8 and p["cluster"].n_unique() >= 3
    # The first rule, checked from its resolved thresholds: its customers and no one else.
    first = rules.segments[0]
    thresholds = {c.column: c.value for c in first.conditions}
    hit = (p["expected_value"] >= thresholds["expected_value"]) & (p["churn_probability"] >= thresholds["churn_probability"])
    assert ((p["segment"] == first.name) == hit).all()
    # The value threshold is a quantile of the validation customers' values.
    q = reference_of(bundle).quantile("score/expected_value", 0.75)
    assert thresholds["expected_value"] == pytest.approx(q)
    # Segments off: no column.
    off = tmp_path / "off.parquet"
    predict_events(decision_bundle, ticket_events, off, as_of=as_of, progress=False, decide={"segments": None})
    assert "segment" not in pl.read_parquet(off).columns
    assert default_segments()["otherwise"] in rules.names


def open_tickets(events: Path, as_of: datetime) -> pl.DataFrame:
    """Customers whose latest support ticket at as_of is unresolved and past the grace days."""
    e = pl.read_parquet(events).filter(pl.col("timestamp") <= as_of)
    last = e.group_by("customer_id").agg(
        pl.col("timestamp").filter(pl.col("action") == "support_ticket").max().alias("ticket"),
        pl.col("timestamp").filter(pl.col("action") == "ticket_resolved").max().alias("resolved"),
    )
    age = (pl.lit(as_of) - pl.col("ticket")).dt.total_seconds() / 86_400
    return last.filter(
        pl.col("ticket").is_not_null()
        & (pl.col("resolved").is_null() | (pl.col("resolved") < pl.col("ticket")))
        & (age > GRACE_DAYS)
    ).select("customer_id")


def test_explanations_rank_the_planted_ticket_first_where_it_matters(decision_bundle, ticket_events, tmp_path):
    as_of = cutoff(decision_bundle, "test")
    out = tmp_path / "x.parquet"
    predict_events(decision_bundle, ticket_events, out, as_of=as_of, progress=False, decide={"explain": True})
    p = pl.read_parquet(out)
    for name in ("churn_drivers", "churn_driver_effects", "value_drivers", "value_driver_effects"):
        assert name in p.columns
    assert (p["churn_drivers"].list.len() <= 3).all() and (p["churn_drivers"].list.len() >= 1).all()
    top = p.with_columns(
        pl.col("churn_drivers").list.first().str.contains("support_ticket").alias("ticket_first"),
        pl.col("churn_driver_effects").list.first().alias("effect"),
    )
    opened = top.join(open_tickets(ticket_events, as_of), on="customer_id", how="semi")
    others = top.join(open_tickets(ticket_events, as_of), on="customer_id", how="anti")
    assert opened.height >= 30
    # the model learned the driver: open tickets score higher
    assert opened["churn_probability"].mean() > others["churn_probability"].mean()
    share = opened["ticket_first"].mean()
    assert share >= 0.6, opened.select("churn_probability", "churn_drivers", "churn_driver_effects").head(10)
    assert others["ticket_first"].mean() < 0.3 * share
    # where the ticket ranks first it raises churn
    assert (opened.filter("ticket_first")["effect"] > 0).mean() >= 0.9


def test_monitor_flags_a_shifted_population_and_not_a_fresh_sample(decision_bundle, tmp_path):
    as_of = cutoff(decision_bundle, "val")  # where the reference was profiled
    fresh = world(tmp_path / "fresh", seed=12, n_customers=3000)
    shifted = world(tmp_path / "shifted", seed=13, n_customers=3000, intensity=2.5, churn_scale=2.0)
    same = monitor_events(decision_bundle, fresh, tmp_path / "m_fresh", as_of=as_of)
    assert same.report.status != "drift" and not same.report.flagged("drift"), same.report.summary()
    assert (tmp_path / "m_fresh" / "monitor.json").is_file() and (tmp_path / "m_fresh" / "monitor.html").is_file()
    with pytest.raises(SystemExit) as exit_:
        monitor_events(decision_bundle, shifted, tmp_path / "m_shift", as_of=as_of, fail_on_drift=True)
    assert exit_.value.code == EXIT_DRIFT
    written = json.loads((tmp_path / "m_shift" / "monitor.json").read_text())
    assert written["status"] == "drift"
    drifted = {name for name, c in written["columns"].items() if c["status"] == "drift"}
    assert sum(n.startswith("context/") for n in drifted) >= 3, drifted
    page = (tmp_path / "m_shift" / "monitor.html").read_text()
    assert "status: DRIFT" in page and "data:image/png;base64," in page
    assert np.isfinite([c["psi"] for c in written["columns"].values()]).all()


def test_the_python_api_gives_the_job_segments_clusters_and_explanations(decision_bundle, ticket_events, tmp_path):
    """Predictor.predict: segment and cluster by default, drivers with explain=True; the same
    numbers as predict explain=true (both small-input and batch sequence paths)."""
    from polars.testing import assert_frame_equal

    from journeyformer import Predictor

    as_of = cutoff(decision_bundle, "test")
    events = pl.read_parquet(ticket_events)
    some = events.filter(pl.col("customer_id").is_in(events["customer_id"].unique().sort().head(150).implode()))
    some.write_parquet(tmp_path / "some.parquet")
    predict_events(decision_bundle, tmp_path / "some.parquet", tmp_path / "x.parquet", as_of=as_of, progress=False, decide={"explain": True})
    job = pl.read_parquet(tmp_path / "x.parquet").sort("customer_id")
    assert {"segment", "cluster", "churn_drivers", "value_driver_effects"} <= set(job.columns)
    predictor = Predictor.load(decision_bundle)
    explained = predictor.predict(some, as_of=as_of, explain=True)
    assert_same_predictions(explained, job)
    batch_path = Predictor(predictor.bundle, predictor.runner, small_events=0).predict(some, as_of=as_of, explain=True)
    assert_same_predictions(explained, batch_path)
    # two batches explained at once (parallel=batches) give what one at a time gives
    by = {p: Predictor.load(decision_bundle, threads=2, parallel=p, batch_size=16) for p in ("batches", "operators")}
    assert by["batches"].runner.workers == 2 and by["operators"].runner.workers == 1
    at_once, in_turn = (by[p].predict(some, as_of=as_of, explain=True) for p in ("batches", "operators"))
    assert_same_predictions(at_once, in_turn)
    assert_same_predictions(at_once, explained)
    plain = predictor.predict(some, as_of=as_of)  # no explain: the job's default columns
    assert_frame_equal(plain, job.select(plain.columns), check_exact=False, rel_tol=1e-5, abs_tol=1e-5)
    assert "churn_drivers" not in plain.columns and plain["segment"].null_count() == 0
    assert "segment" not in Predictor.load(decision_bundle, segments=None).predict(some, as_of=as_of).columns
