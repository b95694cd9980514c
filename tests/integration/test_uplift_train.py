"""The uplift head end to end on the campaigns world: trained from an exposure log with
``data.exposures=``, exported with parity, its columns in predictions, and it learns who the
campaign changes (its spend uplift ranks the customers held out of its training by their true
effect better than chance)."""

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
    world = generate_journeys(SyntheticConfig(n_customers=800, seed=3, world="campaigns"))
    write_journeys(world, tmp_path / "world")
    assert world.exposures is not None and world.effects is not None
    # the exposures of even customers train the head; odd customers are held out of it
    exposures = world.exposures.filter(pl.col("customer_id") % 2 == 0)
    exposures.write_parquet(tmp_path / "fit.parquet")
    overrides = [*tiny_overrides(tmp_path / "world" / "events.parquet"), f"data.exposures={tmp_path / 'fit.parquet'}",
                 "trainer.max_epochs=4"]  # fmt: skip
    run = train(compose_train(overrides, tmp_path / "run"))
    assert run.module is not None and run.module.cfg.tasks["uplift"] == 1.0
    assert np.isfinite(run.metrics["val"]["model"]["uplift"]["qini"])

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
    assert held_out.height > 150
    # random scores rank the true effect at 0; the head, never trained on these customers' outcomes, above
    rho = spearman(held_out["uplift_value"].to_numpy(), held_out["tau_value"].to_numpy())
    assert rho > 0.2, rho
