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


def _polars_reference(rules: SegmentRules, f: pl.DataFrame) -> list[str]:
    """The rules as one Polars when/then chain (how they were evaluated before NumPy)."""
    expr = pl.lit(rules.otherwise)
    for seg in reversed(rules.segments):
        cond = pl.lit(True)
        for c in seg.conditions:
            col = pl.col(c.column)
            cond = cond & (col.cast(pl.String).is_in(list(c.value)) if c.op == "in" else getattr(col, c.op)(c.value)).fill_null(False)
        expr = pl.when(cond).then(pl.lit(seg.name)).otherwise(expr)
    return f.select(expr.cast(pl.String)).to_series().to_list()


def test_numpy_assignment_matches_the_polars_expression_with_nulls_and_history_inputs():
    rng = np.random.default_rng(3)
    n = 400
    rules = SegmentRules.from_config(default_segments(), (*COLUMNS, "spend_probability"), reference(rng.gamma(2.0, 50.0, 300)))
    churn = rng.random(n)
    churn[rng.random(n) < 0.1] = np.nan
    summary = pl.DataFrame({"tenure_days": rng.integers(0, 400, n).astype(float), "recency_days": rng.integers(0, 90, n).astype(float)})
    stage = pl.Series("stage", rng.choice(["acquisition", "retention", "loyalty", "churned"], n))
    history = history_inputs(rng.integers(0, 6, n), stage, summary)
    preds = pl.DataFrame({"churn_probability": churn, "expected_value": rng.gamma(2.0, 50.0, n), "stage": stage}).with_columns(
        pl.col("churn_probability").fill_nan(None)
    )
    got = rules.assign(preds, history).to_list()
    want = _polars_reference(rules, preds.with_columns(**{k: pl.Series(k, v) for k, v in history.items()}))
    assert got == want
    assert len(set(got)) >= 5  # the random frame reaches most rules, so the comparison means something
