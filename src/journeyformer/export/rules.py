"""The preprocessing contract in words, for ``preprocessing.json["preprocessing_rules"]``.

Every formula, unit, rounding, window boundary, token and time-zone rule that turns raw events
into the five model inputs, with this bundle's settings filled in, so an implementation in
another language can be written from the bundle alone and checked with ``golden.json``. Keys
name ``preprocessing.json`` paths in full (``preprocessing.feature_names.context``, ...).
``numeric_columns`` and ``context_columns`` define every column of the ``numeric`` and
``context`` inputs by name, in input order; a column this module has no definition for is an
error at export (add its rule here when you add a feature).

Each statement mirrors code: :mod:`journeyformer.data.events.timestamps`, :mod:`~journeyformer.data.events.schema`,
:mod:`~journeyformer.data.events.validate`, :mod:`~journeyformer.data.events.order`,
:mod:`~journeyformer.data.events.as_of`, :mod:`~journeyformer.data.features.vocab`,
:mod:`~journeyformer.data.labels.lifecycle` (history summary, stages), :mod:`~journeyformer.data.features.definitions`
(per-event features, the summary context), :mod:`~journeyformer.data.features.aggregates` (the aggregate
context) and :mod:`~journeyformer.data.features.sequences` (truncation, rows). ``tests/reference_client.py``
rebuilds the golden inputs from these statements alone, and ``docs/onnx-contract.md`` is
rendered from them (:mod:`journeyformer.export.contract`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from journeyformer.data.events.as_of import MIN_SLACK, SLACK_SHARE, STRAY_SHARE
from journeyformer.data.events.schema import NULL_CATEGORY
from journeyformer.data.features.aggregates import WINDOWS_DAYS
from journeyformer.data.features.definitions import CONTEXT_NUMERIC, EVENT_NUMERIC
from journeyformer.data.features.vocab import PAD, PAD_ID, UNK, UNK_ID
from journeyformer.data.labels.lifecycle import STAGES
from journeyformer.export.golden import TOLERANCE

DAY_US = "86400000000"  # microseconds per day, as written in the rules
RECENT_DAYS = 30  # the n30_<col>=<value> window of data/features/aggregates.py


def _list(values: Any) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]" if values is not None else "null"


def tolerance_text() -> str:
    """The comparison golden.json asks for, in words (from its one definition, ``TOLERANCE``)."""
    def bound(t: Mapping[str, Any]) -> str:
        return f"within |got - expected| <= atol + rtol * |expected|, atol = {t['atol']:g}, rtol = {t['rtol']:g}"

    parts = []
    for key, t in TOLERANCE.items():
        if key == "inputs":
            parts.append(
                "inputs (golden.json `inputs`) first: ids (categorical, lengths, stage_now) "
                + ("exactly equal" if t["ids"] == "exact" else f"equal within {t['ids']}")
                + f"; numeric and context {bound(t)}"
            )
        else:
            parts.append(f"then golden.json `{key}` {bound(t)}")
    return "; ".join(parts) + " (golden.json `tolerance` holds these numbers)."


def numeric_columns(pre: Mapping[str, Any]) -> dict[str, str]:
    """Name -> definition of every column of the ``numeric`` input, in input order."""
    tz = pre["features"]["time_zone"]
    wall = f"the event's wall time in preprocessing.features.time_zone = '{tz}'"
    defs = {
        "log_amount": "sign(a) * ln(1 + |a|) of the event's amount a (currency units; 0 when null, NaN or not mapped)",
        "log_gap": (
            "ln(1 + g) / 10 with g = (t - t_prev) / 1e6: seconds, fractional (microsecond "
            "precision), since the customer's previous event in H (kept in the sequence or not); "
            "0 for the first event of H and 0 between two events at the same instant"
        ),
        "log_age": "ln(1 + s) / 10 with s = (as_of - t) / 1e6: seconds, fractional, from the event to as_of",
        "hour_sin": (
            f"sin(m * (2*pi/1440)) with m = the minute of the day (0..1439) of {wall} "
            "(whole minutes: seconds are dropped, not rounded)"
        ),
        "hour_cos": "cos(m * (2*pi/1440)), m as for hour_sin",
        "dow_sin": f"sin(d * (2*pi/7)) with d = the weekday of {wall}, Monday = 0 ... Sunday = 6",
        "dow_cos": "cos(d * (2*pi/7)), d as for dow_sin",
    }
    assert set(defs) == set(EVENT_NUMERIC), "a per-event feature without its rule"
    for x in pre["features"]["numeric"]:
        defs[x] = f"sign(x) * ln(1 + |x|) of the event's extra numeric column '{x}' (0 when null or NaN)"
    return _in_order(defs, pre["feature_names"]["numeric"], "numeric")


def _aggregate_columns(pre: Mapping[str, Any]) -> dict[str, str]:
    """Definitions of the aggregate context (data/features/aggregates.py ``aggregate_names``)."""
    labels, vocabs = pre["labels"], pre["vocabs"]
    purchase = f"an action in preprocessing.labels.purchase_actions {_list(labels['purchase_actions'])}"
    value = f"an action in preprocessing.labels.value_actions {_list(labels['value_actions'])}"
    days = f"in days: microseconds / {DAY_US}"
    defs: dict[str, str] = {}
    for w in WINDOWS_DAYS:  # (the order of the columns is the context's: _in_order)
        window = f"events of H in (as_of - {w} days, as_of]"
        defs[f"n_events_{w}d"] = window
        defs[f"n_purchases_{w}d"] = f"{window} with {purchase}"
        defs[f"spend_{w}d"] = f"sum of amount over {window} with {value} (0 when none)"
    activity = labels.get("activity_actions")
    defs |= {
        "n_events": "events of H (after the duplicate rule)",
        "n_purchases": f"events of H with {purchase}",
        "spend": f"sum of amount over events of H with {value} (0 when none; negative amounts count)",
        "tenure_days": "(as_of - t of the first event of H) / 1e6 / 86400: fractional days",
        "recency_days": (
            "(as_of - t of the last activity event of H) / 1e6 / 86400: fractional days; activity = "
            + (f"an action in preprocessing.labels.activity_actions {_list(activity)}" if activity is not None
               else "any action (preprocessing.labels.activity_actions is null)")
            + "; without an activity event in H, the first event of H (recency_days = tenure_days)"
        ),  # fmt: skip
        "n_active_days": (
            f"distinct UTC calendar days with an event of H: distinct floor(t / {DAY_US}) (UTC "
            "whatever preprocessing.features.time_zone is)"
        ),
        "gap_mean_days": (
            f"mean of the n - 1 gaps between consecutive events of H (rule 'order'; a tie is a gap "
            f"of 0), each (t_i - t_(i-1)) {days}; NaN with one event"
        ),
        "gap_std_days": (
            "sample standard deviation (divisor n - 2, ddof 1) of those n - 1 gaps; NaN with one "
            "or two events (fewer than two gaps)"
        ),
        "gap_max_days": "largest of those gaps; NaN with one event",
        "gap_last_days": "the gap before the most recent event of H; NaN with one event",
        "purchase_amount_mean": f"mean amount over events of H with {value} (a null amount is 0); NaN when none",
        "purchase_amount_max": f"largest amount over events of H with {value}; NaN when none",
    }
    for x in pre["features"]["numeric"]:
        defs[f"mean_{x}"] = f"mean of extra numeric column '{x}' over H (raw values, null and NaN as 0)"
    for col in pre["features"]["categorical"]:
        named = [(i, t) for i, t in enumerate(vocabs[col]) if t != PAD]
        for prefix, where in (("n", "H"), ("n30", f"H in (as_of - {RECENT_DAYS} days, as_of]")):
            for i, t in named:
                defs[f"{prefix}_{col}={t}"] = f"events of {where} whose {col} has id {i}" + (
                    f" ('{UNK}': a value not in preprocessing.vocabs.{col})" if i == UNK_ID else ""
                )
    for i, t in enumerate(vocabs["action"]):
        if t != PAD:
            what = f"'{UNK}', a value not in the vocabulary" if i == UNK_ID else f"'{t}'"
            defs[f"days_since_action={t}"] = (
                f"(as_of - t of the most recent event of H with action id {i} ({what})) {days}; "
                "NaN when H has none"
            )
    return defs


def _summary_columns(pre: Mapping[str, Any]) -> dict[str, str]:
    """Definitions of the summary context (data/features/definitions.py ``CONTEXT_NUMERIC``)."""
    agg = _aggregate_columns(pre)
    defs = {
        f"log_{k}": agg[k]
        for k in ("n_events", "spend", "n_purchases", "tenure_days", "recency_days")
    }
    defs["log_n_purchases_window"] = _window_purchases(pre["labels"])
    assert set(defs) == set(CONTEXT_NUMERIC), "a summary context column without its rule"
    return defs


def _window_purchases(labels: Mapping[str, Any]) -> str:
    window = labels["loyalty_window_days"]
    return (
        f"n_purchases_window = events of H with an action in preprocessing.labels.purchase_actions "
        f"{_list(labels['purchase_actions'])} in the half-open loyalty window (as_of - {window:g} "
        f"days, as_of]: t > as_of - {window:g} * {DAY_US} microseconds (rounded to the "
        f"microsecond); an event exactly {window:g} days before as_of is outside, one at as_of inside"
    )


def context_columns(pre: Mapping[str, Any]) -> dict[str, str]:
    """Name -> definition (of the value v before the log) of every column of ``context``."""
    defs = _summary_columns(pre) if pre["features"].get("context") == "summary" else _aggregate_columns(pre)
    return _in_order(defs, pre["feature_names"]["context"], "context")


def _in_order(defs: Mapping[str, str], names: list[str], what: str) -> dict[str, str]:
    missing = [n for n in names if n not in defs]
    if missing:
        raise ValueError(
            f"{what} columns {missing} have no rule in journeyformer/export/rules.py; add their "
            "definitions there (and regenerate docs/onnx-contract.md)"
        )
    return {n: defs[n] for n in names}


def _context_rule(pre: Mapping[str, Any]) -> str:
    n = len(pre["feature_names"]["context"])
    head = (
        f"context[i, k] for column k of preprocessing.feature_names.context ({n} columns, each "
        "defined in context_columns) from v, a quantity over H: ALL the customer's events at or "
        "before as_of, not only the kept max_len. "
    )
    days = (
        "Days are fractional days (microsecond precision), never whole days. Feed the values "
        "as defined here: any standardisation happens inside the graph."
    )
    if pre["features"].get("context") == "summary":
        window = pre["labels"]["loyalty_window_days"]
        return head + (
            "context = ln(1 + max(0, v)) computed in float64 from v in float64 (no rounding "
            f"before the log), then rounded to float32. The loyalty window is (as_of - {window:g} "
            f"days, as_of]. " + days
        )
    windows = ", ".join(f"(as_of - {w} days, as_of]" for w in WINDOWS_DAYS)
    return head + (
        "v is computed in float64 and ROUNDED TO FLOAT32 FIRST; then context = sign(v) * "
        "ln(1 + |v|) computed in float64 from that float32 value, and rounded to float32; "
        "context = -1 where v does not exist (NaN: gaps of a single event, a never-seen action, "
        f"no value event). The windows {windows} (and (as_of - {RECENT_DAYS} days, as_of] of "
        f"the n30 columns) are half-open: an event is in (as_of - w days, as_of] when t > "
        f"as_of - w * {DAY_US} microseconds, so one exactly w days before as_of is outside and "
        "one at as_of inside. " + days
    )


def _stage_rule(pre: Mapping[str, Any]) -> str:
    labels, context = pre["labels"], pre["feature_names"]["context"]
    window = labels["loyalty_window_days"]
    same = [f"n_purchases_{w}d" for w in WINDOWS_DAYS if w == window and f"n_purchases_{w}d" in context]
    note = (
        "it is the context column log_n_purchases_window before its log"
        if "log_n_purchases_window" in context
        else "not a context column" + (f"; it equals {same[0]} here" if same else "")
    )
    i = {s: STAGES.index(s) for s in STAGES}
    return (
        f"stage_now[i] = index into preprocessing.feature_names.stages {_list(STAGES)} of the "
        "first rule that holds, on float64 values over H (not on the context's rounded logs): "
        f"churned ({i['churned']}) if recency_days >= {labels['churned_after_days']:g} "
        "(recency_days as in context_columns); "
        f"loyalty ({i['loyalty']}) if n_purchases_window >= {labels['loyalty_min_purchases']} "
        f"({note}), where {_window_purchases(labels)}; "
        f"retention ({i['retention']}) if n_purchases >= 2; "
        f"first_purchase ({i['first_purchase']}) if n_purchases = 1 (n_purchases: events of H "
        "with a purchase action, all of H); "
        f"consideration ({i['consideration']}) if an event of H has an action in "
        f"preprocessing.labels.intent_actions {_list(labels['intent_actions'])}; "
        f"else acquisition ({i['acquisition']})."
    )


def preprocessing_rules(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Rule name -> statement, in the order an implementation applies them; ``spec`` is
    ``preprocessing.json["preprocessing"]``. Values are strings, except ``numeric_columns`` and
    ``context_columns`` (column name -> definition, in input order)."""
    schema, features = spec["schema"], spec["features"]
    tz, feature_tz = schema["time_zone"], features["time_zone"]
    cat = ", ".join(features["categorical"])
    extras_num = features.get("numeric") or []
    return {
        "read": (
            f"Columns named by preprocessing.schema.columns (customer_id, timestamp, channel, "
            f"action, amount) plus extra_categorical {_list(schema['extra_categorical'])} and "
            f"extra_numeric {_list(extras_num)}; other columns are not features (but count for "
            "duplicates). amount not mapped (null) means 0."
        ),
        "timestamps": (
            "Parsed to an instant in whole microseconds (UTC internally; t below is microseconds "
            "since 1970-01-01 UTC). Accepted: datetimes, dates (midnight), ISO-8601 strings "
            "('2025-01-31', '2025-01-31 12:00', '2025-01-31T12:00:00.5+02:00', '...Z'; fractions "
            "finer than a microsecond are truncated), and epoch numbers or digit strings "
            f"(timestamp_unit '{schema['timestamp_unit']}'; 'auto' decides once per column: all "
            "magnitudes below 1e10 are seconds, all at or above are milliseconds, both is an "
            "error; rounded to the microsecond, halves to even). A value without an offset "
            f"(naive) is a wall time in preprocessing.schema.time_zone = '{tz}'. A value that "
            "cannot be parsed stops the whole job."
        ),
        "daylight_saving": (
            f"Naive wall times in '{tz}': a time repeated by a daylight-saving change takes the "
            "earlier instant (the offset before the change); a time skipped by it does not exist "
            "and is an error that stops the whole job (like any unparseable timestamp). Times "
            "with an offset and epoch numbers are never ambiguous. Local time features (hour_, "
            "dow_) read the wall clock at the instant: both instants of a repeated hour read the "
            "same wall time."
        ),
        "as_of": (
            "The scoring time. ISO-8601; a naive as_of is UTC (not preprocessing.schema.time_zone). "
            "Default: the "
            f"end of the data: with n events, k = ceil({STRAY_SHARE:g} * n) (at least 1) and q "
            "the timestamp of the (k+1)-th latest event, the latest event at most max("
            f"{MIN_SLACK.days} days, {SLACK_SHARE:g} * (q - first event)) after q (later ones "
            "are stray). Only events with timestamp <= as_of are used (an event exactly at "
            "as_of counts); customers with none get no prediction (a reject with a reason)."
        ),
        "null_keys": (
            f"Rows with a null customer_id or timestamp: null_keys = '{schema['null_keys']}' "
            "('error' stops the job, 'drop' drops the rows)."
        ),
        "nulls": (
            f"A null categorical value (channel, action, extras) becomes the string "
            f"'{NULL_CATEGORY}', looked up like any value (the literal string '{NULL_CATEGORY}' "
            "is the same value). A null or NaN amount or extra number becomes 0; an infinite "
            "one, or amount text that is not a number, is an error."
        ),
        "duplicates": (
            f"duplicates = '{schema['duplicates']}'. An exact duplicate is a row equal to an "
            "earlier row (input order) in EVERY column of the file as written, unmapped columns "
            "included, before any conversion: a null amount and 0 differ, and so do "
            "'12:00+02:00' and '10:00Z'. 'drop' keeps the first of each group, 'keep' keeps all."
        ),
        "future_events": (
            f"Events after the wall clock at scoring time: future_events = "
            f"'{schema.get('future_events', 'error')}' ('error' stops the job, 'drop' drops "
            "them, 'keep' keeps them)."
        ),
        "order": (
            "Per customer, events by timestamp ascending; equal timestamps keep input order "
            "(the row's position in the input: file order, then row order)."
        ),
        "history": (
            "H = a customer's events with timestamp <= as_of, after the rules above, in that "
            "order. Every context column and stage_now are computed over all of H; the "
            "sequence holds the last max_len events of H."
        ),
        "rows": (
            "One row per customer with at least one event in H, rows sorted by customer_id "
            "ascending (integer ids as numbers, string ids by their UTF-8 bytes)."
        ),
        "truncation": (
            f"The last max_len = {features['max_len']} events of H (the most recent); older "
            "ones are not in the sequence but count in context and in log_gap of the oldest "
            "kept event."
        ),
        "vocabulary_ids": (
            f"categorical[i, p, j] for the columns [{cat}] (preprocessing.features.categorical): "
            f"the value's position in preprocessing.vocabs.<column>. Id {PAD_ID} ('{PAD}') is "
            f"padding only and id {UNK_ID} ('{UNK}') is any value not in the vocabulary. Literal "
            f"strings '{PAD}' and '{UNK}' in the data map to {UNK_ID}, never to {PAD_ID}. "
            f"'{NULL_CATEGORY}' has an id only where the vocabulary lists it, else {UNK_ID}. "
            "Values are compared as strings (an integer code 7 is '7', a boolean true is 'true')."
        ),
        "numeric": (
            "numeric[i, p, k] for column k of preprocessing.feature_names.numeric (each defined "
            "in numeric_columns): computed in float64 from t and as_of in microseconds and "
            "rounded once to float32. sin and cos take angles j * (2*pi/P) (P = 1440 minutes or 7 "
            "days), the factor 2*pi/P rounded to float64 first; the hour features use whole "
            "minutes of the day. A wall time in "
            f"preprocessing.features.time_zone = '{feature_tz}' is the UTC instant plus that "
            "zone's UTC offset at the instant."
        ),
        "numeric_columns": numeric_columns(spec),
        "context": _context_rule(spec),
        "context_columns": context_columns(spec),
        "stage_now": _stage_rule(spec),
        "padding": (
            f"Right padding: customer i's kept events at positions 0..lengths[i]-1, oldest "
            f"first, most recent last; positions from lengths[i] on hold id {PAD_ID} and 0.0. T "
            "is any value >= max(lengths); a customer's outputs depend neither on T nor on the "
            "other rows. lengths[i] = min(max_len, events in H), from 1."
        ),
        "check": (
            "golden.json holds raw events of a few customers, the exact inputs and the expected "
            "outputs. Compare " + tolerance_text() + " An absolute threshold on outputs alone "
            "misses feature errors and false-alarms on expected_value (currency units)."
        ),
    }
