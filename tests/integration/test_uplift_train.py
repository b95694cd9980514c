"""The uplift head end to end on the campaigns world: trained from an exposure log with
``data.exposures=``, exported with parity, its columns in predictions, and it learns who the
campaign changes: on customers held out of its training its uplifts rank them by their true
effects (known in this world) better than chance, and its retention uplift better than
ranking by churn risk (which targets the lost causes and sleeping dogs)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from support import compose_train, tiny_overrides

from journeyformer.data.exposure_samples import BEFORE
from journeyformer.data.synthetic import SyntheticConfig, generate_journeys, write_journeys
from journeyformer.export.bundle import build_bundle
from journeyformer.inference.job import predict_from_config
from journeyformer.metrics.scores import spearman
from journeyformer.pipelines import train


@pytest.mark.slow
def test_uplift_head_trains_exports_predicts_and_ranks_by_the_true_effect(tmp_path):
    world = generate_journeys(SyntheticConfig(n_customers=3000, seed=3, world="campaigns"))
    write_journeys(world, tmp_path / "world")
    assert world.exposures is not None and world.effects is not None
    # the exposures of even customers train the head; odd customers are held out of it
    exposures = world.exposures.filter(pl.col("customer_id") % 2 == 0)
    exposures.write_parquet(tmp_path / "fit.parquet")
    overrides = [*tiny_overrides(tmp_path / "world" / "events.parquet"), f"data.exposures={tmp_path / 'fit.parquet'}",
                 "trainer.max_epochs=8"]  # fmt: skip
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
