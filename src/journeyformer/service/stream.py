"""Events from a stream: a consumer over a :class:`Source`, with Redis Streams as the built-in one
(docs/service.md#streams).

Delivery is at least once and the effect exactly once: :class:`StreamConsumer` applies a batch's
events to the store (durable when ``apply`` returns) and only then acknowledges the messages; a
message delivered again finds its events already applied (:func:`journeyformer.service.state.identity`).
A message that cannot be read or fails validation goes to the dead-letter stream with its reason
and is acknowledged; it never blocks the stream. A :class:`Source` is three calls, so another
broker is one class (docs/service.md has the Kafka one).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from journeyformer.errors import JourneyformerError

log = logging.getLogger(__name__)


@dataclass
class Message:
    """One stream message: its id, its events (None when unreadable, with ``error``)."""

    id: Any
    fields: dict[str, Any]
    events: list[dict[str, Any]] | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    def read(self, n: int, block_ms: int) -> list[Message]: ...

    def ack(self, messages: Sequence[Message]) -> None: ...

    def dead_letter(self, message: Message, reason: str) -> None: ...


def parse_fields(fields: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str | None]:
    """A message's events, or (None, reason): ``event`` (a JSON object or list of objects) or
    the event's fields themselves (values JSON-decoded where they parse, e.g. numbers)."""
    if "event" in fields:
        try:
            value = json.loads(fields["event"])
        except (ValueError, TypeError) as err:
            return None, f"field 'event' is not JSON ({err})"
        if isinstance(value, dict):
            return [value], None
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return value, None
        return None, f"field 'event' must be a JSON object or a non-empty list of objects, got {type(value).__name__}"
    if not fields:
        return None, "the message has no fields"
    event = {}
    for k, v in fields.items():
        try:
            event[k] = json.loads(v)
        except (ValueError, TypeError):
            event[k] = v
    return [event], None


class RedisStreamSource:
    """``XREADGROUP`` in a consumer group (created when missing). It first re-reads its own
    pending messages (delivered before a crash), and every ``claim_idle_ms`` takes over
    messages pending that long at another consumer (``XAUTOCLAIM``: a consumer that died)."""

    def __init__(self, client: Any, key: str, group: str, consumer: str, *, dead_letter: str, claim_idle_ms: int = 60_000) -> None:
        import redis

        self.client, self.key, self.group, self.consumer = client, key, group, consumer
        self.dead_key, self.claim_idle_ms = dead_letter, claim_idle_ms
        try:
            client.xgroup_create(key, group, id="0", mkstream=True)
        except redis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise
        self._backlog = True  # re-read our own pending messages first
        self._last_claim = 0.0

    def read(self, n: int, block_ms: int) -> list[Message]:
        if self._backlog:
            got = self.client.xreadgroup(self.group, self.consumer, {self.key: "0"}, count=n)
            entries = got[0][1] if got else []
            if entries:
                return [self._message(i, f) for i, f in entries]
            self._backlog = False
        now = time.monotonic()
        if now - self._last_claim > self.claim_idle_ms / 1000:
            self._last_claim = now
            claimed = self.client.xautoclaim(self.key, self.group, self.consumer, self.claim_idle_ms, "0-0", count=n)
            entries = [e for e in claimed[1] if e[1] is not None]  # deleted entries come back as None
            if entries:
                return [self._message(i, f) for i, f in entries]
        got = self.client.xreadgroup(self.group, self.consumer, {self.key: ">"}, count=n, block=block_ms)
        return [self._message(i, f) for i, f in (got[0][1] if got else [])]

    @staticmethod
    def _message(mid: Any, raw: dict) -> Message:
        fields = {(k.decode() if isinstance(k, bytes) else k): (v.decode(errors="replace") if isinstance(v, bytes) else v) for k, v in (raw or {}).items()}
        events, error = parse_fields(fields)
        return Message(mid, fields, events, error)

    def ack(self, messages: Sequence[Message]) -> None:
        if messages:
            self.client.xack(self.key, self.group, *[m.id for m in messages])

    def dead_letter(self, message: Message, reason: str) -> None:
        mid = message.id.decode() if isinstance(message.id, bytes) else str(message.id)
        self.client.xadd(self.dead_key, {"reason": reason, "id": mid, "stream": self.key, "fields": json.dumps(message.fields)})


class StreamConsumer:
    """Reads a :class:`Source` into a :class:`~journeyformer.service.core.ScoringService` in a
    background thread (or :meth:`poll` by hand)."""

    def __init__(self, service: Any, source: Source, batch: int = 256, block_ms: int = 1000) -> None:
        self.service, self.source, self.batch, self.block_ms = service, source, batch, block_ms
        self.counts = {"stream_messages": 0, "stream_acked": 0, "stream_dead_letters": 0, "stream_errors": 0}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> int:
        """One read -> apply -> acknowledge round; returns the messages handled."""
        messages = self.source.read(self.batch, self.block_ms)
        if not messages:
            return 0
        self.counts["stream_messages"] += len(messages)
        # Messages with the same fields are validated together (a message missing a field
        # must fail alone, as it would by itself, not become nulls in a wider table).
        groups: dict[frozenset, list[Message]] = {}
        for m in messages:
            if m.events is None:
                self._dead(m, m.error or "unreadable")
            else:
                groups.setdefault(frozenset(k for e in m.events for k in e), []).append(m)
        for group in groups.values():
            try:
                self.service.ingest([e for m in group for e in m.events])
            except JourneyformerError:  # one bad message fails the batch: find it, apply the rest
                for m in group:
                    try:
                        self.service.ingest(m.events)
                    except JourneyformerError as err:
                        self._dead(m, str(err))
        self.source.ack(messages)  # after the state update (durable) and the dead letters
        self.counts["stream_acked"] += len(messages)
        return len(messages)

    def _dead(self, message: Message, reason: str) -> None:
        self.source.dead_letter(message, reason)
        self.counts["stream_dead_letters"] += 1
        log.warning("stream: message %s to the dead-letter stream: %s", message.id, reason)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # the broker away for a moment: log, wait, go on
                self.counts["stream_errors"] += 1
                log.exception("stream: a read/apply round failed; retrying in 1 s")
                self._stop.wait(1.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="journeyformer-stream", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def metrics(self) -> dict[str, float]:
        return dict(self.counts)


__all__ = ["Message", "RedisStreamSource", "Source", "StreamConsumer", "parse_fields"]
