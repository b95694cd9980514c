"""`journeyformer experiment` on the campaigns world: a known effect recovered, CUPED, balance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from journeyformer.data.events.exposures import load_exposures
from journeyformer.errors import ConfigError, EventDataError, OutputError
from journeyformer.evaluation.experiment import (
    ExperimentConfig,
    analyse,
    compare_policies,
    customer_frame,
)
from journeyformer.evaluation.experiment_page import run_experiment
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_dataset, generate_journeys

CONFIG = SyntheticConfig(n_customers=12_000, days=200, seed=5, world="campaigns")
EXP = ExperimentConfig(window_days=30, treated_share=0.5)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("campaigns")
    _, paths = generate_dataset(root / "gen" / "events.parquet", CONFIG, root)
    return root, paths


def _outcomes(share: float) -> dict[str, np.ndarray]:
    """Outcomes of the eligible customers when a ``share`` of them is treated."""
    j = generate_journeys(CONFIG, treated_share=share)
    assert j.exposures is not None
    frame = customer_frame(j.events, j.exposures, EXP)
    return {o: frame[o].to_numpy() for o in ("churn", "spend", "conversion")}


def test_experiment_recovers_the_true_average_effect(world: tuple[Path, dict[str, Path]]) -> None:
    root, paths = world
    # The known effect: every eligible customer treated minus none treated (the same customers,
    # the same days before the exposure). Each world's days after the exposure are one draw,
    # so the known effect has its own standard error; the check allows for both.
    treated, control = _outcomes(1.0), _outcomes(0.0)
    truth = {o: float(treated[o].mean() - control[o].mean()) for o in treated}
    truth_se = {o: float(np.sqrt((treated[o].var() + control[o].var()) / len(treated[o]))) for o in treated}
    assert truth["spend"] > 3 * truth_se["spend"]  # persuadables' extra visits: a real effect
    result, out = run_experiment({
        "input": str(paths["events"]), "exposures": {"path": str(paths["exposures"])},
        "segments": {"path": str(paths["effects"]), "column": "type"},
        "treated_share": 0.5, "output": str(root / "exp"),
    })  # fmt: skip
    assert (out / "experiment.html").is_file() and (out / "experiment.json").is_file()
    assert result["warnings"] == [] and result["balance"]["balanced"]
    for outcome, r in result["outcomes"].items():
        for est in (r["plain"], r["cuped"]):
            # within the 95% interval widened by the known effect's own error (fixed seeds)
            half = 1.96 * np.hypot(est["se"], truth_se[outcome])
            assert abs(est["effect"] - truth[outcome]) < half, (outcome, truth, truth_se, est)
        # CUPED (here on the same outcome over the window before) never widens the interval
        assert r["cuped"]["se"] <= r["plain"]["se"] and r["variance_reduction"] >= 0
    assert result["outcomes"]["spend"]["variance_reduction"] > 0.1
    # per segment (the true response types): the signs of the designed effects
    seg = result["segments"]
    assert seg["persuadable"]["spend"]["plain"]["low"] > 0
    assert seg["sleeping_dog"]["churn"]["plain"]["low"] > 0
    for outcome, p in result["power"].items():
        assert p["sizes"][0]["customers_cuped"] <= p["sizes"][0]["customers_plain"], outcome


def test_model_prediction_as_covariate_reduces_variance_more(world: tuple[Path, dict[str, Path]]) -> None:
    root, paths = world
    # a stand-in for the model's pre-exposure prediction: the latent churn hazard at exposure
    effects = pl.read_parquet(paths["effects"])
    predictions = effects.select(
        "customer_id",
        (1 - (-pl.col("hazard") * 30).exp()).alias("churn_probability"),
        pl.col("tau_value").alias("true_uplift_value"),
    )
    predictions.write_parquet(root / "predictions.parquet")
    base, _ = run_experiment({"input": str(paths["events"]), "exposures": {"path": str(paths["exposures"])},
                              "output": str(root / "e1")})  # fmt: skip
    with_model, _ = run_experiment({
        "input": str(paths["events"]), "exposures": {"path": str(paths["exposures"])},
        "predictions": str(root / "predictions.parquet"), "output": str(root / "e2"),
        "policies": {"true_uplift": "true_uplift_value", "churn_risk": "churn_probability"},
    })  # fmt: skip
    # targeting by the true uplift earns more than at random; by churn risk it does not
    policies = with_model["policies"]["policies"]
    assert policies["true_uplift"]["minus_random_low"] > 0
    assert policies["churn_risk"]["minus_random"] < policies["true_uplift"]["minus_random"]
    assert with_model["outcomes"]["churn"]["covariate"] == "churn_probability"
    vr = with_model["outcomes"]["churn"]["variance_reduction"]
    assert vr > 0.01 and with_model["outcomes"]["churn"]["cuped"]["se"] < base["outcomes"]["churn"]["plain"]["se"]


def test_balance_check_flags_an_unbalanced_assignment(world: tuple[Path, dict[str, Path]]) -> None:
    _, paths = world
    events = pl.read_parquet(paths["events"])
    exposures = pl.read_parquet(paths["exposures"])
    frame = customer_frame(events, exposures, EXP)
    # assignment by recent activity (not random): the active half treated
    biased = frame.with_columns((pl.col("events_30d") > pl.col("events_30d").median()).cast(pl.Int8).alias("t"))
    result = analyse(biased, ExperimentConfig(treated_share=None))
    assert not result["balance"]["balanced"] and "events_30d" in result["balance"]["flagged"]
    assert any("UNBALANCED ARMS" in w for w in result["warnings"])
    # a lost fifth of the control arm: the split is off plan
    rng = np.random.default_rng(0)
    lost = frame.filter(~((pl.col("t") == 0) & pl.Series(rng.random(frame.height) < 0.2)))
    result = analyse(lost, EXP)
    assert any("SAMPLE RATIO MISMATCH" in w for w in result["warnings"])


def test_outcome_window_after_the_data_is_an_error(world: tuple[Path, dict[str, Path]]) -> None:
    _, paths = world
    events = pl.read_parquet(paths["events"])
    exposures = pl.read_parquet(paths["exposures"])
    with pytest.raises(EventDataError, match=r"outcome window of \d+ of \d+ exposures ends after the last event"):
        customer_frame(events, exposures, ExperimentConfig(window_days=90))


def test_exposure_ids_in_another_type_match_or_error(world: tuple[Path, dict[str, Path]]) -> None:
    _, paths = world
    events = pl.read_parquet(paths["events"])
    exposures = pl.read_parquet(paths["exposures"])
    as_text = exposures.with_columns(pl.col("customer_id").cast(pl.String))
    assert customer_frame(events, as_text, EXP).equals(customer_frame(events, exposures, EXP))
    bad = as_text.with_columns(pl.when(pl.int_range(pl.len()) < 3).then(pl.lit("c-x")).otherwise(pl.col("customer_id")).alias("customer_id"))
    with pytest.raises(EventDataError, match=r"3 of \d+ exposure customer ids are not.*c-x"):
        customer_frame(events, bad, EXP)


def test_net_value_targeting_under_a_currency_budget() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    tau = np.where(rng.random(n) < 0.3, 10.0, np.where(rng.random(n) < 0.3, -5.0, 0.0))  # persuaded, harmed
    t = (rng.random(n) < 0.5).astype(int)
    y = rng.gamma(2.0, 10.0, n) + t * tau
    scores = {"uplift": tau + rng.normal(0, 1, n), "risk": rng.random(n)}
    cfg = ExperimentConfig(policies={"uplift": "u", "risk": "r"}, contact_cost=2.0, budget=1000.0,
                           net_value=("uplift",), n_boot=100)  # fmt: skip
    out = compare_policies(y, t, scores, cfg)
    p = out["policies"]
    assert out["max_contacts"] == 500 and p["risk"]["contacted"] == p["random"]["contacted"] == 500
    assert 0 < p["uplift"]["contacted"] <= 500  # the budget binds: more than 500 are worth a contact
    assert p["uplift"]["minus_random_low"] > 0 and p["uplift"]["value_per_customer"] > p["risk"]["value_per_customer"]
    # a contact dearer than any expected gain: net-value targeting contacts no one and loses nothing
    dear = compare_policies(y, t, scores, ExperimentConfig(policies={"uplift": "u", "risk": "r"}, contact_cost=50.0,
                                                           budget=1e6, net_value=("uplift",), n_boot=20))  # fmt: skip
    assert dear["policies"]["uplift"]["contacted"] == 0 and dear["policies"]["uplift"]["value_per_customer"] == 0
    assert dear["policies"]["random"]["value_per_customer"] < 0
    with pytest.raises(ConfigError, match="needs a contact budget"):
        ExperimentConfig(policies={"uplift": "u"}, net_value=("uplift",))
    with pytest.raises(ConfigError, match="not policies"):
        ExperimentConfig(policies={"uplift": "u"}, budget=10.0, net_value=("upl",))


def test_feedback_writes_every_exposure_with_its_outcomes(
    world: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    root, paths = world
    log = pl.read_parquet(paths["exposures"])
    # a second campaign and a few customers outside the randomised population
    log = pl.concat([
        log.with_columns((pl.int_range(pl.len()) >= 20).alias("eligible")),
        log.head(50).with_columns(pl.lit("other").alias("campaign")),
    ])  # fmt: skip
    log.write_parquet(tmp_path / "log.parquet")
    cfg = {"input": str(paths["events"]), "exposures": {"path": str(tmp_path / "log.parquet")},
           "campaign": "retention_offer", "output": str(tmp_path / "out"),
           "feedback": str(tmp_path / "next" / "retention_offer.parquet")}  # fmt: skip
    result, _ = run_experiment(cfg)
    fed = pl.read_parquet(tmp_path / "next" / "retention_offer.parquet")
    assert fed.height == result["feedback"]["rows"] == log.height - 50  # nothing lost
    assert fed.filter(~pl.col("eligible"))["outcome_churn"].is_null().all()
    eligible = fed.filter("eligible")
    assert result["feedback"]["labelled"] == eligible.height == log.height - 70
    frame = customer_frame(
        pl.read_parquet(paths["events"]),
        log.filter(pl.col("campaign") == "retention_offer", "eligible"),
        EXP,
    )
    joined = eligible.join(frame, on="customer_id")
    for outcome in ("churn", "spend", "conversion"):
        # the same sums (up to the order Polars adds them in)
        assert np.allclose(joined[f"outcome_{outcome}"].to_numpy(), joined[outcome].to_numpy())
    assert (eligible["outcome_window_days"] == 30.0).all()
    loaded = load_exposures(tmp_path / "next")  # the next run's data.exposures reads it
    assert loaded.height == fed.height and set(loaded["campaign"]) == {"retention_offer"}
    run_experiment(cfg)  # its own file of the same campaign: replaced
    with pytest.raises(
        OutputError, match=r"holds the labelled exposures of campaign\(s\) \['retention_offer'\]"
    ):
        run_experiment({**cfg, "campaign": "other"})
    (tmp_path / "mine.parquet").write_bytes((tmp_path / "log.parquet").read_bytes())
    with pytest.raises(OutputError, match="not a labelled exposure log written by experiment"):
        run_experiment({**cfg, "feedback": str(tmp_path / "mine.parquet")})
    with pytest.raises(OutputError, match="the input itself"):
        run_experiment({**cfg, "feedback": str(tmp_path / "log.parquet")})
    with pytest.raises(OutputError, match=r"\.parquet file"):
        run_experiment({**cfg, "feedback": str(tmp_path / "f.csv")})
    assert (tmp_path / "mine.parquet").read_bytes() == (tmp_path / "log.parquet").read_bytes()
