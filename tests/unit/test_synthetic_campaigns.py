"""The campaigns world: a randomised holdout, four response types, true effects written out."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from journeyformer.data.events.exposures import load_exposures
from journeyformer.errors import ConfigError
from journeyformer.synthetic.campaigns import CAMPAIGN, TYPES, FollowUp, exposure_day
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_dataset, generate_journeys


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


def test_follow_up_campaign_to_chosen_customers(tmp_path: Path) -> None:
    config = SyntheticConfig(n_customers=1500, days=200, seed=4, world="campaigns")
    world = generate_journeys(config)
    day = exposure_day(config.days) + 30
    treat, hold = tuple(range(1, 400, 2)), tuple(range(2, 400, 4))
    again = generate_journeys(config, follow_up=FollowUp(day, treat, hold, "second"))
    assert again.exposures is not None and again.effects is not None and world.effects is not None
    at = again.exposures.filter(pl.col("campaign") == "second")["timestamp"].min()
    before = pl.col("timestamp") < at
    assert world.events.filter(before).equals(again.events.filter(before))  # untouched until then
    assert not world.events.equals(again.events)
    # the first campaign as it was; the log lists the chosen customers still live, in their arms
    assert again.exposures.filter(pl.col("campaign") == CAMPAIGN).equals(world.exposures)
    second = again.exposures.filter(pl.col("campaign") == "second")
    live = again.effects.filter(pl.col("campaign") == "second")  # every live customer that day
    assert set(second["customer_id"]) == set(treat + hold) & set(live["customer_id"])
    assert set(second.filter(pl.col("arm") == "control")["customer_id"]) <= set(hold)
    assert live.filter(pl.col("arm").is_null()).height == live.height - second.height
    with pytest.raises(ValueError, match="1 customers in both arms"):
        FollowUp(day, (1, 2), (2, 3))
    with pytest.raises(ConfigError, match="must come after the first campaign"):
        generate_journeys(config, follow_up=FollowUp(10, treat, hold))
