"""Segment rules (inference/segments.py) and the default rules file."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from journeyformer.errors import ConfigError
from journeyformer.inference.decisions import default_segments
from journeyformer.inference.reference import Reference
from journeyformer.inference.segments import SegmentRules, history_inputs
from journeyformer.metrics.drift import CONTINUOUS, profile

COLUMNS = ("n_events", "churn_probability", "expected_value", "stage")


def reference(values) -> Reference:
    return Reference("test", len(values), {"score/expected_value": profile(np.asarray(values, float), CONTINUOUS).to_dict()})


def frame(**cols) -> pl.DataFrame:
    return pl.DataFrame(cols)


def test_first_matching_rule_wins_and_quantiles_come_from_the_reference():
    cfg = {
        "rules": [
            {"name": "vip at risk", "when": {"expected_value": ">= q0.9", "churn_probability": ">= 0.5"}},
            {"name": "at risk", "when": {"churn_probability": ">= 0.5"}},
            {"name": "loyal", "when": {"stage_now": ["loyalty"]}},
        ],
        "otherwise": "rest",
    }
    rules = SegmentRules.from_config(cfg, COLUMNS, reference(np.arange(101)))
    assert rules.segments[0].conditions[0].value == pytest.approx(90.0)
    f = frame(
        expected_value=[95.0, 95.0, 10.0, 10.0, 10.0],
        churn_probability=[0.6, 0.2, 0.9, 0.1, None],
        stage_now=["retention", "loyalty", "loyalty", "retention", "loyalty"],
    )
    assert rules.assign(f).to_list() == ["vip at risk", "loyal", "at risk", "rest", "loyal"]
    assert rules.names == ("vip at risk", "at risk", "loyal", "rest")
    assert "expected_value >= q0.9 (= 90)" in rules.describe()[0]["rule"]


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"rules": [{"name": "x", "when": {"churn": ">= 0.5"}}]}, "unknown column 'churn'"),
        ({"rules": [{"name": "x", "when": {"expected_value": ">= q1.5"}}]}, "q<p> with p in"),
        ({"rules": [{"name": "x", "wehn": {}}]}, "unknown key"),
        ({"rule": []}, "unknown key"),
    ],
)
def test_bad_rules_are_errors_naming_the_rule(cfg, message):
    with pytest.raises(ConfigError, match=message):
        SegmentRules.from_config(cfg, COLUMNS, reference([1.0, 2.0]))


def test_a_quantile_rule_needs_the_bundle_reference():
    cfg = {"rules": [{"name": "x", "when": {"expected_value": ">= q0.5"}}]}
    with pytest.raises(ConfigError, match="no reference.json"):
        SegmentRules.from_config(cfg, COLUMNS, None)
    numeric = {"rules": [{"name": "x", "when": {"expected_value": ">= 3"}}]}
    assert SegmentRules.from_config(numeric, COLUMNS, None).assign(frame(expected_value=[1.0, 5.0])).to_list() == ["other", "x"]


def test_default_rules_parse_and_history_inputs():
    cols = (*COLUMNS, "spend_probability")
    rules = SegmentRules.from_config(default_segments(), cols, reference(np.linspace(0, 100, 50)))
    assert rules.names[0] == "high value at risk" and rules.names[-1] == "steady"
    summary = pl.DataFrame({"tenure_days": [3.0, 200.0, 90.0], "recency_days": [1.0, 2.0, 60.0]})
    h = history_inputs(np.array([0, 3, 4]), pl.Series(["consideration", "retention", "churned"]), summary)
    assert list(h["stage_trend"]) == ["up", "same", "churn"]
    assert list(h["stage_now"]) == ["acquisition", "retention", "loyalty"]
