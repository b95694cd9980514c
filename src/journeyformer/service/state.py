"""What the service keeps per customer: enough to score at any cutoff at or after its newest
event without re-reading its history (docs/service.md#state-per-customer).

:class:`CustomerState` holds each quantity the features read in a form that updates in constant
time per event:

* **whole-history sums** (counts, spend, each action's latest time, the sum of squared gaps,
  the largest gap, the active days): plain running values;
* **the tail**: every event of the last ``tail_days`` before the newest event plus at least the
  last ``max_len`` events, in time order, for the windowed quantities and the sequence; older
  events are outside every window for any cutoff at or after the newest event;
* **event times and identities** (16 bytes per event): the neighbours a late event needs, the
  predecessor of the first sequence event and duplicate detection.

A late event is inserted where it belongs (O(log n) search, O(n) memmove; an O(n) rescan of the
largest gap only when it splits it), so the answer is the batch job's. An event equal to one
already applied (:func:`identity`) changes nothing, as the batch job's ``duplicates: drop``.
Serialised by :meth:`CustomerState.to_bytes`, the same bytes in the snapshot and in Redis.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import cache
from typing import Any

US_PER_DAY = 86_400_000_000
FORMAT = 2

# Flag bits of an event's action (LabelConfig's action lists, judged on the action text).
PURCHASE, INTENT, VALUE, ACTIVITY = 1, 2, 4, 8


@dataclass(frozen=True, slots=True)
class Event:
    """One canonical event, encoded.

    Attributes:
        ts: epoch microseconds (UTC).
        ids: vocabulary id per categorical feature column (``FeatureConfig.categorical``).
        flags: PURCHASE | INTENT | VALUE | ACTIVITY bits of its action.
        amount: the amount (currency units; 0 without one).
        extras: the extra numeric columns (``FeatureConfig.numeric``).
        key: 64-bit identity (:func:`identity`).
    """

    ts: int
    ids: tuple[int, ...]
    flags: int
    amount: float
    extras: tuple[float, ...]
    key: int


_TS = struct.Struct("<q")


@cache
def _packer(n_cat: int, n_extras: int) -> struct.Struct:
    """A tail record: ts, identity, flags, the category ids (uint16), amount, extras."""
    return struct.Struct(f"<qQB{n_cat}Hd{n_extras}d")


def identity(customer: Any, ts: int, texts: tuple[str, ...], amount: float, extras: tuple[float, ...]) -> int:
    """A stable 64-bit identity of an event from its canonical values (blake2b, so the same in
    every process and on every machine, unlike ``hash``)."""
    raw = json.dumps([customer, ts, list(texts), repr(amount), [repr(x) for x in extras]])
    return int.from_bytes(hashlib.blake2b(raw.encode(), digest_size=8).digest(), "little")


class CustomerState:
    """One customer's state (module docstring); :meth:`add` applies an event.

    Args:
        customer: the customer id (int or str, as the events give it).
        vocab_sizes: tokens per categorical feature column (``<pad>`` and ``<unk>`` included).
        n_extras: number of extra numeric columns.
        max_len: the model's sequence length.
        tail_days: days of events kept before the newest one (the longest feature window).
    """

    __slots__ = (
        "customer", "max_len", "tail_days", "times", "ids", "packed", "packer", "trimmed", "n_events",
        "n_purchases", "n_intent", "n_value", "spend", "value_max", "extras_sum", "counts",
        "action_last", "activity_last", "gap_s2", "gap_max", "n_days",
    )  # fmt: skip

    def __init__(self, customer: Any, vocab_sizes: tuple[int, ...], n_extras: int, max_len: int, tail_days: int) -> None:
        self.customer = customer
        self.max_len = max_len
        self.tail_days = tail_days
        self.times = array("q")  # every event's time, sorted (ties: arrival order)
        self.ids = array("Q")  # identities, parallel to times
        # The tail (module docstring), sorted like times: fixed-size records in one buffer
        # (about 40 bytes an event, where Python objects would take about 300).
        self.packer = _packer(len(vocab_sizes), n_extras)
        self.packed = bytearray()
        if max(vocab_sizes) > 65_535:
            raise ValueError(f"vocabularies of up to 65,535 tokens, got {max(vocab_sizes)}")
        self.trimmed = False  # whether an event has left the tail
        self.n_events = 0
        self.n_purchases = 0
        self.n_intent = 0
        self.n_value = 0
        self.spend = 0.0  # sum of value-action amounts
        self.value_max = -math.inf
        self.extras_sum = [0.0] * n_extras
        self.counts = [[0] * v for v in vocab_sizes]
        self.action_last = [None] * vocab_sizes[0]  # latest time of each action id
        self.activity_last: int | None = None
        self.gap_s2 = 0  # sum of squared gaps, microseconds^2 (exact: a Python int)
        self.gap_max = 0  # largest gap, microseconds (0 with fewer than two events)
        self.n_days = 0  # distinct UTC days with an event

    @property
    def tail(self) -> list[Event]:
        """The tail's events, oldest first."""
        n_cat = len(self.counts)
        return [
            Event(r[0], tuple(r[3 : 3 + n_cat]), r[2], r[3 + n_cat], tuple(r[4 + n_cat :]), r[1])
            for r in self.packer.iter_unpack(self.packed)
        ]

    def _tail_ts(self, i: int) -> int:
        return _TS.unpack_from(self.packed, i * self.packer.size)[0]

    def add(self, e: Event) -> bool:
        """Apply ``e``; False (nothing changed) when it is a duplicate of an applied event."""
        times = self.times
        lo, pos = bisect_left(times, e.ts), bisect_right(times, e.ts)
        if e.key in self.ids[lo:pos]:
            return False
        prev = times[pos - 1] if pos > 0 else None
        nxt = times[pos] if pos < len(times) else None
        new = ([] if prev is None else [e.ts - prev]) + ([] if nxt is None else [nxt - e.ts])
        rescan = False
        if len(new) == 2:  # a late event splits the gap prev -> nxt
            whole = nxt - prev
            self.gap_s2 -= whole**2
            rescan = whole == self.gap_max and whole > max(new)
        self.gap_s2 += sum(g * g for g in new)
        self.gap_max = max([self.gap_max, *new])
        day = e.ts // US_PER_DAY
        if not ((prev is not None and prev // US_PER_DAY == day) or (nxt is not None and nxt // US_PER_DAY == day)):
            self.n_days += 1
        times.insert(pos, e.ts)
        self.ids.insert(pos, e.key)
        if rescan:  # the largest gap was split: O(n), late events only
            self.gap_max = max((times[i + 1] - times[i] for i in range(len(times) - 1)), default=0)
        self._sums(e)
        self._tail(e)
        return True

    def _sums(self, e: Event) -> None:
        self.n_events += 1
        for counts, i in zip(self.counts, e.ids, strict=True):
            counts[i] += 1
        if e.flags & PURCHASE:
            self.n_purchases += 1
        if e.flags & INTENT:
            self.n_intent += 1
        if e.flags & VALUE:
            self.n_value += 1
            self.spend += e.amount
            self.value_max = max(self.value_max, e.amount)
        if e.flags & ACTIVITY and (self.activity_last is None or e.ts > self.activity_last):
            self.activity_last = e.ts
        for j, x in enumerate(e.extras):
            self.extras_sum[j] += x
        last = self.action_last[e.ids[0]]
        if last is None or e.ts > last:
            self.action_last[e.ids[0]] = e.ts

    def _tail(self, e: Event) -> None:
        size, newest = self.packer.size, self.times[-1]
        n = len(self.packed) // size
        horizon = newest - self.tail_days * US_PER_DAY
        if self.trimmed and n and e.ts < self._tail_ts(0) and e.ts <= horizon:
            return  # older than the trimmed tail and outside every window: sums only
        at = n
        while at > 0 and self._tail_ts(at - 1) > e.ts:  # usually 0 steps: events come in order
            at -= 1
        record = self.packer.pack(e.ts, e.key, e.flags, *e.ids, e.amount, *e.extras)
        self.packed[at * size : at * size] = record
        n += 1
        drop = 0
        while n - drop > self.max_len and self._tail_ts(drop) <= horizon:
            drop += 1
        if drop:
            del self.packed[: drop * size]
            self.trimmed = True

    # -- serialisation: a JSON header with the scalars, then the arrays' raw bytes ----------

    def to_bytes(self) -> bytes:
        head = {
            "v": FORMAT, "c": self.customer, "L": self.max_len, "D": self.tail_days, "tr": self.trimmed,
            "n": self.n_events, "np": self.n_purchases, "ni": self.n_intent, "nv": self.n_value,
            "sp": repr(self.spend), "vm": repr(self.value_max), "xs": [repr(x) for x in self.extras_sum],
            "cn": self.counts, "al": self.action_last, "ac": self.activity_last, "g2": str(self.gap_s2),
            "gm": self.gap_max, "nd": self.n_days,
            "nx": len(self.extras_sum), "tl": len(self.packed),
        }  # fmt: skip
        h = json.dumps(head, separators=(",", ":")).encode()
        return struct.pack("<II", len(h), len(self.times)) + h + self.times.tobytes() + self.ids.tobytes() + bytes(self.packed)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CustomerState:
        n_head, n = struct.unpack_from("<II", raw)
        head = json.loads(raw[8 : 8 + n_head])
        if head.get("v") != FORMAT:
            raise ValueError(f"customer state format {head.get('v')}, this service reads {FORMAT}")
        s = cls.__new__(cls)
        s.customer, s.max_len, s.tail_days, s.trimmed = head["c"], head["L"], head["D"], head["tr"]
        s.n_events, s.n_purchases, s.n_intent, s.n_value = head["n"], head["np"], head["ni"], head["nv"]
        s.spend, s.value_max = float(head["sp"]), float(head["vm"])
        s.extras_sum = [float(x) for x in head["xs"]]
        s.counts, s.action_last, s.activity_last = head["cn"], head["al"], head["ac"]
        s.gap_s2, s.gap_max, s.n_days = int(head["g2"]), head["gm"], head["nd"]
        at = 8 + n_head
        s.times = array("q")
        s.times.frombytes(raw[at : at + 8 * n])
        s.ids = array("Q")
        s.ids.frombytes(raw[at + 8 * n : at + 16 * n])
        s.packer = _packer(len(s.counts), head["nx"])
        s.packed = bytearray(raw[at + 16 * n : at + 16 * n + head["tl"]])
        return s


__all__ = ["ACTIVITY", "INTENT", "PURCHASE", "VALUE", "CustomerState", "Event", "US_PER_DAY", "identity"]
