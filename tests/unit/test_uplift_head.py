"""The uplift head: its loss sees only the arm a customer was in, its samples are cut at each
exposure with the experiment's outcomes, it is in every layer, and it is off without exposures."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from support import compose_train, tiny_overrides
from test_tasks import check_contract

from journeyformer.config import plain
from journeyformer.data.events.exposures import load_exposures
from journeyformer.data.events.load import load_events
from journeyformer.data.features.definitions import FeatureConfig
from journeyformer.data.labels.exposure_samples import BEFORE, check_balance, exposure_sequences
from journeyformer.errors import ConfigError, EventDataError
from journeyformer.evaluation.experiment import ExperimentConfig, customer_frame
from journeyformer.jobs.train import exposure_weights, learnable_tasks
from journeyformer.model.config import ModelConfig
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_journeys, write_journeys
from journeyformer.tasks import registry
from journeyformer.training.datamodule import prepare_data
from journeyformer.training.stream import make_datamodule

NAN = float("nan")


@pytest.fixture(scope="module")
def campaign_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("campaigns")
    world = generate_journeys(SyntheticConfig(n_customers=800, seed=1, world="campaigns"))
    write_journeys(world, out)
    return out


def _configs(campaign_dir: Path, tmp: Path, exposures: object) -> tuple[dict, dict]:
    extra = [] if exposures is None else [f"data.exposures={exposures}"]
    cfg = compose_train([*tiny_overrides(campaign_dir / "events.parquet"), *extra], tmp)
    return plain(cfg.data), plain(cfg.labels)


@pytest.fixture(scope="module")
def exposed_data(campaign_dir, tmp_path_factory):
    data_cfg, labels_cfg = _configs(campaign_dir, tmp_path_factory.mktemp("run"), campaign_dir / "exposures.parquet")
    return prepare_data(data_cfg, labels_cfg)


def test_loss_is_taken_on_the_arm_the_customer_was_in():
    task = registry.get("uplift")
    raw = torch.zeros(3, 7, requires_grad=True)
    target = torch.tensor([[1.0, 1.0, 5.0], [0.0, 0.0, 0.0], [NAN, NAN, NAN]])
    loss = task.loss(raw, target)
    loss.backward()
    touched = raw.grad.abs() > 0
    assert touched[0, [0, 1, 5]].all()  # treated: control part and effect
    assert set(touched[1].nonzero().ravel().tolist()) <= {0, 2, 3, 4} and touched[1, 0]  # control: no effect
    assert not touched[2].any()  # no exposure: no gradient
    empty = task.loss(raw, torch.full((2, 3), NAN))
    assert float(empty.detach()) == 0.0 and empty.requires_grad


def test_outputs_are_treatment_minus_control():
    task = registry.get("uplift")
    raw = torch.zeros(2, 7)
    raw[0, 1] = 2.0  # effect on the retention logit
    raw[1, 5] = 3.0  # effect on the any-spend logit, mu 0
    out = task.postprocess(raw, None)
    assert out["uplift_retention"][0] == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item() - 0.5, abs=1e-6)
    assert out["uplift_retention"][1] == pytest.approx(0.0, abs=1e-6)
    assert out["uplift_value"][1] > 0 and out["uplift_value"][0] == pytest.approx(0.0, abs=1e-6)


def test_qini_rewards_ranking_the_persuadables_first():
    task = registry.get("uplift")
    rng = np.random.default_rng(0)
    n = 2000
    persuadable = rng.random(n) < 0.3
    arm = (rng.random(n) < 0.5).astype(np.float32)
    retained = (rng.random(n) < np.where(persuadable & (arm == 1), 0.9, 0.5)).astype(np.float32)
    y = np.stack([arm, retained, np.zeros(n, np.float32)], axis=1)
    y = np.concatenate([y, np.full((50, 3), np.nan, np.float32)])  # ordinary samples: ignored
    good = np.r_[persuadable.astype(float), rng.random(50)]
    assert task.score(good, y)["qini"] > 0.02 > abs(task.score(rng.random(n + 50), y)["qini"])
    assert np.isnan(task.score(good[:3], np.full((3, 3), np.nan))["qini"])
    assert task.unlearnable_reason(np.full((5, 3), np.nan)).startswith("no training sample is an exposure")
    assert "0 control" in task.unlearnable_reason(np.ones((40, 3), np.float32))
    assert task.unlearnable_reason(y) is None


def test_exposure_samples_are_cut_before_the_exposure_with_the_experiments_outcomes(exposed_data, campaign_dir):
    exposures = pl.read_parquet(campaign_dir / "exposures.parquet")
    at = exposures["timestamp"].min()
    events = pl.read_parquet(campaign_dir / "events.parquet")
    frame = customer_frame(events, exposures, ExperimentConfig(window_days=30)).sort("customer_id")
    for split in ("train", "val"):
        seqs = exposed_data.splits[split]
        y = seqs.labels["uplift"]
        exposed = np.isfinite(y[:, 0])
        assert exposed.sum() > 20 and (~exposed).sum() > 20  # ordinary samples stay, without an arm
        cut = seqs.cutoff[exposed].astype("datetime64[us]")
        assert (cut == np.datetime64((at - BEFORE).replace(tzinfo=None), "us")).all()
        got = pl.DataFrame({"customer_id": seqs.customer_id.filter(pl.Series(exposed)), "t": y[exposed, 0],
                            "retained": y[exposed, 1], "spend": y[exposed, 2]}).sort("customer_id")  # fmt: skip
        want = frame.join(got.select("customer_id"), on="customer_id").sort("customer_id")
        assert want.height == got.height
        np.testing.assert_array_equal(got["t"].to_numpy(), want["t"].to_numpy())
        np.testing.assert_array_equal(got["retained"].to_numpy(), 1 - want["churn"].to_numpy())
        np.testing.assert_allclose(got["spend"].to_numpy(), want["spend"].to_numpy(), rtol=1e-5)
    # no exposure sample of a test customer: test stays the out-of-time test at its own cutoff
    assert not np.isfinite(exposed_data.splits["test"].labels["uplift"][:, 0]).any()


def test_uplift_is_in_every_layer(exposed_data, campaign_dir):
    """The registry contract of tests/unit/test_tasks.py on the campaigns world's exposures
    (the session's events have none), with the features that contract sizes its model for."""
    features = FeatureConfig(max_len=16, categorical=("action", "channel"))
    pre = replace(exposed_data.preprocessing, features=features)
    events = load_events(campaign_dir / "events.parquet", pre.schema)
    exposures = load_exposures(campaign_dir / "exposures.parquet")
    exposed = exposure_sequences(pre, events, exposures, registry.labelers())["train"]
    check_contract(registry.get("uplift"), exposed, pre.vocabs, features)


def test_the_head_is_off_without_exposures_and_on_with_them(exposed_data, campaign_dir, tmp_path):
    sizes = {"tasks": {"churn": 1.0, "uplift": None}}
    assert "uplift" not in ModelConfig.from_data(sizes, exposed_data.preprocessing).tasks
    assert "uplift" not in registry.default_weights() or registry.default_weights()["uplift"] == 0
    plain_data = prepare_data(*_configs(campaign_dir, tmp_path, None))
    assert not np.isfinite(plain_data.splits["train"].labels["uplift"][:, 0]).any()
    assert learnable_tasks({"churn": 1.0, "uplift": 1.0}, plain_data.splits["train"])["uplift"] == 0.0
    assert learnable_tasks({"uplift": 1.0}, exposed_data.splits["train"]) == {"uplift": 1.0}


def test_exposure_settings_and_late_exposures_speak(campaign_dir, tmp_path, caplog):
    data_cfg, labels_cfg = _configs(campaign_dir, tmp_path, None)
    with pytest.raises(ConfigError, match="data.exposures needs a path"):
        prepare_data({**data_cfg, "exposures": {"arms": {"treatment": "t", "control": "c"}}}, labels_cfg)
    with pytest.raises(ConfigError, match="not supported with data.store"):
        make_datamodule({**data_cfg, "store": str(tmp_path), "exposures": "x.parquet"}, labels_cfg)
    exposures = pl.read_parquet(campaign_dir / "exposures.parquet")
    last = pl.read_parquet(campaign_dir / "events.parquet")["timestamp"].max()
    late = exposures.with_columns(pl.lit(last).alias("timestamp"))
    # half the exposures after the last event minus the horizon: left out, with a warning
    mixed = pl.concat([exposures.filter(pl.col("customer_id") % 2 == 0),
                       late.filter(pl.col("customer_id") % 2 == 1)])  # fmt: skip
    mixed.write_parquet(tmp_path / "mixed.parquet")
    with caplog.at_level(logging.WARNING):
        data = prepare_data({**data_cfg, "exposures": str(tmp_path / "mixed.parquet")}, labels_cfg)
    assert "outcome is not observed yet" in caplog.text
    ids = data.splits["train"].customer_id.filter(pl.Series(np.isfinite(data.splits["train"].labels["uplift"][:, 0])))
    assert len(ids) and (ids % 2 == 0).all()
    late.write_parquet(tmp_path / "late.parquet")
    with pytest.raises(EventDataError, match="observed outcome window of 30 days"):
        prepare_data({**data_cfg, "exposures": str(tmp_path / "late.parquet")}, labels_cfg)


def test_arms_that_differ_before_the_exposure_are_flagged(exposed_data, caplog):
    seqs = exposed_data.splits["train"]
    exposed = seqs.take(np.flatnonzero(np.isfinite(seqs.labels["uplift"][:, 0])))
    with caplog.at_level(logging.WARNING):
        fair = check_balance(exposed, "log.parquet")  # the world's random assignment
    assert max(abs(v) for v in fair.values()) < 0.25
    recency = exposed.summary["recency_days"].to_numpy()
    exposed.labels["uplift"][:, 0] = (recency < np.median(recency)).astype(np.float32)  # the recent ones
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        skewed = check_balance(exposed, "log.parquet")
    assert abs(skewed["recency_days"]) > 1.0
    assert "UNBALANCED ARMS" in caplog.text and "recency_days" in caplog.text and "log.parquet" in caplog.text


def test_an_exposure_log_switches_the_head_on_unless_told_otherwise():
    on = {"churn": 1.0, "uplift": None}
    assert exposure_weights(on)["uplift"] == 1.0
    assert exposure_weights({"churn": 1.0})["uplift"] == 1.0  # a model config that does not name it
    assert exposure_weights({"churn": 1.0, "uplift": 0.0})["uplift"] == 0.0  # switched off on purpose
    assert exposure_weights({"churn": 1.0, "uplift": 3.0})["uplift"] == 3.0
    assert exposure_weights(on, keep=["churn"])["uplift"] is None  # keep_tasks leaves it out
    assert exposure_weights(on, keep="uplift")["uplift"] == 1.0


def test_finished_campaigns_in_one_directory_all_become_exposure_samples(campaign_dir, exposed_data, tmp_path):
    """Feedback: a finished experiment's log added beside the others trains the next run."""
    first = pl.read_parquet(campaign_dir / "exposures.parquet")
    logs = tmp_path / "exposures"
    logs.mkdir()
    first.write_parquet(logs / "retention_offer.parquet")
    earlier = first.with_columns(pl.col("timestamp") - pl.duration(days=45), pl.lit("spring_offer").alias("campaign"))
    earlier.write_parquet(logs / "spring_offer.parquet")
    data_cfg, labels_cfg = _configs(campaign_dir, tmp_path, None)
    both = prepare_data({**data_cfg, "exposures": str(logs)}, labels_cfg)
    for split in ("train", "val"):
        one = np.isfinite(exposed_data.splits[split].labels["uplift"][:, 0])
        seqs = both.splits[split]
        two = np.isfinite(seqs.labels["uplift"][:, 0])
        cutoffs = np.unique(seqs.cutoff[two])
        assert len(cutoffs) == 2 and two.sum() > one.sum()  # samples at both campaigns' exposures
