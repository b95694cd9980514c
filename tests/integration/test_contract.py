"""The ONNX contract: docs/onnx-contract.md is what a freshly exported bundle renders, and a
client written from the bundle's rules alone (tests/reference_client.py, NumPy and the standard
library, nothing of journeyformer) reproduces golden.json and journeyformer's own inputs.

The tiny bundle stands in for the default configuration: the page reads only what the two share
(rules, settings, vocabularies, feature names; the embedding width is written as D), and
``test_tiny_bundle_has_the_default_configuration_preprocessing`` checks that they do share it.
"""

from __future__ import annotations

import json
import random
import runpy
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import reference_client as rc
from support import compose_train

from journeyformer.data.events.normalize import normalize
from journeyformer.data.events.validate import validate
from journeyformer.data.features.batch import MODEL_INPUTS, pad
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.errors import EventDataError
from journeyformer.export.contract import _md, check_page, contract_markdown
from journeyformer.export.golden import TOLERANCE
from journeyformer.export.rules import preprocessing_rules
from journeyformer.inference.bundle import load_bundle

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "onnx-contract.md"
SCRIPT = ROOT / "scripts" / "onnx_contract.py"
REGENERATE = "regenerate it: python scripts/onnx_contract.py <fresh bundle> --out docs/onnx-contract.md"


# ---- the page ---------------------------------------------------------------------------
def test_checked_in_page_is_what_a_fresh_bundle_renders(tiny_bundle):
    diff = check_page(tiny_bundle, PAGE)
    assert diff is None, f"docs/onnx-contract.md is out of date ({REGENERATE}):\n{diff}"


def test_page_states_every_rule_input_and_tolerance(tiny_bundle):
    spec = load_bundle(tiny_bundle).spec
    rules = spec["preprocessing_rules"]
    assert rules == json.loads(json.dumps(preprocessing_rules(spec["preprocessing"])))
    page = contract_markdown(tiny_bundle)
    for key, rule in rules.items():
        if isinstance(rule, str):
            assert _md(rule) in page, key
        else:  # numeric_columns, context_columns: every column by name, with its definition
            pre = spec["preprocessing"]["feature_names"]
            assert list(rule) == pre[key.removesuffix("_columns")]
            for name, definition in rule.items():
                assert f"| `{name}` | {_md(definition)} |" in page, name
    for item in spec["onnx"]["inputs"]:
        dims = ", ".join({"batch": "B", "seq_len": "T"}.get(d, str(d)) for d in item["shape"])
        assert f"| `{item['name']}` | {item['dtype']} | ({dims}" in page
    context = next(i for i in spec["onnx"]["inputs"] if i["name"] == "context")
    assert context["shape"][-1] == len(rules["context_columns"])
    # One tolerance definition: golden.json holds it, the page states its numbers.
    golden = json.loads((tiny_bundle / "golden.json").read_text())
    assert golden["tolerance"] == json.loads(json.dumps(TOLERANCE))
    for key, tol in TOLERANCE.items():
        assert f"| `{key}` |" in page and f"| {tol['atol']:g} | {tol['rtol']:g} |" in page
    for stale in ("| `context` | float32 | (B, 6)", "features.numeric_names", "features.context_names", "1e-6 relative"):
        assert stale not in page


def test_tiny_bundle_has_the_default_configuration_preprocessing(tiny_bundle, tmp_path):
    """What the page reads is the same for the tiny run and the default configuration, so the
    page the test renders is the default configuration's (vocabularies fitted on the default
    synthetic data, made in memory)."""
    from omegaconf import OmegaConf

    from journeyformer.data.events.order import ROW
    from journeyformer.synthetic.config import SyntheticConfig
    from journeyformer.synthetic.journeys import generate_journeys

    cfg = compose_train([], tmp_path)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    labels = OmegaConf.to_container(cfg.labels, resolve=True)
    world = data["synthetic"]
    events = generate_journeys(SyntheticConfig(n_customers=world["n_customers"], seed=world["seed"])).events
    default = Preprocessing.fit(events.with_row_index(ROW), data, labels).to_dict()
    spec = load_bundle(tiny_bundle).spec
    for key in ("schema", "features", "feature_names", "labels", "vocabs"):
        assert spec["preprocessing"][key] == default[key], (
            f"preprocessing.{key} of the tiny test bundle differs from the default configuration's: "
            "the page rendered in CI would no longer be the default's"
        )
    tasks = {k for k, w in OmegaConf.to_container(cfg.model.tasks).items() if w}
    if not (data.get("columns") or {}).get("item"):  # without an item column next_item is off
        tasks.discard("next_item")
    assert tasks == set(spec["tasks"])


def test_script_writes_and_checks_the_page(tiny_bundle, tmp_path, capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    page = tmp_path / "contract.md"
    assert main([str(tiny_bundle), "--out", str(page)]) == 0
    assert page.read_text() == contract_markdown(tiny_bundle)
    assert main([str(tiny_bundle), "--out", str(page), "--check"]) == 0
    page.write_text(page.read_text().replace("ROUNDED TO FLOAT32 FIRST", "rounded"))
    assert main([str(tiny_bundle), "--out", str(page), "--check"]) == 1
    out = capsys.readouterr()
    assert "-" in out.out and "ROUNDED TO FLOAT32 FIRST" in out.out and "out of date" in out.err


# ---- the reference client on golden.json ----------------------------------------------
# Tighter than the contract's tolerance: the written rules (float32 rounding included) give the
# same float32 values as journeyformer, up to float64 noise (a sum or standard deviation taken
# in another order: 0 vs 1e-16 for the deviation of equal gaps). A rule left out, such as the
# rounding of each aggregate to float32 before its log, moves values by a float32 ulp (~1e-7),
# inside TOLERANCE["inputs"] but not inside this (which implies it).
EXACT = {"atol": 1e-12, "rtol": 0.0}


def _assert_same(got: dict[str, np.ndarray], want: dict[str, Any], pre: dict, what: str) -> None:
    for name in MODEL_INPUTS:
        a, b = got[name], np.asarray(want[name])
        assert a.shape == b.shape, f"{what}: {name} shape {a.shape} != {b.shape}"
        if name in ("numeric", "context"):
            bad = ~rc.within(a, b.astype(np.float32), EXACT)
            if bad.any():
                cols = pre["feature_names"][name]
                where = [(tuple(int(i) for i in ix), cols[ix[-1]], float(a[tuple(ix)]), float(b[tuple(ix)]))
                         for ix in np.argwhere(bad)[:8]]  # fmt: skip
                raise AssertionError(f"{what}: {name} differs at (index, column, got, want) {where}")
        else:
            assert a.dtype == np.int64
            np.testing.assert_array_equal(a, b, err_msg=f"{what}: {name}")


def test_reference_client_rebuilds_the_golden_inputs_and_outputs(tiny_bundle):
    import onnxruntime as ort

    spec, golden = rc.load(tiny_bundle)
    got = rc.model_inputs(spec["preprocessing"], golden["events"], golden["as_of"])
    assert got.customer_id == golden["customer_id"] and got.rejected == golden["rejected"]
    _assert_same(got.inputs, golden["inputs"], spec["preprocessing"], "golden.json")
    session = ort.InferenceSession(str(tiny_bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o["name"] for o in spec["onnx"]["outputs"]]
    outputs = dict(zip(names, session.run(names, got.inputs), strict=True))
    tol = golden["tolerance"]["outputs"]
    for name in names:
        expected = np.asarray(golden["outputs"][name])
        assert rc.within(outputs[name], expected, tol).all(), name


# ---- the reference client against journeyformer on awkward events ----------------------
AS_OF = datetime(2025, 11, 1, tzinfo=timezone.utc)
US = timedelta(microseconds=1)
DAY = timedelta(days=1)


def _journeyformer(pre: Preprocessing, rows: list[dict], as_of: str) -> tuple[list, dict[str, np.ndarray]]:
    """What golden.py and predict do: normalize -> validate -> sequences -> pad."""
    raw = pl.DataFrame(rows, infer_schema_length=None)
    events = validate(normalize(raw.lazy(), pre.schema, "test").collect(), pre.schema, "test")
    seqs = pre.sequences(events, datetime.fromisoformat(as_of), with_labels=False, active_only=False)
    return seqs.customer_id.to_list(), pad(seqs, np.arange(len(seqs)))


class Rows:
    """Raw rows in the user's column names, built from the bundle's vocabularies."""

    def __init__(self, pre: Preprocessing) -> None:
        self.pre, self.rows = pre, []
        actions = list(pre.vocabs["action"].tokens[2:])
        self.purchase = pre.labels.purchase_actions[0]
        self.intent = pre.labels.intent_actions[0]
        self.other = next(a for a in actions if a not in (*pre.labels.purchase_actions, *pre.labels.intent_actions))
        self.channel = pre.vocabs["channel"].tokens[2]

    def add(self, cid: Any, t: datetime | str | int, action: str | None, amount: float | None = 0.0,
            channel: str | None = "", note: str = "", **extra: Any) -> None:  # fmt: skip
        cols = self.pre.schema.to_dict()["columns"]
        ts = t.isoformat() if isinstance(t, datetime) else t
        row = {cols["customer_id"]: cid, cols["timestamp"]: ts, cols["action"]: action,
               cols["channel"]: self.channel if channel == "" else channel, "note": note}  # fmt: skip
        if cols.get("amount"):
            row[cols["amount"]] = amount
        for c in self.pre.schema.extra_categorical:
            row[c] = extra.get(c, self.pre.vocabs[c].tokens[2] if c in self.pre.vocabs else "x")
        for c in self.pre.schema.extra_numeric:
            row[c] = extra.get(c, 1.0)
        self.rows.append(row)


def awkward_rows(pre: Preprocessing) -> list[dict]:
    """Duplicates, nulls, literal tokens, ties, window and stage boundaries, two-event and
    one-event histories, truncation, events after as_of; rows shuffled across customers."""
    r = Rows(pre)
    a = AS_OF
    extra = {c: None for c in (*pre.schema.extra_categorical, *pre.schema.extra_numeric)}
    # 1: nulls, an exact duplicate (dropped), a near duplicate (kept, a tie), literal tokens.
    r.add(1, a - 10 * DAY, r.intent, None, channel=None, note="nulls", **extra)
    r.add(1, a - 10 * DAY, r.intent, None, channel=None, note="nulls", **extra)
    r.add(1, a - 10 * DAY, r.intent, 0.0, channel=None, note="nulls", **extra)
    r.add(1, a - 9 * DAY, "<pad>", 3.0, channel="<unk>", note="literal tokens",
          **{c: "<pad>" for c in pre.schema.extra_categorical})  # fmt: skip
    r.add(1, a - 9 * DAY + US, None, 1.5, channel="<null>", note="null action")
    r.add(1, a - 8 * DAY, "never_seen_action", -7.25, note="unknown value, negative amount")
    r.add(1, a - 8 * DAY, r.purchase, -7.25, note="refund at the same instant")
    # 2: window boundaries of 7, 30 and 90 days and as_of itself; events after as_of.
    for w in (7, 30, 90):
        r.add(2, a - w * DAY, r.purchase, 10.0 + w, note=f"exactly {w} days: outside")
        r.add(2, a - w * DAY + US, r.purchase, 20.0 + w, note=f"{w} days - 1 us: inside")
    r.add(2, a, r.other, 1.0, note="at as_of: inside")
    r.add(2, a + US, r.purchase, 99.0, note="after as_of: ignored")
    # 3: two events (one gap: gap std does not exist); 4: one event; 5: two at one instant.
    r.add(3, a - 3 * DAY - timedelta(hours=5, seconds=1.25), r.intent)
    r.add(3, a - 1 * DAY, r.other)
    r.add(4, a - 400 * DAY + timedelta(seconds=59.999999), r.other, note="minute 0, 59.999999 s")
    r.add(5, a - 2 * DAY, r.purchase, 5.0)
    r.add(5, a - 2 * DAY, r.other, 0.0)
    # 6, 7: recency exactly churned_after_days (churned) and 1 us less (not).
    r.add(6, a - timedelta(days=pre.labels.churned_after_days), r.intent)
    r.add(7, a - timedelta(days=pre.labels.churned_after_days) + US, r.intent)
    # 8: loyalty window boundary: purchases at as_of - window (outside) and after it.
    window = timedelta(days=pre.labels.loyalty_window_days)
    for t in (a - window, a - window + US, a - 50 * DAY, a - 10 * DAY, a):
        r.add(8, t, r.purchase, 2.0)
    # 9: longer than max_len, with ties; 10: nothing at or before as_of (rejected).
    tokens = list(pre.vocabs["action"].tokens[2:])
    for i in range(pre.max_len + 5):
        t = a - (pre.max_len + 5 - i) * timedelta(hours=7, minutes=3, seconds=1, microseconds=17)
        tie = timedelta(hours=7, minutes=3, seconds=1, microseconds=17) if i % 3 == 0 else timedelta(0)
        r.add(9, t - tie, tokens[i % len(tokens)], float(i % 4), items=float(i % 5))
    r.add(10, a + 3 * DAY, r.purchase, 4.0)
    random.Random(0).shuffle(r.rows)
    return r.rows


def berlin_rows(pre: Preprocessing) -> list[dict]:
    """Naive wall times in Europe/Berlin around both daylight-saving changes of 2025."""
    r = Rows(pre)
    r.add(1, "2025-10-26T01:59:59", r.intent, note="CEST, 23:59:59Z the day before")
    r.add(1, "2025-10-26T02:30:00", r.other, note="repeated: the earlier instant, 00:30Z")
    r.add(1, "2025-10-26T02:30:00+01:00", r.purchase, 9.0, note="the later instant, 01:30Z")
    r.add(1, "2025-10-26T02:15:00+02:00", r.other, note="00:15Z, before both")
    r.add(1, "2025-10-26T02:59:59.999999", r.other, note="repeated, earlier: 00:59:59.999999Z")
    r.add(1, "2025-10-26 03:00", r.intent, note="CET, 02:00Z")
    r.add(2, "2025-03-30T01:59:59", r.intent, note="CET, 00:59:59Z")
    r.add(2, "2025-03-30T03:00:00", r.other, note="CEST, 01:00Z: one second later")
    r.add(3, "2025-06-01T00:30:00", r.other, note="Sunday 00:30 in Berlin, Saturday 22:30Z")
    r.add(3, "2025-06-01", r.intent, note="a date: local midnight, 22:00Z")
    r.add(3, "2025-10-31T23:59:59.5Z", r.purchase, 3.0, note="with an offset")
    return r.rows


def _variant(base: Preprocessing, name: str) -> Preprocessing:
    if name == "berlin":
        zone = "Europe/Berlin"
        return replace(base, schema=replace(base.schema, time_zone=zone), features=replace(base.features, time_zone=zone))
    if name == "summary":
        return replace(base, features=replace(base.features, context="summary"))
    if name == "keep_duplicates":
        return replace(base, schema=replace(base.schema, duplicates="keep"))
    if name == "activity":
        return replace(base, labels=replace(base.labels, activity_actions=tuple(base.labels.purchase_actions)))
    return base


@pytest.mark.parametrize("variant", ["utc", "summary", "keep_duplicates", "activity", "berlin"])
def test_reference_client_matches_journeyformer_on_awkward_events(tiny_bundle, variant):
    pre = _variant(load_bundle(tiny_bundle).preprocessing, variant)
    rows = berlin_rows(pre) if variant == "berlin" else awkward_rows(pre)
    as_of = "2025-11-01T00:00:00"  # naive: UTC, also where data.time_zone is Europe/Berlin
    ids, want = _journeyformer(pre, rows, as_of)
    spec = json.loads(json.dumps(pre.to_dict()))  # what preprocessing.json would hold
    got = rc.model_inputs(spec, rows, as_of)
    assert got.customer_id == ids
    _assert_same(got.inputs, want, spec, variant)
    if variant == "utc":
        assert got.rejected == [10]
        context = dict(zip(spec["feature_names"]["context"], got.inputs["context"][ids.index(3)], strict=True))
        assert context["gap_std_days"] == -1.0 and context["gap_mean_days"] > 0  # two events
        stages = spec["feature_names"]["stages"]
        stage = dict(zip(ids, got.inputs["stage_now"].tolist(), strict=True))
        assert stages[stage[6]] == "churned" and stages[stage[7]] != "churned"
        assert stages[stage[8]] == "loyalty"


def test_reference_client_matches_journeyformer_on_epoch_numbers_and_string_ids(tiny_bundle):
    pre = load_bundle(tiny_bundle).preprocessing
    r = Rows(pre)
    base_ms = int((AS_OF - 5 * DAY).timestamp() * 1000)
    for k, cid in enumerate(["b", "a10", "a9", "B", "é", "a10"]):
        r.add(cid, base_ms + 1_500 * k, r.other if k % 2 else r.intent, float(k))
    r.add("a9", base_ms + 1_500 * 2, r.purchase, 2.5, note="a tie with the row above")
    ids, want = _journeyformer(pre, r.rows, AS_OF.isoformat())
    spec = json.loads(json.dumps(pre.to_dict()))
    got = rc.model_inputs(spec, r.rows, AS_OF.isoformat())
    assert got.customer_id == ids == ["B", "a10", "a9", "b", "é"]
    _assert_same(got.inputs, want, spec, "epoch ms, string ids")


@pytest.mark.parametrize(
    ("variant", "timestamps"),
    [
        ("berlin", ["2025-03-30T02:30:00"]),  # a wall time skipped by daylight saving
        ("utc", [1_700_000_000, 1_700_000_000_000]),  # epoch seconds and milliseconds mixed
        ("utc", ["2025-10-01T00:00:00", None]),  # a null timestamp (null_keys: error)
        ("utc", ["2025-10-01T25:00:00"]),  # not a time
    ],
)
def test_reference_client_stops_where_journeyformer_stops(tiny_bundle, variant, timestamps):
    pre = _variant(load_bundle(tiny_bundle).preprocessing, variant)
    r = Rows(pre)
    for t in timestamps:
        r.add(1, t, r.intent)
    with pytest.raises(EventDataError):
        _journeyformer(pre, r.rows, AS_OF.isoformat())
    with pytest.raises(rc.RuleError):
        rc.model_inputs(json.loads(json.dumps(pre.to_dict())), r.rows, AS_OF.isoformat())
