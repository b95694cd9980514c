"""scripts/evaluate.py's job: metrics equal independent computations, report, no-future case."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from journeyformer.data.labels.lifecycle import IGNORE_INDEX
from journeyformer.evaluation.evaluate import evaluate_bundle
from journeyformer.evaluation.protocol import EvaluationError
from journeyformer.evaluation.report import evaluate_from_config, write_report


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Path:
    return tiny_bundle


@pytest.fixture(scope="module")
def evaluation(bundle, events_path):
    return evaluate_bundle(bundle, events_path, progress=False)


def test_metrics_equal_independent_computations(evaluation, tmp_path):
    ev = evaluation
    out = write_report(ev, tmp_path / "report")
    saved = json.loads((out / "metrics.json").read_text())
    y = ev.test.labels
    o = ev.outputs
    model = saved["model"]
    # churn AUROC as the share of (positive, negative) pairs ranked right, ties half
    p, c = o["churn_probability"], y["churn"].astype(bool)
    diff = p[c][:, None] - p[~c][None, :]
    assert model["churn"]["auroc"] == pytest.approx(
        ((diff > 0) + 0.5 * (diff == 0)).mean(), abs=1e-9
    )
    assert model["churn"]["brier"] == pytest.approx(np.mean((p - c) ** 2), rel=1e-6)
    # next action accuracy@1 on customers with a next event
    keep = y["next_action"] != IGNORE_INDEX
    acc1 = np.mean(o["next_action_probs"][keep].argmax(1) == y["next_action"][keep])
    assert model["next_action"]["acc@1"] == pytest.approx(acc1)
    # stage accuracy and macro-F1 (classes in labels or predictions)
    pred, true = o["stage_probs"].argmax(1), y["stage"]
    f1 = [
        2 * np.sum((pred == k) & (true == k)) / (np.sum(pred == k) + np.sum(true == k))
        for k in np.union1d(pred, true)
    ]
    assert model["stage"]["accuracy"] == pytest.approx(np.mean(pred == true))
    assert model["stage"]["macro_f1"] == pytest.approx(np.mean(f1))
    # value Spearman via pandas and MAE of total spend
    rho = (
        pd.Series(o["expected_value"]).rank().corr(pd.Series(y["value"]).rank())
    )  # Spearman = Pearson of ranks
    assert model["value"]["spearman"] == pytest.approx(rho, abs=1e-9)
    assert model["value"]["mae"] == pytest.approx(
        np.mean(np.abs(o["expected_value"] - y["value"])), rel=1e-6
    )
    # a baseline, computed from the summary: recency AUROC
    r = ev.test.summary["recency_days"].to_numpy()
    d = r[c][:, None] - r[~c][None, :]
    assert saved["baselines"]["churn"]["days_since_last_activity"]["auroc"] == pytest.approx(
        ((d > 0) + 0.5 * (d == 0)).mean()
    )
    # the threshold table at 0.5
    at_half = saved["churn_thresholds"]["model"]["at_0.5"]
    tp = np.sum((p >= 0.5) & c)
    assert at_half["precision"] == pytest.approx(tp / max(np.sum(p >= 0.5), 1))
    assert at_half["recall"] == pytest.approx(tp / c.sum())
    assert set(saved["stage_recall"]["model"]) == set(ev.bundle.stages)


def test_the_population_is_the_training_sample_rule_at_as_of(evaluation, events_path):
    """Every customer active within ``active_within_days`` before as_of is scored, as the
    training and the train job's test samples are chosen; the table names that population."""
    events = pl.read_parquet(events_path)
    days = evaluation.bundle.preprocessing.active_within_days
    history = events.filter(pl.col("timestamp") <= evaluation.as_of)
    last = history.group_by("customer_id").agg(pl.col("timestamp").max())
    if days is not None:
        last = last.filter(pl.col("timestamp") >= evaluation.as_of - timedelta(days=days))
    assert evaluation.metrics["n"] == last.height == len(evaluation.test)
    assert evaluation.metrics["population"].startswith(
        f"evaluation input {events_path}: {last.height} customers with cutoff {evaluation.as_of:%Y-%m-%d}"
    )
    assert "one horizon earlier" in evaluation.metrics["baselines_fitted_on"]


def test_train_and_evaluate_jobs_share_the_population_rule(tiny_run, events_path):
    """At the test cutoff on the training events, the evaluate job's population, restricted to
    the test split's customers, is exactly the train job's test population (ids and labels)."""
    from journeyformer.data.events.load import load_events
    from journeyformer.evaluation.protocol import input_protocol, split_protocol

    data = tiny_run.data
    pre = data.preprocessing
    events = load_events(events_path, pre.schema)
    trained = split_protocol(pre, data.splits, data.last_event).test
    (cut,) = pre.cutoffs["test"]
    tasks = list(tiny_run.module.cfg.tasks)
    protocol, _ = input_protocol(pre, events, cut, data.last_event, tasks, str(events_path))
    mine = protocol.test.seqs
    keep = np.flatnonzero(mine.customer_id.is_in(trained.seqs.customer_id.implode()).to_numpy())
    assert mine.take(keep).customer_id.to_list() == trained.seqs.customer_id.to_list()
    for task in tasks:
        np.testing.assert_array_equal(mine.labels[task][keep], trained.seqs.labels[task])
    assert protocol.test.label_window == trained.label_window


def test_report_and_every_plot_are_written(bundle, events_path, tmp_path):
    cfg = {
        "bundle": str(bundle),
        "data": {"path": str(events_path)},
        "output": str(tmp_path / "rep"),
        "progress": False,
    }
    _, out = evaluate_from_config(cfg)
    html = (out / "report.html").read_text()
    PLOTS = [
        "next_action_accuracy_at_k.png",
        "churn_curves.png",
        "churn_reliability.png",
        "stage_confusion.png",
        "value.png",
    ]
    for name in PLOTS:
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert html.count("data:image/png;base64,") == len(PLOTS)
    assert "ECE" in html and "days_since_last_activity" in html
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_no_events_after_as_of_is_a_clear_error(bundle, events_path):
    last = pl.read_parquet(events_path)["timestamp"].max()
    with pytest.raises(EvaluationError, match="no events after as_of"):
        evaluate_bundle(
            bundle, events_path, as_of=(last + timedelta(days=1)).isoformat(), progress=False
        )


def test_missing_column_names_the_bundle_mapping(bundle, events_path, tmp_path):
    broken = tmp_path / "no_device.parquet"
    pl.read_parquet(events_path).drop("device").write_parquet(broken)
    with pytest.raises(EvaluationError, match="device"):
        evaluate_bundle(bundle, broken, progress=False)


def test_boosting_is_a_baseline_with_verdicts_and_curves(evaluation):
    """LightGBM (fitted one horizon before as_of) is in every task's table, the intervals and
    the baselines the report draws; a complete label window gives real verdicts."""
    pytest.importorskip("lightgbm")
    m = evaluation.metrics
    assert m["label_window"]["status"] == "complete"
    for task in m["model"]:
        assert "lightgbm" in m["baselines"][task] and "lightgbm" in evaluation.baselines[task]
        assert m["intervals"][task]["verdict"] in ("beats", "ties", "loses")


def test_a_backtest_loads_the_bundle_and_reads_the_input_once(
    bundle, evaluation, events_path, tmp_path, monkeypatch
):
    """Every as_of of a backtest is evaluated on one loaded bundle and one read of the events,
    with the numbers a single evaluation at that date gives (the module's evaluation, at the
    default as_of, given here as the backtest's last date)."""
    import journeyformer.evaluation.evaluate as evaluate_module
    import journeyformer.inference.scoring as scoring

    calls = {"load_bundle": 0, "load_events": 0}

    def counted(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(scoring, "load_bundle", counted("load_bundle", scoring.load_bundle))
    monkeypatch.setattr(
        evaluate_module, "load_events", counted("load_events", evaluate_module.load_events)
    )
    last = pl.read_parquet(events_path)["timestamp"].max()
    dates = [(last - timedelta(days=90)).date().isoformat(), evaluation.metrics["as_of"]]
    assert dates[0] < dates[1][:10]
    cfg = {"bundle": str(bundle), "data": {"path": str(events_path)}, "output": str(tmp_path / "rep"), "progress": False,
           "as_of": dates, "segments": "default"}  # fmt: skip
    ev, _ = evaluate_from_config(cfg)
    assert calls == {"load_bundle": 1, "load_events": 1}
    assert [d[:10] for d in ev.metrics["backtest"]["as_of"]] == [d[:10] for d in dates]
    assert ev.metrics["backtest"]["tasks"]
    for task, entry in ev.metrics["backtest"]["tasks"].items():
        assert entry["values"]["model"][-1] == pytest.approx(
            evaluation.metrics["model"][task][entry["metric"]]
        )
