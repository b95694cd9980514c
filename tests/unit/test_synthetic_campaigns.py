"""The campaigns world: a randomised holdout, four response types, true effects written out."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from journeyformer.data._synthetic_campaigns import TYPES
from journeyformer.data.exposures import load_exposures
from journeyformer.data.synthetic import SyntheticConfig, generate_dataset, generate_journeys


def test_campaign_world_is_the_journey_world_until_the_exposure(tmp_path: Path) -> None:
    config = SyntheticConfig(n_customers=3000, days=200, seed=3, world="campaigns")
    world = generate_journeys(config)
    plain = generate_journeys(SyntheticConfig(n_customers=3000, days=200, seed=3))
    assert world.exposures is not None and world.effects is not None
    exposed_at = world.exposures["timestamp"].min()
    before = pl.col("timestamp") < exposed_at
    assert world.events.filter(before).equals(plain.events.filter(before))
    assert not world.events.equals(plain.events)  # the treatment changed what came after
    # eligible = live at the exposure; both arms, about half each; every type present
    assert set(world.exposures["arm"]) == {"treatment", "control"}
    assert 0.4 < (world.exposures["arm"] == "treatment").mean() < 0.6
    assert set(world.effects["type"]) == set(TYPES)
    churned = world.customers.filter(pl.col("churned_at") < exposed_at)["customer_id"]
    assert not world.exposures["customer_id"].is_in(churned.implode()).any()
    by = dict(world.effects.group_by("type").agg(pl.col("tau_churn").mean()).iter_rows())
    assert by["persuadable"] < 0 < by["sleeping_dog"] and by["sure_thing"] == by["lost_cause"] == 0
    # the files: the exposure log reads through the contract
    _, paths = generate_dataset(tmp_path / "gen" / "events.parquet", config, tmp_path)
    assert {"exposures", "effects"} <= set(paths)
    assert load_exposures(paths["exposures"]).height == world.exposures.height
