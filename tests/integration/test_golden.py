"""golden.json and preprocessing.json rules: what another runtime would check, checked here."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from journeyformer.inference.bundle import load_bundle
from journeyformer.inference.local import predict_events


@pytest.fixture(scope="module")
def golden(tiny_bundle) -> dict:
    return json.loads((tiny_bundle / "golden.json").read_text())


def _rows(golden: dict, cid: int) -> list[dict]:
    return [r for r in golden["events"] if r["customer_id"] == cid]


def test_bundle_states_every_rule(tiny_bundle):
    spec = load_bundle(tiny_bundle).spec
    rules = spec["preprocessing_rules"]
    for key in ("timestamps", "daylight_saving", "as_of", "nulls", "duplicates", "order",
                "truncation", "vocabulary_ids", "numeric", "context", "stage_now", "padding"):  # fmt: skip
        assert key in rules and rules[key], key
    assert "(as_of - 90 days, as_of]" in rules["context"]
    assert "fractional days" in rules["context"] and "whole minutes" in rules["numeric"]
    assert "'<null>'" in rules["nulls"] and "map to 1, never to 0" in rules["vocabulary_ids"]
    assert "a naive as_of is UTC" in rules["as_of"]
    assert spec["golden"] == "golden.json"


def test_golden_outputs_are_what_the_predict_job_writes(tiny_bundle, golden, tmp_path):
    events = pl.DataFrame(golden["events"], infer_schema_length=None)
    events.write_parquet(tmp_path / "golden_events.parquet")
    result = predict_events(
        tiny_bundle, tmp_path / "golden_events.parquet", tmp_path / "p.parquet",
        as_of=golden["as_of"], progress=False,
    )  # fmt: skip
    pred = pl.read_parquet(tmp_path / "p.parquet").sort("customer_id")
    assert pred["customer_id"].to_list() == golden["customer_id"]
    assert pl.read_parquet(result.rejects)["customer_id"].to_list() == golden["rejected"]
    np.testing.assert_allclose(
        pred["churn_probability"], golden["outputs"]["churn_probability"], rtol=1e-6
    )
    np.testing.assert_allclose(pred["expected_value"], golden["outputs"]["expected_value"], rtol=1e-6)


def test_golden_inputs_follow_the_stated_rules(tiny_bundle, golden):
    """Recompute inputs from the raw events with plain Python, as preprocessing.json states."""
    spec = load_bundle(tiny_bundle).spec["preprocessing"]
    as_of = datetime.fromisoformat(golden["as_of"])
    index = {c: i for i, c in enumerate(golden["customer_id"])}
    inputs = {k: np.asarray(v) for k, v in golden["inputs"].items()}
    names = spec["feature_names"]["numeric"]

    def at(s: str) -> datetime:  # naive strings are UTC in this bundle (data.time_zone)
        t = datetime.fromisoformat(s)
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)

    # Customer 1: seconds with microseconds, fractional days, whole minutes, a tie.
    c1 = _rows(golden, 910_000_001)
    i = index[910_000_001]
    ts = [at(r["timestamp"]) for r in c1]
    num = inputs["numeric"][i]
    gap = (ts[1] - ts[0]).total_seconds()
    assert num[1, names.index("log_gap")] == pytest.approx(math.log1p(gap) / 10, rel=1e-6)
    assert num[0, names.index("log_gap")] == 0.0 and num[3, names.index("log_gap")] == 0.0
    age = (as_of - ts[4]).total_seconds()
    assert age % 1 != 0  # the microseconds matter
    assert num[4, names.index("log_age")] == pytest.approx(math.log1p(age) / 10, rel=1e-6)
    minute = ts[2].hour * 60 + ts[2].minute  # UTC; seconds dropped
    assert num[2, names.index("hour_sin")] == pytest.approx(
        math.sin(2 * math.pi * minute / 1440), abs=1e-7
    )
    assert num[2, names.index("dow_cos")] == pytest.approx(
        math.cos(2 * math.pi * ts[2].weekday() / 7), abs=1e-7
    )
    tenure = (as_of - ts[0]).total_seconds() / 86400
    context = spec["feature_names"]["context"]
    # log1p of the same quantities under the summary context's or the aggregates' names
    summary = "log_tenure_days" in context
    name = {"tenure": "log_tenure_days", "window": "log_n_purchases_window", "events": "log_n_events"}
    if not summary:
        assert spec["labels"]["loyalty_window_days"] == 90
        name = {"tenure": "tenure_days", "window": "n_purchases_90d", "events": "n_events"}
    assert inputs["context"][i, context.index(name["tenure"])] == pytest.approx(
        math.log1p(tenure), rel=1e-6
    )
    actions = spec["vocabs"]["action"]
    assert inputs["categorical"][i, 2, 0] == actions.index(c1[2]["action"])
    assert inputs["categorical"][i, 3, 0] == actions.index(c1[3]["action"])  # input order

    # Customer 3: tokens and duplicates.
    i = index[910_000_003]
    cat = inputs["categorical"][i]
    channels = spec["vocabs"]["channel"]
    null_id = channels.index("<null>") if "<null>" in channels else 1
    assert cat[0, 1] == null_id
    assert cat[1, 0] == 1  # unseen action
    assert cat[2, 1] == 1 and cat[2, 2] == 1  # literal <pad>: unknown, not padding
    assert inputs["lengths"][i] == 6  # 6 rows, all kept: null vs 0 amount is no copy

    # Customer 4: the half-open loyalty window and as_of itself.
    i = index[910_000_004]
    window = timedelta(days=spec["labels"]["loyalty_window_days"])
    rows = [at(r["timestamp"]) for r in _rows(golden, 910_000_004)]
    in_window = sum(as_of - window < t <= as_of for t in rows)
    assert in_window == 3
    assert inputs["context"][i, context.index(name["window"])] == pytest.approx(
        math.log1p(in_window), rel=1e-6
    )
    assert inputs["context"][i, context.index(name["events"])] == pytest.approx(math.log(6))
    assert inputs["stage_now"][i] == spec["feature_names"]["stages"].index("retention")


def test_golden_events_are_all_kept_by_validation(tiny_bundle, golden, caplog):
    """No golden event is one that validation drops (a duplicate, a null key): every row of
    the file is part of the example another runtime reproduces."""
    from journeyformer.data.events.normalize import normalize
    from journeyformer.data.events.validate import validate

    schema = load_bundle(tiny_bundle).schema()
    raw = pl.DataFrame(golden["events"], schema_overrides={schema.source("timestamp"): pl.String},
                       infer_schema_length=None)  # fmt: skip
    with caplog.at_level("WARNING"):
        events = validate(normalize(raw.lazy(), schema, "golden.json").collect(), schema, "golden.json")
    assert events.height == len(golden["events"])
    assert not [r for r in caplog.records if "dropped" in r.getMessage()]
