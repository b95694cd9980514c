"""Where customer states live: in this process (the default) or in a Redis-compatible server
(docs/service.md#stores). Both answer the calls of :class:`Store`.

* :class:`MemoryStore` keeps states in a dict. Every applied batch is appended to a journal
  (``<path>.journal``, flushed before ``apply`` returns, so before the reply or the stream
  acknowledgement); ``close`` writes a snapshot (temp file then rename) and empties the journal;
  opening reads the snapshot and replays the journal (idempotent: applied events are
  duplicates), so a killed process loses nothing it acknowledged.
* :class:`RedisStore` keeps each state under ``<prefix>state:<customer>`` and updates a batch's
  customers in one optimistic transaction (WATCH / MGET / MULTI / MSET / EXEC, retried on
  conflict), so several workers may apply events for the same customer.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from journeyformer.service.state import CustomerState, Event

Encoded = tuple[str, Any, Event]  # (store key, customer id, event)
_MAGIC = b"JFSTATE1"


class Store(Protocol):
    def get(self, keys: Sequence[str]) -> list[CustomerState | None]: ...

    def apply(self, events: Sequence[Encoded]) -> tuple[int, list[CustomerState]]:
        """Apply events; returns (number applied, the states they changed, one per customer)."""
        ...

    def claim(self, name: str, seconds: float) -> bool:
        """True once per ``seconds`` for ``name`` (at most once across workers)."""
        ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


def _event_row(key: str, customer: Any, e: Event) -> list:
    return [key, customer, e.ts, list(e.ids), e.flags, repr(e.amount), [repr(x) for x in e.extras], e.key]


def _event_from_row(row: list) -> Encoded:
    key, customer, ts, ids, flags, amount, extras, ident = row
    return key, customer, Event(ts, tuple(ids), flags, float(amount), tuple(float(x) for x in extras), ident)


class MemoryStore:
    """States in this process, persisted to ``path`` (module docstring); ``path=None``: none."""

    def __init__(self, new_state: Callable[[Any], CustomerState], path: str | Path | None = None, fsync: bool = False) -> None:
        self.new_state = new_state
        self.states: dict[str, CustomerState] = {}
        self.claims: dict[str, float] = {}
        self.path = Path(path) if path else None
        self.fsync = fsync
        self.lock = threading.Lock()
        self.replayed = 0
        self._journal = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._load()
            self._journal = open(self.journal_path, "ab")  # noqa: SIM115 - open for the store's life

    @property
    def journal_path(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + ".journal")

    def get(self, keys: Sequence[str]) -> list[CustomerState | None]:
        return [self.states.get(k) for k in keys]

    def __len__(self) -> int:
        return len(self.states)

    def apply(self, events: Sequence[Encoded]) -> tuple[int, list[CustomerState]]:
        with self.lock:
            if events:
                self._write({"e": [_event_row(*x) for x in events]})
            return self._apply(events)

    def _apply(self, events: Iterable[Encoded]) -> tuple[int, list[CustomerState]]:
        applied, touched = 0, {}
        for key, customer, e in events:
            state = self.states.get(key)
            if state is None:
                state = self.states[key] = self.new_state(customer)
            if state.add(e):
                applied += 1
                touched[key] = state
        return applied, list(touched.values())

    def claim(self, name: str, seconds: float) -> bool:
        with self.lock:
            now = time.time()
            if self.claims.get(name, 0.0) > now:
                return False
            self.claims[name] = now + seconds
            self._write({"c": [name, now + seconds]})
            return True

    def _write(self, record: dict) -> None:
        if self._journal is None:  # nothing persisted
            return
        self._journal.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._journal.flush()
        if self.fsync:
            os.fsync(self._journal.fileno())

    def _load(self) -> None:
        assert self.path is not None
        if self.path.exists():
            raw = self.path.read_bytes()
            if raw[:8] != _MAGIC:
                raise ValueError(f"{self.path}: not a journeyformer state snapshot; move it away or set state.path")
            n_meta, = struct.unpack_from("<I", raw, 8)
            meta = json.loads(raw[12 : 12 + n_meta])
            self.claims = {k: v for k, v in meta["claims"].items() if v > time.time()}
            at = 12 + n_meta
            while at < len(raw):
                n_key, n_state = struct.unpack_from("<II", raw, at)
                at += 8
                key = raw[at : at + n_key].decode()
                self.states[key] = CustomerState.from_bytes(raw[at + n_key : at + n_key + n_state])
                at += n_key + n_state
        if self.journal_path.exists():
            with open(self.journal_path, "rb") as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except ValueError:  # a line cut by a kill mid-write: never acknowledged
                        continue
                    if "e" in record:
                        self.replayed += self._apply(_event_from_row(r) for r in record["e"])[0]
                    elif "c" in record:
                        self.claims[record["c"][0]] = record["c"][1]

    def snapshot(self) -> None:
        """Write every state to ``path`` atomically and empty the journal."""
        if self.path is None:
            return
        with self.lock:
            meta = json.dumps({"claims": self.claims, "customers": len(self.states)}).encode()
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                f.write(_MAGIC + struct.pack("<I", len(meta)) + meta)
                for key, state in self.states.items():
                    k, b = key.encode(), state.to_bytes()
                    f.write(struct.pack("<II", len(k), len(b)) + k + b)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            # After the rename: a crash before this line replays the journal onto the
            # snapshot, where every event is a duplicate.
            if self._journal is not None:
                self._journal.close()
            self._journal = open(self.journal_path, "wb")  # noqa: SIM115

    def close(self) -> None:
        self.snapshot()
        if self._journal is not None:
            self._journal.close()
            self._journal = None


class RedisStore:
    """States in a Redis-compatible server (``redis-py`` client, module docstring)."""

    def __init__(self, new_state: Callable[[Any], CustomerState], client: Any, prefix: str = "jf:") -> None:
        self.new_state = new_state
        self.client = client
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self.prefix}state:{key}"

    def get(self, keys: Sequence[str]) -> list[CustomerState | None]:
        raws = self.client.mget([self._key(k) for k in keys]) if keys else []
        return [None if r is None else CustomerState.from_bytes(r) for r in raws]

    def __len__(self) -> int:
        return int(self.client.get(f"{self.prefix}n_customers") or 0)

    def apply(self, events: Sequence[Encoded]) -> tuple[int, list[CustomerState]]:
        """One optimistic transaction for the whole batch: WATCH every customer's key, read
        them in one MGET, apply, write the changed ones in one MULTI/EXEC; another worker
        writing one of them in between makes EXEC fail and the batch is redone."""
        import redis

        by_key: dict[str, list[Encoded]] = {}
        for x in events:
            by_key.setdefault(x[0], []).append(x)
        if not by_key:
            return 0, []
        keys = list(by_key)
        names = [self._key(k) for k in keys]
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(*names)
                    raws = pipe.mget(names)
                    applied, touched, new = 0, [], 0
                    writes = {}
                    for key, name, raw in zip(keys, names, raws, strict=True):
                        group = by_key[key]
                        state = self.new_state(group[0][1]) if raw is None else CustomerState.from_bytes(raw)
                        n = sum(state.add(e) for _, _, e in group)
                        if n:
                            applied += n
                            touched.append(state)
                            writes[name] = state.to_bytes()
                            new += raw is None
                    pipe.multi()
                    if writes:
                        pipe.mset(writes)
                    if new:
                        pipe.incrby(f"{self.prefix}n_customers", new)
                    pipe.execute()
                    return applied, touched
                except redis.WatchError:  # another worker changed one of these customers: redo
                    continue

    def claim(self, name: str, seconds: float) -> bool:
        return bool(self.client.set(f"{self.prefix}claim:{name}", b"1", nx=True, px=max(1, int(seconds * 1000))))

    def close(self) -> None:
        self.client.close()


__all__ = ["Encoded", "MemoryStore", "RedisStore", "Store"]
