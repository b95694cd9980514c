"""Occlusion explanations (inference/explain.py) with a hand-written model."""

from __future__ import annotations

import numpy as np

from journeyformer.data.features.batch import Batch
from journeyformer.inference.explain import Explainer, feature_groups

TICKET = 3  # action id of the planted driver


def fake_run(inputs):
    """churn = 0.1 + 0.5 if a TICKET event is among the real events + 0.1 * context[:, 0];
    value = 10 * context[:, 1]."""
    cat, lengths, ctx = inputs["categorical"], inputs["lengths"], inputs["context"]
    real = np.arange(cat.shape[1])[None, :] < lengths[:, None]
    ticket = ((cat[:, :, 0] == TICKET) & real).any(1)
    return {
        "churn_probability": (0.1 + 0.5 * ticket + 0.1 * ctx[:, 0]).astype(np.float32),
        "expected_value": (10 * ctx[:, 1]).astype(np.float32),
    }


def batch():
    # customer 0: ticket 2nd most recent; customer 1: no ticket; customer 2: a single event
    cat = np.zeros((3, 4, 2), np.int64)
    cat[0, :4, 0] = [1, 2, TICKET, 1]
    cat[1, :3, 0] = [1, 2, 2]
    cat[2, :1, 0] = [TICKET]
    cat[..., 1] = (cat[..., 0] > 0) * 1
    num = np.zeros((3, 4, 1), np.float32)
    num[0, :4, 0] = np.log1p([0.0, 100.0, 50.0, 25.0]) / 10
    inputs = {
        "categorical": cat,
        "numeric": num,
        "lengths": np.array([4, 3, 1]),
        "stage_now": np.zeros(3, np.int64),
        "context": np.array([[2.0, 1.0], [0.0, 5.0], [0.0, 0.0]], np.float32),
    }
    return Batch(np.array([2, 0, 1]), inputs)  # rows land at these positions


def explainer(top=2):
    return Explainer(
        targets={"churn": "churn_probability", "value": "expected_value"},
        groups=(("features: a", np.array([0])), ("features: b", np.array([1]))),
        typical=np.array([0.0, 1.0], np.float32),
        tokens=(("<pad>", "view", "cart", "support_ticket"), ("<pad>", "web")),
        gap_column=0,
        last_events=3,
        top=top,
    )


def test_the_planted_event_ranks_first_and_effects_are_score_differences():
    b = batch()
    own = {k: np.empty((3,), np.float32) for k in ("churn_probability", "expected_value")}
    for k, v in fake_run(dict(b.inputs)).items():
        own[k][b.index] = v
    cols = explainer().explain(3, [b], own, fake_run)
    # customer at row 2 (batch row 0) has the ticket as its 2nd most recent event
    assert cols["churn_drivers"][2] == ["event -2 support_ticket/web", "features: a"]
    assert np.allclose(cols["churn_driver_effects"][2], [0.5, 0.2], atol=1e-6)
    # value: feature b reset from 1.0 to the typical 1.0 changes nothing; from 5.0 it does
    assert cols["value_drivers"][0][0] == "features: b"
    assert np.isclose(cols["value_driver_effects"][0][0], 40.0)
    # a single event is never removed (no sequence would be left)
    assert not any(d.startswith("event") for d in cols["churn_drivers"][1])


def test_removing_an_event_shifts_later_events_and_merges_the_gap():
    b = batch()
    ok = np.array([True, True, False])
    out = explainer()._drop_event(dict(b.inputs), 2, ok)
    assert out["lengths"].tolist() == [3, 2, 1]
    assert out["categorical"][0, :, 0].tolist() == [1, 2, 1, 0]
    assert out["categorical"][1, :, 0].tolist() == [1, 2, 0, 0]
    gap = np.expm1(10 * out["numeric"][0, 2, 0])
    assert np.isclose(gap, 75.0, rtol=1e-4)  # 50 + 25 seconds
    assert np.array_equal(out["categorical"][2], b.inputs["categorical"][2])


def test_feature_groups_by_name():
    names = ["n_events_7d", "n_events", "spend_30d", "recency_days", "n_action=support_ticket",
             "n30_action=support_ticket", "days_since_action=support_ticket", "mean_items", "odd"]  # fmt: skip
    groups = dict(feature_groups(names))
    assert groups["features: activity"].tolist() == [0, 1]
    assert groups["features: action=support_ticket"].tolist() == [4, 5, 6]
    assert "features: mean items" in groups and "features: odd" in groups
