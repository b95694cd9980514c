"""A reference client: the five model inputs from raw events, by the bundle's written rules only.

What an integrator writes in another language, here in Python: it reads a bundle's
``preprocessing.json`` (settings, vocabularies, feature names) and ``golden.json`` (raw events,
as_of) and nothing else, and imports NumPy and the standard library only, never journeyformer,
so that a rule the page ``docs/onnx-contract.md`` leaves out or states wrongly shows up as a
difference from the golden inputs (``tests/integration/test_contract.py``). Each step names the
rule of ``preprocessing_rules`` it implements.

Example::

    spec, golden = load(bundle_dir)
    got = model_inputs(spec["preprocessing"], golden["events"], golden["as_of"])
    got.customer_id, got.inputs["context"]  # (B,) ids, (B, K) float32
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

US_PER_DAY = 86_400_000_000
UNK_ID = 1
NULL = "<null>"
_EPOCH_STRING = re.compile(r"^[+-]?\d+(\.\d*)?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class RuleError(ValueError):
    """The events break a rule that stops the job (unparseable timestamp, null key, ...)."""


def load(bundle: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """preprocessing.json and golden.json of a bundle directory."""
    bundle = Path(bundle)
    return (
        json.loads((bundle / "preprocessing.json").read_text()),
        json.loads((bundle / "golden.json").read_text()),
    )


@dataclass
class Event:
    customer_id: Any
    t: int  # microseconds since 1970-01-01 UTC
    row: int  # input position (breaks timestamp ties)
    cat: dict[str, str]  # categorical column -> string value ('<null>' for null)
    amount: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Result:
    customer_id: list[Any]
    inputs: dict[str, np.ndarray]
    rejected: list[Any]


# ---- reading: rules "read", "timestamps", "daylight_saving", "nulls" ----------------------
def micros(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(microseconds=1)


def parse_instant(text: str, zone: str, what: str = "timestamp") -> int:
    """An ISO-8601 string -> UTC microseconds; naive values are wall times in ``zone``."""
    s = re.sub(r"^(\d{4}-\d{2}-\d{2})[ T]", r"\1T", text.strip())
    s = re.sub(r"\s*[Zz]$", "+00:00", s)
    s = re.sub(r"\s+([+-]\d{2}(:?\d{2})?)$", r"\1", s)
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise RuleError(f"{what} {text!r} cannot be parsed") from None
    if dt.tzinfo is not None:
        return micros(dt)
    tz = ZoneInfo(zone)
    local = dt.replace(tzinfo=tz, fold=0)  # fold 0: the earlier of two repeated wall times
    back = local.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None)
    if back != dt:
        raise RuleError(f"{what} {text!r} does not exist in {zone} (skipped by daylight saving)")
    return micros(local.astimezone(timezone.utc))


def _epoch_unit(values: Sequence[Any], unit: str) -> str:
    """The epoch unit of the timestamp column as a whole (rule "timestamps")."""
    if unit != "auto":
        return unit
    nums = [abs(float(v)) for v in values if _is_epoch(v)]
    big = [x >= 1e10 for x in nums]
    if any(big) and not all(big):
        raise RuleError("the timestamp column mixes epoch seconds and milliseconds")
    return "ms" if nums and all(big) else "s"


def _is_epoch(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int | float) or (isinstance(v, str) and bool(_EPOCH_STRING.match(v.strip())))


def _timestamp(v: Any, unit: str, zone: str) -> int | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
        return None
    if _is_epoch(v):
        x = float(v.strip() if isinstance(v, str) else v) * (1e6 if unit == "s" else 1e3)
        return int(round(x))  # halves to even
    if isinstance(v, str):
        return parse_instant(v, zone)
    raise RuleError(f"timestamp {v!r} is neither a string nor a number")


def _category(v: Any) -> str:
    if v is None:
        return NULL
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _number(v: Any, what: str) -> float:
    if v is None:
        return 0.0
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            raise RuleError(f"{what} {v!r} is not a number") from None
    x = float(v)
    if math.isinf(x):
        raise RuleError(f"{what} {v!r} is infinite")
    return 0.0 if math.isnan(x) else x


def _dup_value(v: Any) -> Any:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


def read_events(pre: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
    """Raw rows (user column names) -> events, after the null-key, future and duplicate rules."""
    schema = pre["schema"]
    cols = schema["columns"]
    cat_cols = {"channel": cols["channel"], "action": cols["action"]}
    cat_cols |= {c: c for c in schema["extra_categorical"]}
    unit = _epoch_unit([r.get(cols["timestamp"]) for r in rows], schema["timestamp_unit"])
    names = sorted({k for r in rows for k in r})  # every column of the file
    events, seen = [], set()
    now_us = micros(now)
    for i, row in enumerate(rows):
        cid, t = row.get(cols["customer_id"]), _timestamp(row.get(cols["timestamp"]), unit, schema["time_zone"])
        if cid is None or t is None:
            if schema["null_keys"] == "error":
                raise RuleError(f"row {i}: null customer_id or timestamp")
            continue
        if t > now_us and schema["future_events"] != "keep":
            if schema["future_events"] == "error":
                raise RuleError(f"row {i}: after the wall clock")
            continue
        if schema["duplicates"] == "drop":
            key = tuple(_dup_value(row.get(k)) for k in names)  # the row as written
            if key in seen:
                continue
            seen.add(key)
        amount_col = cols.get("amount")
        events.append(
            Event(
                customer_id=cid,
                t=t,
                row=i,
                cat={c: _category(row.get(src)) for c, src in cat_cols.items()},
                amount=_number(row.get(amount_col), "amount") if amount_col else 0.0,
                extra={c: _number(row.get(c), c) for c in schema["extra_numeric"]},
            )
        )
    return events


# ---- per customer: rules "order", "truncation", "vocabulary_ids", "numeric" ---------------
def _sort_key(cid: Any) -> Any:
    return cid.encode() if isinstance(cid, str) else cid  # strings by their UTF-8 bytes


def _signed_log1p(x: float) -> float:
    return math.copysign(1.0, x) * math.log1p(abs(x)) if x else 0.0


def _f32(x: float) -> float:
    return float(np.float32(x))


_TABLES = {p: np.arange(p) * (2 * math.pi / p) for p in (1440, 7)}  # angle = k * (2 pi / p)


def _local_us(t: int, zone: str) -> int:
    if zone == "UTC":
        return t
    dt = (_EPOCH + timedelta(microseconds=t)).astimezone(ZoneInfo(zone))
    return t + dt.utcoffset() // timedelta(microseconds=1)


def event_numeric(history: list[Event], j: int, as_of: int, pre: Mapping[str, Any]) -> list[float]:
    """The numeric row of history event j (the customer's events at or before as_of)."""
    e = history[j]
    local = _local_us(e.t, pre["features"]["time_zone"])
    minute, weekday = (local // 60_000_000) % 1440, (local // US_PER_DAY + 3) % 7
    values = {
        "log_amount": _signed_log1p(e.amount),
        "log_gap": 0.0 if j == 0 else math.log1p(float(e.t - history[j - 1].t) / 1e6) / 10,
        "log_age": math.log1p(float(as_of - e.t) / 1e6) / 10,
        "hour_sin": float(np.sin(_TABLES[1440][minute])),
        "hour_cos": float(np.cos(_TABLES[1440][minute])),
        "dow_sin": float(np.sin(_TABLES[7][weekday])),
        "dow_cos": float(np.cos(_TABLES[7][weekday])),
    }
    values |= {c: _signed_log1p(x) for c, x in e.extra.items()}
    return [_f32(values[n]) for n in pre["feature_names"]["numeric"]]


# ---- per customer: rules "context", context_columns and "stage_now" ---------------------
def _in(action: str, actions: Sequence[str] | None) -> bool:
    return actions is None or action in actions


def history_values(h: list[Event], as_of: int, pre: Mapping[str, Any]) -> dict[str, Any]:
    """The raw (float64) quantities the context columns and stage_now are defined on."""
    labels = pre["labels"]
    days = [float(as_of - e.t) / US_PER_DAY for e in h]
    purchase = [_in(e.cat["action"], labels["purchase_actions"]) for e in h]
    value = [_in(e.cat["action"], labels["value_actions"]) for e in h]
    activity = [e.t for e in h if _in(e.cat["action"], labels.get("activity_actions"))]
    window_start = as_of - round(labels["loyalty_window_days"] * US_PER_DAY)
    gaps = [float(b.t - a.t) / US_PER_DAY for a, b in zip(h, h[1:], strict=False)]
    amounts = [e.amount for e, v in zip(h, value, strict=True) if v]
    return {
        "days": days,
        "purchase": purchase,
        "value": value,
        "n_events": len(h),
        "n_purchases": sum(purchase),
        "spend": sum(amounts, 0.0),
        "amounts": amounts,
        "tenure_days": float(as_of - h[0].t) / 1e6 / 86_400,
        "recency_days": float(as_of - (activity[-1] if activity else h[0].t)) / 1e6 / 86_400,
        "n_purchases_window": sum(p and e.t > window_start for p, e in zip(purchase, h, strict=True)),
        "has_intent": any(e.cat["action"] in labels["intent_actions"] for e in h),
        "gaps": gaps,
    }


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def context_value(name: str, h: list[Event], v: Mapping[str, Any], pre: Mapping[str, Any]) -> float:
    """The value of context column ``name`` (before the log), by its documented family."""
    days, gaps = v["days"], v["gaps"]
    m = re.fullmatch(r"(n_events|n_purchases|spend)_(\d+)d", name)
    if m:
        w = int(m.group(2))
        inside = [d < w for d in days]  # (as_of - w days, as_of]
        if m.group(1) == "n_events":
            return float(sum(inside))
        if m.group(1) == "n_purchases":
            return float(sum(i and p for i, p in zip(inside, v["purchase"], strict=True)))
        return sum((e.amount for e, i, x in zip(h, inside, v["value"], strict=True) if i and x), 0.0)
    simple = {
        "n_events": lambda: float(v["n_events"]),
        "n_purchases": lambda: float(v["n_purchases"]),
        "spend": lambda: v["spend"],
        "tenure_days": lambda: v["tenure_days"],
        "recency_days": lambda: v["recency_days"],
        "n_active_days": lambda: float(len({e.t // US_PER_DAY for e in h})),
        "gap_mean_days": lambda: _mean(gaps),
        "gap_std_days": lambda: (
            math.sqrt(sum((g - _mean(gaps)) ** 2 for g in gaps) / (len(gaps) - 1)) if len(gaps) >= 2 else math.nan
        ),
        "gap_max_days": lambda: max(gaps) if gaps else math.nan,
        "gap_last_days": lambda: gaps[-1] if gaps else math.nan,
        "purchase_amount_mean": lambda: _mean(v["amounts"]),
        "purchase_amount_max": lambda: max(v["amounts"]) if v["amounts"] else math.nan,
    }
    if name in simple:
        return simple[name]()
    if name.startswith("mean_") and name[5:] in pre["features"]["numeric"]:
        return _mean([e.extra[name[5:]] for e in h])
    vocabs = pre["vocabs"]
    m = re.fullmatch(r"(n30|n)_([^=]+)=(.*)", name)
    if m and m.group(2) in pre["features"]["categorical"]:
        col, token = m.group(2), m.group(3)
        want = vocabs[col].index(token)
        ids = vocab_ids(col, [e.cat[col] for e in h], pre)
        recent = [d < 30 for d in days] if m.group(1) == "n30" else [True] * len(h)
        return float(sum(i == want and r for i, r in zip(ids, recent, strict=True)))
    m = re.fullmatch(r"days_since_action=(.*)", name)
    if m:
        want = vocabs["action"].index(m.group(1))
        ids = vocab_ids("action", [e.cat["action"] for e in h], pre)
        hits = [d for d, i in zip(days, ids, strict=True) if i == want]
        return min(hits) if hits else math.nan
    summary = {"log_n_events": "n_events", "log_spend": "spend", "log_n_purchases": "n_purchases",
               "log_n_purchases_window": "n_purchases_window", "log_tenure_days": "tenure_days",
               "log_recency_days": "recency_days"}  # fmt: skip
    if pre["features"]["context"] == "summary" and name in summary:
        return float(v[summary[name]])
    raise NotImplementedError(f"context column {name!r}: no documented rule")


def context_row(h: list[Event], v: Mapping[str, Any], pre: Mapping[str, Any]) -> list[float]:
    out = []
    for name in pre["feature_names"]["context"]:
        x = context_value(name, h, v, pre)
        if pre["features"]["context"] == "summary":
            out.append(_f32(math.log1p(max(0.0, x))))
            continue
        x = _f32(x)  # each aggregate is rounded to float32 before its log
        out.append(-1.0 if math.isnan(x) else _f32(_signed_log1p(x)))
    return out


def stage(v: Mapping[str, Any], pre: Mapping[str, Any]) -> int:
    labels, stages = pre["labels"], pre["feature_names"]["stages"]
    if v["recency_days"] >= labels["churned_after_days"]:
        return stages.index("churned")
    if v["n_purchases_window"] >= labels["loyalty_min_purchases"]:
        return stages.index("loyalty")
    if v["n_purchases"] >= 2:
        return stages.index("retention")
    if v["n_purchases"] == 1:
        return stages.index("first_purchase")
    return stages.index("consideration" if v["has_intent"] else "acquisition")


def vocab_ids(col: str, values: Sequence[str], pre: Mapping[str, Any]) -> list[int]:
    """Position in the vocabulary; '<pad>' and '<unk>' (ids 0, 1) are never matched."""
    index = {t: i for i, t in enumerate(pre["vocabs"][col]) if i >= 2}
    return [index.get(x, UNK_ID) for x in values]


# ---- the batch: rule "padding" ---------------------------------------------------------
def model_inputs(
    pre: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], as_of: str, now: datetime | None = None
) -> Result:
    """The five inputs for every customer with an event at or before ``as_of`` (ISO-8601; naive
    means UTC), rows sorted by customer_id, padded to the longest sequence."""
    as_of_us = parse_instant(as_of, "UTC", "as_of")
    events = read_events(pre, rows, now or datetime.now(timezone.utc))
    per: dict[Any, list[Event]] = {}
    for e in events:
        per.setdefault(e.customer_id, []).append(e)
    ids, rejected, parts = [], [], []
    max_len, categorical = pre["features"]["max_len"], pre["features"]["categorical"]
    for cid in sorted(per, key=_sort_key):
        history = [e for e in sorted(per[cid], key=lambda e: (e.t, e.row)) if e.t <= as_of_us]
        if not history:
            rejected.append(cid)
            continue
        kept = range(max(0, len(history) - max_len), len(history))
        cats = [vocab_ids(c, [history[j].cat[c] for j in kept], pre) for c in categorical]
        v = history_values(history, as_of_us, pre)
        ids.append(cid)
        parts.append((
            list(zip(*cats, strict=True)),
            [event_numeric(history, j, as_of_us, pre) for j in kept],
            stage(v, pre),
            context_row(history, v, pre),
        ))  # fmt: skip
    b, t = len(parts), max((len(p[0]) for p in parts), default=0)
    cat = np.zeros((b, t, len(categorical)), np.int64)
    num = np.zeros((b, t, len(pre["feature_names"]["numeric"])), np.float32)
    for i, (c, x, _, _) in enumerate(parts):
        cat[i, : len(c)], num[i, : len(x)] = c, x
    return Result(
        customer_id=ids,
        inputs={
            "categorical": cat,
            "numeric": num,
            "lengths": np.array([len(p[0]) for p in parts], np.int64),
            "stage_now": np.array([p[2] for p in parts], np.int64),
            "context": np.array([p[3] for p in parts], np.float32).reshape(b, -1),
        },
        rejected=rejected,
    )


def within(got: np.ndarray, expected: np.ndarray, tol: Mapping[str, float]) -> np.ndarray:
    """|got - expected| <= atol + rtol * |expected|, elementwise (golden.json ``tolerance``)."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    return np.abs(got - expected) <= tol["atol"] + tol["rtol"] * np.abs(expected)
