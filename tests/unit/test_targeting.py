"""journeyformer target: whom to contact by expected incremental value minus the contact cost."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from journeyformer.data.events.exposures import load_exposures
from journeyformer.errors import ConfigError, EventDataError, OutputError
from journeyformer.inference.targeting import (
    TargetingConfig,
    exposure_log,
    run_targeting,
    target_customers,
)

PRED = pl.DataFrame({
    "customer_id": [1, 2, 3, 4, 5, 6],
    "uplift_value": [10.0, 5.0, 3.0, 1.0, -2.0, 0.5],
    "uplift_retention": [0.1, 0.0, 0.2, -0.1, 0.05, 0.3],
    "expected_value": [100.0, 50.0, 10.0, 80.0, 40.0, 1.0],
})  # fmt: skip


def test_contacts_by_net_value_within_the_budget():
    out = target_customers(PRED, TargetingConfig(contact_cost=2.0, budget=4.0))
    assert out["customer_id"].to_list() == PRED["customer_id"].to_list()  # every customer, in order
    assert out.filter("contact")["customer_id"].to_list() == [1, 2]  # two contacts pay for 4
    assert out["net_value"].to_list() == [8.0, 3.0, 1.0, -1.0, -4.0, -1.5]
    unlimited = target_customers(PRED, TargetingConfig(contact_cost=2.0))
    assert unlimited.filter("contact")["customer_id"].to_list() == [
        1,
        2,
        3,
    ]  # every positive net value
    # retention uplift x expected value: 10, 0, 2, -8, 2, 0.3
    by_value = target_customers(PRED, TargetingConfig(score="uplift_retention", times="expected_value",
                                                      contact_cost=1.0, budget=2.0))  # fmt: skip
    assert by_value.filter("contact")["customer_id"].to_list() in ([1, 3], [1, 5])


def test_missing_scores_and_outputs_speak(tmp_path):
    with pytest.raises(ConfigError, match="data.exposures"):
        target_customers(PRED.drop("uplift_value"), TargetingConfig())
    holes = PRED.with_columns(pl.when(pl.col("customer_id") > 4).then(None).otherwise(pl.col("uplift_value"))
                              .alias("uplift_value"))  # fmt: skip
    with pytest.raises(EventDataError, match=r"2 of 6 customers have no uplift_value .*\[5, 6\]"):
        target_customers(holes, TargetingConfig())
    with pytest.raises(ConfigError, match="must be >= 0"):
        TargetingConfig(contact_cost=-1)
    PRED.write_parquet(tmp_path / "pred.parquet")
    targets, out = run_targeting({"predictions": str(tmp_path / "pred.parquet"), "contact_cost": 2.0,
                                  "budget": 4.0, "output": str(tmp_path / "t.parquet")})  # fmt: skip
    assert pl.read_parquet(out).equals(targets) and targets["contact"].sum() == 2
    with pytest.raises(OutputError, match="the input itself"):
        run_targeting(
            {
                "predictions": str(tmp_path / "pred.parquet"),
                "output": str(tmp_path / "pred.parquet"),
            }
        )


def test_a_random_holdout_and_the_campaigns_exposure_log(tmp_path):
    many = pl.DataFrame(
        {"customer_id": range(1, 401), "uplift_value": [float(i % 7) for i in range(400)]}
    )
    out = target_customers(
        many, TargetingConfig(contact_cost=1.0, budget=200.0, holdout_share=0.25)
    )
    chosen = out.filter("contact")
    assert chosen.height == 200 and out.filter(~pl.col("contact"))["arm"].is_null().all()
    assert 0.15 < (chosen["arm"] == "control").mean() < 0.35  # held out at random among the chosen
    assert out.equals(target_customers(many, TargetingConfig(contact_cost=1.0, budget=200.0,
                                                             holdout_share=0.25)))  # fmt: skip
    log = exposure_log(out, "winback", datetime(2025, 3, 1, 9))
    assert (
        log.height == 200 and log["eligible"].all() and set(log["arm"]) == {"treatment", "control"}
    )
    log.write_parquet(tmp_path / "log.parquet")  # reads through the exposure-log contract
    assert load_exposures(tmp_path / "log.parquet")["timestamp"][0] == datetime(
        2025, 3, 1, 9, tzinfo=timezone.utc
    )
    with pytest.raises(ConfigError, match="holdout_share"):
        exposure_log(
            target_customers(many, TargetingConfig(contact_cost=1.0, budget=200.0)),
            "c",
            datetime(2025, 3, 1),
        )
    with pytest.raises(EventDataError, match="leaves one arm empty"):
        target_customers(PRED, TargetingConfig(contact_cost=2.0, budget=2.0, holdout_share=0.1))
    many.write_parquet(tmp_path / "pred.parquet")
    cfg = {"predictions": str(tmp_path / "pred.parquet"), "contact_cost": 1.0, "budget": 200.0,
           "holdout_share": 0.25, "output": str(tmp_path / "t.parquet"),
           "exposures_output": str(tmp_path / "exposures.parquet"), "campaign": "winback",
           "send_at": "2025-03-01T09:00:00"}  # fmt: skip
    run_targeting(cfg)
    assert pl.read_parquet(tmp_path / "exposures.parquet").equals(log)
    with pytest.raises(ConfigError, match="needs campaign"):
        run_targeting({**cfg, "campaign": None})
