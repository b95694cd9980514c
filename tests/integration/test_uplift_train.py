"""The uplift head end to end on the campaigns world: trained from an exposure log with
``data.exposures=``, exported with parity, its columns in predictions, and it learns who the
campaign changes: on customers held out of its training its uplifts rank them by their true
effects (known in this world) better than chance, and its retention uplift better than
ranking by churn risk (which targets the lost causes and sleeping dogs).

The same run is the feedback loop's two rounds (issue 24 req 6): round 1 is the world's
campaign, assigned at random; ``experiment feedback=`` turns its outcomes into the labelled
exposure log the run trains on. Round 2 is a follow-up campaign 30 days later, sent to the
customers the round-1 model targets (``target`` with a random holdout) and simulated in the
same world: its contacts gain more (true effects) than round 1's random ones, and its own
labelled log is ready for a third run."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from support import compose_train, tiny_overrides

from journeyformer.data.events.exposures import load_exposures
from journeyformer.data.labels.exposure_samples import BEFORE
from journeyformer.evaluation.experiment_page import run_experiment
from journeyformer.export.bundle import build_bundle
from journeyformer.inference.job import predict_from_config
from journeyformer.inference.targeting import TargetingConfig, exposure_log, target_customers
from journeyformer.metrics.scores import spearman
from journeyformer.pipelines import train
from journeyformer.synthetic import campaigns as C
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_journeys, write_journeys


@pytest.mark.slow
def test_uplift_head_trains_exports_predicts_ranks_and_targets_round_two(tmp_path):
    config = SyntheticConfig(n_customers=3000, seed=3, world="campaigns")
    world = generate_journeys(config)
    events = tmp_path / "world" / "events.parquet"
    write_journeys(world, tmp_path / "world")
    assert world.exposures is not None and world.effects is not None
    # round 1: the exposures of even customers train the head; odd customers are held out of it
    exposures = world.exposures.filter(pl.col("customer_id") % 2 == 0)
    exposures.write_parquet(tmp_path / "round1_log.parquet")
    labelled = tmp_path / "training_exposures"  # the next run's data.exposures: finished campaigns
    first, _ = run_experiment({"input": str(events), "exposures": {"path": str(tmp_path / "round1_log.parquet")},
                               "output": str(tmp_path / "round1"), "feedback": str(labelled / "round1.parquet")})  # fmt: skip
    fed = pl.read_parquet(labelled / "round1.parquet")  # every exposure, with its outcomes
    assert fed.height == exposures.height == first["feedback"]["rows"]
    assert fed["outcome_churn"].is_not_null().all() and fed["outcome_spend"].mean() > 0
    overrides = [*tiny_overrides(events), f"data.exposures={labelled}", "trainer.max_epochs=8"]
    run = train(compose_train(overrides, tmp_path / "run"))
    assert run.module is not None and run.module.cfg.tasks["uplift"] == 1.0
    val = run.metrics["val"]  # validation customers' exposures: the head and its T-learner scored
    assert np.isfinite(val["model"]["uplift"]["qini"]) and "t_learner" in val["baselines"]["uplift"]

    bundle = build_bundle(run.best_checkpoint, tmp_path / "bundle")
    assert {"uplift_retention", "uplift_value"} <= {o["name"] for o in bundle.spec["onnx"]["outputs"]}
    assert bundle.parity.ok
    at = world.exposures["timestamp"].min()
    out = tmp_path / "pred.parquet"
    predict_from_config({"bundle": str(bundle.path), "data": {"path": str(tmp_path / "world" / "events.parquet")},
                         "as_of": (at - BEFORE).isoformat(), "output": str(out), "progress": False})  # fmt: skip
    pred = pl.read_parquet(out)
    assert pred["uplift_retention"].is_between(-1, 1).all() and pred["uplift_value"].is_finite().all()

    held_out = world.effects.filter(pl.col("customer_id") % 2 == 1).join(pred, on="customer_id")
    assert held_out.height > 800
    # random scores rank the true effects at 0 (+-0.07 at two standard errors here)
    value = spearman(held_out["uplift_value"].to_numpy(), held_out["tau_value"].to_numpy())
    retention = spearman(held_out["uplift_retention"].to_numpy(), -held_out["tau_churn"].to_numpy())
    risk = spearman(held_out["churn_probability"].to_numpy(), -held_out["tau_churn"].to_numpy())
    assert value > 0.15 and retention > 0.1, (value, retention)
    assert retention > risk + 0.2, (retention, risk)  # churn risk ranks the effect the wrong way

    # round 2, 30 days later (round 1's outcomes are in): the round-1 model scores everyone and
    # picks whom to contact by expected incremental spend, a fifth of them held out at random
    at2 = at + timedelta(days=30)
    out2 = tmp_path / "pred2.parquet"
    predict_from_config({"bundle": str(bundle.path), "data": {"path": str(events)},
                         "as_of": (at2 - BEFORE).isoformat(), "output": str(out2), "progress": False})  # fmt: skip
    budget = TargetingConfig(contact_cost=1.0, budget=500.0, holdout_share=0.2, seed=1)
    targets = target_customers(pl.read_parquet(out2), budget)
    log2 = exposure_log(targets, "follow_up", at2)
    log2.write_parquet(tmp_path / "round2_log.parquet")
    assert 200 <= log2.height <= 500 and 0.1 < (log2["arm"] == "control").mean() < 0.3
    arms = {
        a: tuple(log2.filter(pl.col("arm") == a)["customer_id"]) for a in ("treatment", "control")
    }
    day2 = C.exposure_day(config.days) + 30
    world2 = generate_journeys(
        config, follow_up=C.FollowUp(day2, arms["treatment"], arms["control"], "follow_up")
    )
    assert world2.effects is not None
    before = pl.col("timestamp") < at2  # the decision saw only the days both worlds share
    assert_frame_equal(world.events.filter(before), world2.events.filter(before))
    # true expected spend effect per contact; a chosen customer no longer live gains nothing
    tau2 = world2.effects.filter(pl.col("campaign") == "follow_up").select(
        "customer_id", "tau_value"
    )
    chosen = log2.join(tau2, on="customer_id", how="left")["tau_value"].fill_null(0.0)
    scored = pl.read_parquet(out2).join(tau2, on="customer_id", how="left")["tau_value"].fill_null(0.0)
    round1 = world.effects.filter(pl.col("arm") == "treatment")["tau_value"]  # round 1: at random
    # the true effect per contact beats a random pick of the same candidates now by more than
    # two standard errors of the difference (which customers happen to be picked is the only
    # noise: the effects are the world's own), and round 1's random contacts; against round 1
    # the gap is within noise at this size (docs/experiments.md: 8.4 against 6.7, standard error
    # 1.4), so only its sign is asserted
    gap = chosen.mean() - scored.mean()
    assert gap > 2 * (chosen.var() / chosen.len() + scored.var() / scored.len()) ** 0.5, (chosen.mean(), scored.mean())
    assert chosen.mean() > round1.mean(), (chosen.mean(), round1.mean())

    # round 2's outcomes become labelled exposures in turn (the world ends 30 days after
    # round 2, so its window here is 29 days), next to round 1's for a third run
    write_journeys(world2, tmp_path / "world2")
    second, _ = run_experiment({"input": str(tmp_path / "world2" / "events.parquet"),
                                "exposures": {"path": str(tmp_path / "round2_log.parquet")}, "window_days": 29,
                                "output": str(tmp_path / "round2"), "feedback": str(labelled / "round2.parquet")})  # fmt: skip
    assert second["feedback"]["rows"] == log2.height
    # measured on each round's own holdout: incremental spend per treated customer
    # (+21 [-6, +47] against round 1's -13 [-35, +9]: round 2 above round 1's interval)
    one, two = first["outcomes"]["spend"]["plain"], second["outcomes"]["spend"]["plain"]
    assert two["effect"] > max(one["high"], 0.0), (one, two)
    both = load_exposures(labelled)
    assert both.group_by("campaign").len().sort("campaign").rows() == [
        ("follow_up", log2.height), (C.CAMPAIGN, exposures.height)]  # fmt: skip
