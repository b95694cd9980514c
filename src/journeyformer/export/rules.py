"""The preprocessing contract in words, for ``preprocessing.json["preprocessing"]``.

Every formula, unit, window boundary, token and time-zone rule that turns raw events into the
five model inputs, with this bundle's settings filled in, so an implementation in another
language can be written from the bundle alone (and checked with ``golden.json``). Each
statement mirrors code: :mod:`journeyformer.data.timestamps`, :mod:`~journeyformer.data.schema`,
:mod:`~journeyformer.data.event_order`, :mod:`~journeyformer.data.vocab`,
:mod:`~journeyformer.data.labels` (history summary, stages) and
:mod:`~journeyformer.data.sequences` (features, truncation, padding); the golden examples test
them end to end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from journeyformer.data.schema import NULL_CATEGORY
from journeyformer.data.vocab import PAD, PAD_ID, UNK, UNK_ID


def _aggregate_context_rule(labels: Mapping[str, Any]) -> str:
    """The ``context`` rule when the context holds the aggregates (data/aggregates.py)."""
    return (
        "context[:, k] = sign(v) * ln(1 + |v|) (float32), -1 where v does not exist (NaN), for v "
        "in the order of features.context_names, over ALL the customer's events at or before "
        "as_of (not only the kept ones); the graph standardises them with the training mean and "
        "std it holds. n_<x>_<w>d / spend_<w>d count events, purchases (labels.purchase_actions "
        f"{labels['purchase_actions']}) or sum amount over labels.value_actions "
        f"{labels['value_actions']} in the half-open windows (as_of - 7 days, as_of], (as_of - 30 "
        "days, as_of] and (as_of - 90 days, as_of]; n_events, "
        "n_purchases, spend over the whole history; tenure_days = (as_of - first event) and "
        "recency_days = (as_of - last activity event) in fractional days (seconds / 86400); "
        "n_active_days = distinct UTC calendar days with an event; gap_mean/std/max/last_days = "
        "statistics of the gaps between consecutive events in fractional days (NaN with one "
        "event; std with ddof 1); purchase_amount_mean/max over value-action events; mean_<x> = "
        "mean of each extra numeric column; n_<col>=<value> and n30_<col>=<value> = events with "
        "that vocabulary value (<unk> for values not in the vocabulary) of each categorical "
        "column, overall and within (as_of - 30 days, as_of]; days_since_action=<a> = fractional "
        "days since the last event with action a (NaN: never)."
    )


def preprocessing_rules(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Rule name -> statement (strings), in the order an implementation applies them."""
    schema, labels, features = spec["schema"], spec["labels"], spec["features"]
    tz, feature_tz = schema["time_zone"], features["time_zone"]
    window = labels["loyalty_window_days"]
    cat = ", ".join(features["categorical"])
    extras_num = features.get("numeric") or []
    return {
        "read": (
            f"Columns by schema.columns (customer_id, timestamp, channel, action, amount) plus "
            f"extra_categorical {schema['extra_categorical']} and extra_numeric "
            f"{extras_num}; other columns are ignored. amount not mapped (null) means 0."
        ),
        "timestamps": (
            "Parsed to an instant in whole microseconds (UTC internally). "
            "Accepted: datetimes, dates (midnight), ISO-8601 strings with or without a UTC "
            "offset or 'Z', and epoch numbers (timestamp_unit "
            f"'{schema['timestamp_unit']}'; 'auto' decides once per column: all magnitudes "
            "below 1e10 are seconds, all at or above are milliseconds, both is an error). A "
            f"value without an offset (naive) is a wall time in data.time_zone = '{tz}'."
        ),
        "daylight_saving": (
            f"Naive wall times in '{tz}': a time repeated by a daylight-saving change takes the "
            "earlier instant; a time skipped by it does not exist and is an error that stops the "
            "whole job (like any unparseable timestamp). Times with an offset and epoch numbers "
            "are never ambiguous."
        ),
        "as_of": (
            "The scoring time. ISO-8601; a naive as_of is UTC (not data.time_zone). Default: the "
            "end of the data (the latest event, ignoring up to 0.1% stray events more than "
            "max(7 days, 10% of the span) after the rest). Only events with timestamp <= as_of are used "
            "(an event exactly at as_of counts); customers with none get no prediction (a "
            "reject with a reason)."
        ),
        "null_keys": (
            f"Rows with a null customer_id or timestamp: null_keys = '{schema['null_keys']}' "
            "('error' stops the job, 'drop' drops the rows)."
        ),
        "nulls": (
            f"A null categorical value (channel, action, extras) becomes the string "
            f"'{NULL_CATEGORY}', looked up like any value. A null or NaN amount or extra number "
            "becomes 0; an infinite one is an error."
        ),
        "duplicates": (
            f"duplicates = '{schema['duplicates']}'. An exact duplicate is a row equal to an "
            "earlier row (input order) in EVERY column of the file as written, unmapped columns "
            "included, before any conversion: a null amount and 0 differ, and so do "
            "'12:00+02:00' and '10:00Z'. 'drop' keeps the first of each group."
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
        "truncation": (
            f"The last max_len = {features['max_len']} events at or before as_of (the most "
            "recent); older ones are not in the sequence but count in context and in log_gap of "
            "the oldest kept event."
        ),
        "vocabulary_ids": (
            f"categorical[..., j] for the columns [{cat}]: the value's position in "
            f"vocabs[<column>]. Id {PAD_ID} ('{PAD}') is padding only and id {UNK_ID} ('{UNK}') "
            f"is any value not in the vocabulary. Literal strings '{PAD}' and '{UNK}' in the "
            f"data map to {UNK_ID}, never to {PAD_ID}. Values are compared as strings (an "
            "integer code 7 is '7')."
        ),
        "numeric": (
            "numeric[..., k] in the order of features.numeric_names, float32, computed in "
            "float64 then rounded: "
            "log_amount = sign(a) * ln(1 + |a|) of the amount; "
            "log_gap = ln(1 + g) / 10 with g = seconds (microsecond precision, fractional) since "
            "the customer's previous event (kept or not), 0 for the customer's first event and "
            "0 between two events at the same instant; "
            "log_age = ln(1 + s) / 10 with s = seconds (microsecond precision) from the event to "
            "as_of; "
            f"hour_sin, hour_cos = sin, cos of 2*pi*m/1440 with m = the minute of the day "
            f"(whole minutes: seconds are dropped, not rounded) in features.time_zone = "
            f"'{feature_tz}', computed in float64 and rounded to float32; "
            "dow_sin, dow_cos = sin, cos of 2*pi*d/7 with d = the weekday in the same zone, "
            "Monday = 0 ... Sunday = 6; "
            f"each extra numeric column {extras_num} x -> sign(x) * ln(1 + |x|)."
        ),
        "context": _aggregate_context_rule(labels) if features.get("context") == "aggregates" else (
            "context[:, k] = ln(1 + max(0, v)) (float32) for v in the order of "
            "features.context_names, over ALL the customer's events at or before as_of (not only "
            "the kept ones): n_events (after duplicates are dropped); spend = sum of amount over "
            f"labels.value_actions {labels['value_actions']}; n_purchases = events with an action "
            f"in labels.purchase_actions {labels['purchase_actions']}; n_purchases_window = those "
            f"in the half-open window (as_of - {window:g} days, as_of] (an event exactly "
            f"{window:g} x 86400 s before as_of is outside, one at as_of is inside); tenure_days "
            "= (as_of - first event) in fractional days (seconds / 86400, microsecond "
            "precision, not whole days); recency_days = (as_of - last activity event) in "
            "fractional days, where activity is labels.activity_actions "
            f"({labels.get('activity_actions') or 'every action'}); the first event when there "
            "was no activity."
        ),
        "stage_now": (
            "Index into `stages` of the first rule that holds, with the context's raw values: "
            f"churned (5) if recency_days >= {labels['churned_after_days']:g}; loyalty (4) if "
            f"n_purchases_window >= {labels['loyalty_min_purchases']}; retention (3) if "
            "n_purchases >= 2; first_purchase (2) if n_purchases = 1; consideration (1) if any "
            f"event has an action in labels.intent_actions {labels['intent_actions']}; else "
            "acquisition (0)."
        ),
        "padding": (
            f"Right padding: customer i's kept events at positions 0..lengths[i]-1, oldest "
            f"first, most recent last; positions from lengths[i] on hold id {PAD_ID} and 0.0. T "
            "is any value >= max(lengths); a customer's outputs depend neither on T nor on the "
            "other rows."
        ),
        "check": (
            "golden.json holds raw events of a few customers, the exact inputs and the expected "
            "outputs: compare the input tensors first (ids exactly, floats within 1e-6 "
            "relative), then the outputs with |got - expected| <= 1e-6 + 1e-4 * |expected|. An "
            "absolute threshold on outputs alone misses feature errors and false-alarms on "
            "expected_value (currency units)."
        ),
    }
