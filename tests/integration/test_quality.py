"""The quality contract of a training run: boosting in the table with bootstrap verdicts, value
calibrated on validation, heads that cannot learn switched off, the purchase-log world."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from support import compose_train, tiny_overrides

from journeyformer.metrics.bootstrap import VERDICTS
from journeyformer.model.run import load_run_network
from journeyformer.model.runner import predict_sequences
from journeyformer.pipelines import train
from journeyformer.training.module import load_module


def test_table_has_boosting_and_a_verdict_per_headline(tiny_run):
    pytest.importorskip("lightgbm")
    metrics = json.loads((tiny_run.run_dir / "test_metrics.json").read_text())
    test = metrics["test"]
    for task in ("churn", "next_action", "stage", "value"):
        assert "lightgbm" in test["baselines"][task]
        iv = test["intervals"][task]
        assert iv["verdict"] in VERDICTS and iv["low"] <= iv["delta"] <= iv["high"]
        assert iv["baseline"] in test["baselines"][task]
    assert metrics["verdicts"] == {t: iv["verdict"] for t, iv in test["intervals"].items()}
    for task, iv in test["intervals_without_boosting"].items():  # when lightgbm was the best
        assert test["intervals"][task]["baseline"] == "lightgbm" and iv["baseline"] != "lightgbm"
    assert "95% paired bootstrap" in tiny_run.table


def test_value_is_calibrated_on_validation(tiny_run):
    """The sum of expected value over the validation samples equals the actual sum (the scale
    is fitted there), and the scale travels in the run manifest (not in the checkpoint, which
    stays as Lightning wrote it)."""
    scale = tiny_run.metrics["calibration"]["value"]["scale"]
    assert scale > 0 and scale != 1.0
    val = tiny_run.data.splits["val"]
    net = load_run_network(tiny_run.run_dir)[0]
    expected = predict_sequences(net, val)["expected_value"]
    actual = float(val.labels["value"].sum())
    assert abs(expected.sum() - actual) <= 0.01 * actual
    assert float(net.value_scale) == pytest.approx(scale)
    assert float(load_module(tiny_run.best_checkpoint).net.value_scale) == 1.0


@pytest.mark.slow
def test_purchase_world_switches_the_next_action_head_off(tmp_path, caplog):
    """One action: every next-action label is "purchase", so that head is switched off with a
    log line; the other tasks train and are compared as usual."""
    overrides = [
        *tiny_overrides(tmp_path / "events.parquet"),
        "data=synthetic_purchases",
        f"data.path={tmp_path / 'events.parquet'}",
        f"data.generated_dir={tmp_path}",
        "data.synthetic.n_customers=1500",
        "trainer.max_epochs=1",
    ]
    overrides = [o for o in overrides if o != "data.synthetic=null"]
    with caplog.at_level(logging.WARNING, logger="journeyformer.pipelines"):
        result = train(compose_train(overrides, tmp_path / "run"))
    assert "next_action" not in result.module.cfg.tasks
    assert any("model.tasks.next_action switched off" in r.message for r in caplog.records)
    assert set(result.metrics["test"]["model"]) == {"churn", "stage", "value"}
    assert np.isfinite(result.metrics["test"]["model"]["churn"]["auroc"])


def test_truncated_test_window_gets_no_verdict(tiny_run):
    from journeyformer.evaluation.protocol import BaselineData, Population, score, split_protocol
    from journeyformer.evaluation.render import render_text
    from journeyformer.tasks.registry import Baselines

    data = tiny_run.data
    test = data.splits["test"]
    assert split_protocol(data.preprocessing, data.splits, data.last_event).test.label_window["status"] == "complete"
    outputs = predict_sequences(tiny_run.module.net, test)
    base = Baselines.fit(data.splits["train"], data.preprocessing.horizon_days, tiny_run.module.cfg.n_actions, ["churn", "value"])
    window = {"status": "truncated", "cutoff": "2025-12-01", "ends": "2025-12-31", "last_event": "2025-12-10"}
    population = Population(test, "out-of-time test set", "test split", window)
    fitted_on = BaselineData(data.splits["train"], None, "baselines fitted on the train split")
    result = score(population, outputs, base, fitted_on, ["churn", "value"], n_boot=50)
    assert {iv["verdict"] for iv in result["intervals"].values()} == {"no verdict"}
    table = render_text(result)
    assert "LABEL WINDOW TRUNCATED" in table
    assert table.splitlines()[1].startswith(f"out-of-time test set: {len(test)} customers with cutoff 2025-12-01")
    assert "baselines fitted on the train split" in table
