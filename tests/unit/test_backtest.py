"""Backtest dates and series, segment table and transitions (evaluation/backtest.py, segments.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest

from journeyformer.errors import ConfigError
from journeyformer.evaluation.backtest import backtest_dates, backtest_series
from journeyformer.evaluation.segments import segment_table, transition_matrix

END = datetime(2025, 12, 1, tzinfo=timezone.utc)


def test_backtest_dates_from_a_list_or_a_range():
    assert backtest_dates("2025-10-01", None, END) is None
    assert backtest_dates(None, {"every_days": None}, END) is None
    got = backtest_dates(["2025-11-01", "2025-09-01", "2025-11-01"], None, END)
    assert [d.month for d in got] == [9, 11]
    rng = backtest_dates(None, {"every_days": 30, "start": "2025-09-01"}, END)
    assert [d.strftime("%m-%d") for d in rng] == ["09-01", "10-01", "10-31", "11-30"]
    with pytest.raises(ConfigError, match="not both"):
        backtest_dates(["2025-11-01"], {"every_days": 7, "start": "2025-01-01"}, END)
    with pytest.raises(ConfigError, match="needs backtest.start"):
        backtest_dates(None, {"every_days": 7}, END)
    with pytest.raises(ConfigError, match="more than"):
        backtest_dates(None, {"every_days": 1, "start": "2025-01-01"}, END)


def test_backtest_series_collects_headlines_of_model_and_baselines():
    runs = [
        (END, {"model": {"churn": {"auroc": 0.8}}, "baselines": {"churn": {"rfm": {"auroc": 0.7}}}}),
        (END, {"model": {"churn": {"auroc": 0.9}}, "baselines": {"churn": {}}}),
    ]
    s = backtest_series(runs, {"churn": "auroc"})
    assert s["tasks"]["churn"] == {"metric": "auroc", "values": {"model": [0.8, 0.9], "rfm": [0.7, None]}}


def test_segment_table_and_transitions():
    t = segment_table(["a", "b", "a"], ["a", "b", "c"], {"churn": (np.array([0.1, 0.5, 0.3]), np.array([0, 1, 1]))})
    assert t["customers"].to_list() == [2, 1, 0]
    assert t.filter(pl.col("segment") == "a")["actual_churn"].item() == 0.5
    m, n = transition_matrix(
        pl.DataFrame({"customer_id": [1, 2, 3], "segment": ["a", "a", "b"]}),
        pl.DataFrame({"customer_id": [1, 2, 4], "segment": ["a", "b", "b"]}),
        ["a", "b"],
    )
    assert n == 2 and m.row(0, named=True) == {"from": "a", "a": 0.5, "b": 0.5, "customers": 2}


def test_decision_plots_draw_the_backtest_segment_table_and_transitions():
    pytest.importorskip("matplotlib")
    from journeyformer.evaluation.decisions import decision_plots

    runs = [(datetime(2025, m, 1, tzinfo=timezone.utc), {"model": {"churn": {"auroc": 0.9}}, "baselines": {"churn": {"rfm": {"auroc": 0.8}}}}) for m in (9, 10, 11)]
    table = segment_table(["a", "b", "a"], ["a", "b", "c"], {"churn": (np.array([0.2, 0.8, 0.4]), np.array([0, 1, 1])), "value": (np.array([5.0, 1.0, 3.0]), np.array([4.0, 0.0, 9.0]))})
    matrix, n = transition_matrix(
        pl.DataFrame({"customer_id": [1, 2], "segment": ["a", "b"]}), pl.DataFrame({"customer_id": [1, 2], "segment": ["b", "b"]}), ["a", "b"]
    )
    metrics = {
        "backtest": backtest_series(runs, {"churn": "auroc"}),
        "segments": {"as_of": "2025-11-01T00:00:00+00:00", "rules": [], "table": table.to_dicts()},
        "segment_transitions": {"customers": n, "matrix": matrix.to_dicts()},
    }
    pngs = decision_plots(metrics)
    assert list(pngs) == ["backtest.png", "segments.png", "segment_transitions.png"]
    assert all(png.startswith(b"\x89PNG") for _, png in pngs.values())
    assert "predicted against actual" in pngs["segments.png"][0]
    assert decision_plots({"segments": {"as_of": "x", "rules": [], "table": []}}) == {}
