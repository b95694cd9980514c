"""Actionable customer segments from the scores: documented rules, first match wins.

The rules are a Hydra group (``configs/segments/default.yaml``), applied in predict to every
scored customer, giving the ``segment`` column. A rule is a name and conditions that must all
hold::

    rules:
      - name: high value at risk
        when: {expected_value: ">= q0.75", churn_probability: ">= 0.5"}
      - name: new
        when: {tenure_days: "<= 30"}
    otherwise: steady

A condition is ``"<op> <threshold>"`` (op one of ``>= > <= < == !=``), a list of allowed values,
or a single value that must be equal. A threshold is a number, or ``q<p>``: the p-quantile
(0..1) of that score on the bundle's validation customers (``reference.json``, written by
export with ``data.path``), so "the top quarter of value" means the same customers' share as
at export even as the population moves. Customers matching no rule get ``otherwise``.

What a condition may name (:data:`INPUTS`): every numeric or text prediction column
(churn_probability, expected_value, spend_probability, next_action, stage = the predicted
stage at the horizon, n_events, ...), and from the history at as_of: ``stage_now`` (the current
lifecycle stage), ``stage_trend`` (``up``, ``same`` or ``down`` from stage_now to the predicted
stage in the order acquisition, consideration, first_purchase, retention, loyalty; ``churn``
when the predicted stage is churned and the current one is not), ``tenure_days`` and
``recency_days`` (days since the first / last activity).

Needs only Polars and NumPy.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from journeyformer.data.labels.lifecycle import STAGES
from journeyformer.errors import ConfigError
from journeyformer.inference.reference import Reference

HISTORY_INPUTS = ("stage_now", "stage_trend", "tenure_days", "recency_days")
_OPS = {">=": "ge", ">": "gt", "<=": "le", "<": "lt", "==": "eq", "!=": "ne"}
_CONDITION = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")
_CHURNED = STAGES.index("churned")


@dataclass(frozen=True)
class Condition:
    """``column <op> value`` (value resolved to a number or a string) or ``column in values``."""

    column: str
    op: str  # one of _OPS values, or "in"
    value: Any
    text: str  # as written in the config, e.g. ">= q0.75"

    def holds(self, values: np.ndarray) -> np.ndarray:
        """(N,) bool: the condition on (N,) ``values`` (numbers as float64 with NaN for null,
        text as objects with None for null). A null never satisfies a condition; a list on a
        numeric column matches by number."""
        numeric = values.dtype.kind == "f"
        valid = ~np.isnan(values) if numeric else ~np.equal(values, None)
        out = np.zeros(len(values), dtype=bool)
        if valid.any():
            kept = values[valid]
            if self.op == "in":
                allowed = [_number(v) for v in self.value] if numeric else list(self.value)
                out[valid] = np.isin(kept if numeric else kept.astype(str), allowed)
            else:
                out[valid] = getattr(operator, self.op)(kept, self.value)
        return out

    def describe(self) -> str:
        if self.op == "in":
            return f"{self.column} in {list(self.value)}"
        resolved = f" (= {self.value:.4g})" if "q" in self.text and isinstance(self.value, float) else ""
        return f"{self.column} {self.text.strip()}{resolved}"


@dataclass(frozen=True)
class Segment:
    name: str
    conditions: tuple[Condition, ...]
    description: str = ""

    def describe(self) -> str:
        return " and ".join(c.describe() for c in self.conditions) or "always"


@dataclass(frozen=True)
class SegmentRules:
    """The resolved rules; :meth:`assign` gives each customer the first segment it matches."""

    segments: tuple[Segment, ...]
    otherwise: str = "other"

    @property
    def names(self) -> tuple[str, ...]:
        """Every segment a customer can get, in rule order, ``otherwise`` last."""
        return tuple(dict.fromkeys([*(s.name for s in self.segments), self.otherwise]))

    @classmethod
    def from_config(
        cls, cfg: Mapping[str, Any], columns: Sequence[str], reference: Reference | None
    ) -> SegmentRules:
        """Parse ``cfg`` (rules, otherwise); ``columns``: the prediction columns; quantile
        thresholds are read from ``reference``."""
        where = "segments"
        unknown = sorted(set(cfg) - {"rules", "otherwise"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known: ['otherwise', 'rules']")
        rules = cfg.get("rules") or []
        if not isinstance(rules, (list, tuple)):
            raise ConfigError(f"{where}.rules must be a list of {{name, when}}, got {rules!r}")
        inputs = (*columns, *HISTORY_INPUTS)
        segments = []
        for i, rule in enumerate(rules):
            if not isinstance(rule, Mapping) or "name" not in rule:
                raise ConfigError(f"{where}.rules[{i}] must be a mapping with a name and when, got {rule!r}")
            bad = sorted(set(rule) - {"name", "when", "description"})
            if bad:
                raise ConfigError(f"{where}.rules[{i}] ({rule['name']}): unknown key(s) {bad}; known: ['description', 'name', 'when']")
            conds = tuple(
                _condition(col, spec, inputs, reference, f"{where}.rules[{i}] ({rule['name']})")
                for col, spec in dict(rule.get("when") or {}).items()
            )
            segments.append(Segment(str(rule["name"]), conds, str(rule.get("description") or "")))
        return cls(tuple(segments), str(cfg.get("otherwise") or "other"))

    def assign(self, frame: pl.DataFrame, extra: Mapping[str, np.ndarray] | None = None) -> pl.Series:
        """(N,) segment name of each row of ``frame`` (prediction columns); HISTORY_INPUTS come
        from ``extra`` (N-long arrays) when given there, else from ``frame``.

        NumPy, one comparison per condition: a service scoring one customer per call would
        otherwise spend most of a millisecond planning a Polars query."""
        names = np.full(frame.height, self.otherwise, dtype=object)
        free = np.ones(frame.height, dtype=bool)
        columns: dict[str, np.ndarray] = {}
        for seg in self.segments:
            hit = free.copy()
            for c in seg.conditions:
                if c.column not in columns:
                    columns[c.column] = _column(frame, extra or {}, c.column)
                hit &= c.holds(columns[c.column])
            names[hit] = seg.name
            free &= ~hit
        return pl.Series("segment", names, dtype=pl.String)

    def describe(self) -> list[dict[str, str]]:
        """Each segment with its resolved conditions, for logs and reports."""
        rows = [{"segment": s.name, "rule": s.describe(), "description": s.description} for s in self.segments]
        return [*rows, {"segment": self.otherwise, "rule": "no rule above matched", "description": ""}]


def _condition(
    column: str, spec: Any, inputs: Sequence[str], reference: Reference | None, where: str
) -> Condition:
    if column not in inputs:
        raise ConfigError(f"{where}: unknown column {column!r}; a condition may name {sorted(inputs)}")
    if isinstance(spec, (list, tuple)):
        return Condition(column, "in", tuple(str(v) for v in spec), str(list(spec)))
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Condition(column, "eq", float(spec), f"== {spec}")
    text = str(spec)
    m = _CONDITION.match(text)
    if m is None:
        return Condition(column, "in", (text,), text)  # a single value: equality
    op, raw = m.groups()
    if raw.startswith("q"):
        try:
            q = float(raw[1:])
        except ValueError:
            q = -1.0
        if not 0.0 <= q <= 1.0:
            raise ConfigError(f"{where}: {column} {text!r}: a quantile threshold is q<p> with p in [0, 1], e.g. q0.8")
        if reference is None:
            raise ConfigError(
                f"{where}: {column} {text!r} is a quantile of the validation customers' scores, "
                "but the bundle has no reference.json (it was exported without data.path); "
                "re-export with data.path=<the training events>, or use a number"
            )
        value: Any = reference.quantile(f"score/{column}", q)
    else:
        try:
            value = float(raw)
        except ValueError:
            value = raw
    return Condition(column, _OPS[op], value, text)


def history_inputs(stage_now: np.ndarray, predicted_stage: pl.Series | None, summary: pl.DataFrame) -> dict[str, Any]:
    """HISTORY_INPUTS for N customers: ``stage_now`` (N,) stage index, ``predicted_stage`` the
    predicted stage names (None without a stage head), ``summary`` the history summary."""
    stages = np.asarray(STAGES, dtype=object)
    now = stage_now.astype(np.int64)
    out: dict[str, Any] = {
        "stage_now": stages[now],
        "tenure_days": summary.get_column("tenure_days").cast(pl.Float64).to_numpy(),
        "recency_days": summary.get_column("recency_days").cast(pl.Float64).to_numpy(),
    }
    if predicted_stage is not None:
        index = {s: i for i, s in enumerate(STAGES)}
        pred = np.asarray([index[s] for s in predicted_stage.to_list()], dtype=np.int64)
        trend = np.where(pred > now, "up", np.where(pred < now, "down", "same")).astype(object)
        trend[(pred == _CHURNED) & (now != _CHURNED)] = "churn"
        out["stage_trend"] = trend
    else:
        out["stage_trend"] = np.full(len(now), None, dtype=object)
    return out


def _column(frame: pl.DataFrame, extra: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """A condition's input: float64 with NaN for null, or objects with None for null."""
    if name in extra:
        values = np.asarray(extra[name])
        return values.astype(np.float64) if values.dtype.kind in "iubf" else values.astype(object)
    s = frame.get_column(name)
    if s.dtype.is_numeric() or s.dtype == pl.Boolean:
        return s.cast(pl.Float64).to_numpy()
    return s.cast(pl.String).to_numpy().astype(object)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")  # never equal to a number
