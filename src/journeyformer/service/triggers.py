"""Triggers: rules on a customer's fresh scores that emit a decision to a sink, at most once per
customer and rule per cooldown (docs/service.md#triggers; ``triggers`` of configs/serve.yaml).

A rule holds when every one of its conditions holds on the prediction row; ``changed`` compares
with the value this process last scored for the customer. The cooldown is claimed in the store
(:meth:`journeyformer.service.store.Store.claim`), so it holds across workers and restarts.
Sinks: ``stream`` (XADD), ``webhook`` (POSTed from a background thread: a slow or failing
receiver is logged and counted, never waited for by scoring), ``memory`` (tests) and ``log``.
"""

from __future__ import annotations

import json
import logging
import operator
import queue
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from journeyformer.errors import ConfigError

log = logging.getLogger(__name__)

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne,
}  # fmt: skip


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        if self.op not in (*_OPS, "changed"):
            raise ConfigError(f"triggers: op {self.op!r} of column {self.column!r} is not one of {[*_OPS, 'changed']}")


@dataclass(frozen=True)
class Rule:
    name: str
    when: tuple[Condition, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rule:
        if not d.get("name") or not d.get("when"):
            raise ConfigError(f"triggers.rules: each rule needs a name and a non-empty `when` list, got {dict(d)}")
        return cls(str(d["name"]), tuple(Condition(str(c["column"]), str(c["op"]), c.get("value")) for c in d["when"]))


class Sink:
    """Where decisions go (module docstring)."""

    def __init__(self, kind: str = "log", *, client: Any = None, stream: str = "jf:decisions", url: str | None = None, maxlen: int = 1_000_000) -> None:
        if kind not in ("stream", "webhook", "memory", "log"):
            raise ConfigError(f"triggers.sink.kind={kind!r} is not one of ['stream', 'webhook', 'memory', 'log']")
        if kind == "stream" and client is None:
            raise ConfigError("triggers.sink.kind=stream needs a Redis server: set redis.url")
        if kind == "webhook" and not url:
            raise ConfigError("triggers.sink.kind=webhook needs triggers.sink.url")
        self.kind, self.client, self.stream, self.url, self.maxlen = kind, client, stream, url, maxlen
        self.sent: list[dict[str, Any]] = []
        self.failures = 0
        # A webhook is posted from its own thread: a slow receiver never holds up scoring.
        self._queue: queue.Queue | None = None
        if kind == "webhook":
            self._queue = queue.Queue(maxsize=10_000)
            threading.Thread(target=self._drain, name="journeyformer-webhook", daemon=True).start()

    def emit(self, decision: dict[str, Any]) -> None:
        if self._queue is None:
            self._send(decision)
            return
        try:
            self._queue.put_nowait(decision)
        except queue.Full:
            self.failures += 1
            log.warning("triggers: the webhook queue is full (receiver too slow); decision %s dropped", decision["rule"])

    def flush(self) -> None:
        """Wait until every queued decision was posted (or failed)."""
        if self._queue is not None:
            self._queue.join()

    def _drain(self) -> None:
        assert self._queue is not None
        while True:
            decision = self._queue.get()
            try:
                self._send(decision)
            finally:
                self._queue.task_done()

    def _send(self, decision: dict[str, Any]) -> None:
        body = json.dumps(decision, default=str)
        try:
            if self.kind == "stream":
                self.client.xadd(self.stream, {"decision": body}, maxlen=self.maxlen, approximate=True)
            elif self.kind == "webhook":
                req = urllib.request.Request(self.url, body.encode(), {"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - configured URL
                    resp.read()
            elif self.kind == "memory":
                self.sent.append(decision)
            else:
                log.info("decision %s", body)
        except Exception as err:  # a sink down must not stop scoring: counted and logged
            self.failures += 1
            log.warning("triggers: the %s sink failed (%s); decision %s not delivered", self.kind, err, decision["rule"])


class Triggers:
    """Rules + cooldown + sink."""

    def __init__(self, rules: Sequence[Rule], sink: Sink, cooldown_s: float) -> None:
        if cooldown_s < 0:
            raise ConfigError(f"triggers.cooldown_s must be >= 0, got {cooldown_s}")
        self.rules, self.sink, self.cooldown_s = list(rules), sink, float(cooldown_s)
        self.previous: dict[tuple[str, str], Any] = {}  # (customer, column) -> last scored value

    def evaluate(self, frame: pl.DataFrame, store: Any) -> list[dict[str, Any]]:
        """Decisions for the rows of ``frame`` (emitted; also returned)."""
        out = []
        for row in rows(frame):
            cid = str(row["customer_id"])
            for rule in self.rules:
                reason = self._holds(rule, row, cid)
                if reason is None or not store.claim(f"{rule.name}:{cid}", self.cooldown_s):
                    continue
                decision = {"rule": rule.name, "customer_id": row["customer_id"], "reason": reason, "scores": row, "decided_at": time.time()}
                self.sink.emit(decision)
                out.append(decision)
            for c in {c.column for r in self.rules for c in r.when if c.op == "changed"}:
                self.previous[(cid, c)] = row.get(c)
        return out

    def _holds(self, rule: Rule, row: Mapping[str, Any], cid: str) -> str | None:
        parts = []
        for c in rule.when:
            if c.column not in row:
                raise ConfigError(f"triggers: rule {rule.name!r} reads column {c.column!r}, which predictions do not have; columns: {sorted(row)}")
            now = row[c.column]
            if c.op == "changed":
                before = self.previous.get((cid, c.column), now)
                if before == now:
                    return None
                parts.append(f"{c.column} changed {before!r} -> {now!r}")
            else:
                if now is None or not _OPS[c.op](now, c.value):
                    return None
                parts.append(f"{c.column} {now!r} {c.op} {c.value!r}")
        return " and ".join(parts)


def triggers_from_config(cfg: Mapping[str, Any] | None, client: Any = None) -> Triggers | None:
    """``triggers`` of configs/serve.yaml -> Triggers (None without rules)."""
    if not cfg or not cfg.get("rules"):
        return None
    sink = dict(cfg.get("sink") or {})
    kind = str(sink.pop("kind", "log"))
    return Triggers([Rule.from_dict(r) for r in cfg["rules"]], Sink(kind, client=client, **sink), float(cfg.get("cooldown_s", 86_400)))


__all__ = ["Condition", "Rule", "Sink", "Triggers", "triggers_from_config"]


def rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Prediction rows as JSON-ready dicts (times as ISO-8601, floats as floats)."""
    out = frame.with_columns(
        pl.col(c).dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")
        for c, t in frame.schema.items()
        if isinstance(t, pl.Datetime)
    )
    return out.to_dicts()
