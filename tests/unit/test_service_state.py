"""CustomerState against a brute-force recomputation from the sorted events: in-order, late and
duplicate events; serialisation; stream message parsing; trigger conditions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from journeyformer.errors import ConfigError
from journeyformer.service.state import PURCHASE, US_PER_DAY, VALUE, CustomerState, Event, identity
from journeyformer.service.stream import parse_fields
from journeyformer.service.triggers import Rule, Triggers


def _events(rng: np.random.Generator, n: int) -> list[Event]:
    ts = np.sort(rng.integers(0, 400 * US_PER_DAY, n))
    ts[rng.random(n) < 0.1] = ts[0]  # some equal times
    out = []
    for i, t in enumerate(np.sort(ts)):
        action = int(rng.integers(2, 6))
        flags = (PURCHASE | VALUE) if action == 2 else 0
        amount = float(rng.gamma(2, 20)) if flags else 0.0
        out.append(Event(int(t), (action, int(rng.integers(1, 4))), flags, amount, (float(i % 3),), identity(7, int(t), (str(action), str(i)), amount, ())))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_state_equals_brute_force_with_late_and_duplicate_events(seed):
    rng = np.random.default_rng(seed)
    events = _events(rng, 300)
    late = rng.random(len(events)) < 0.2
    order = [e for e, lt in zip(events, late, strict=True) if not lt] + [events[i] for i in rng.permutation(np.flatnonzero(late))]
    state = CustomerState(7, (6, 4), 1, max_len=16, tail_days=90)
    assert all(state.add(e) for e in order)
    assert not any(state.add(e) for e in order[:50])  # duplicates change nothing
    ts = np.array(sorted(e.ts for e in events))
    gaps = np.diff(ts)
    assert list(state.times) == ts.tolist()
    assert state.n_events == len(events)
    assert state.gap_s2 == sum(int(g) ** 2 for g in gaps)
    assert state.gap_max == int(gaps.max())
    assert state.n_days == len(np.unique(ts // US_PER_DAY))
    assert state.spend == pytest.approx(sum(e.amount for e in events if e.flags & VALUE))
    assert state.n_purchases == sum(1 for e in events if e.flags & PURCHASE)
    # The tail: every event of the last 90 days before the newest and at least the last 16.
    newest = ts[-1]
    must = [e for e in events if newest - e.ts < 90 * US_PER_DAY]
    tail_ts = [e.ts for e in state.tail]
    assert tail_ts == sorted(tail_ts) and len(state.tail) >= 16
    assert {e.key for e in must} <= {e.key for e in state.tail}
    assert tail_ts == list(state.times[-len(tail_ts) :])  # a suffix of the history
    again = CustomerState.from_bytes(state.to_bytes())
    assert again.to_bytes() == state.to_bytes() and list(again.times) == list(state.times)


def test_identity_is_stable():
    a = identity(1, 10, ("web", "view"), 1.5, (2.0,))
    assert a == identity(1, 10, ("web", "view"), 1.5, (2.0,)) and a != identity(1, 10, ("web", "view"), 1.5, (2.5,))


def test_stream_messages():
    assert parse_fields({"event": json.dumps({"customer_id": 1})}) == ([{"customer_id": 1}], None)
    assert parse_fields({"event": json.dumps([{"a": 1}, {"a": 2}])})[0] == [{"a": 1}, {"a": 2}]
    assert "not JSON" in parse_fields({"event": "{x"})[1]
    assert "JSON object" in parse_fields({"event": "3"})[1]
    assert parse_fields({"customer_id": "5", "action": "view"})[0] == [{"customer_id": 5, "action": "view"}]


def test_trigger_conditions():
    rule = Rule.from_dict({"name": "r", "when": [{"column": "churn", "op": ">=", "value": 0.6}, {"column": "seg", "op": "changed"}]})
    t = Triggers([rule], sink=None, cooldown_s=10)  # type: ignore[arg-type]
    assert t._holds(rule, {"churn": 0.7, "seg": "a"}, "1") is None  # no previous segment: no change
    t.previous[("1", "seg")] = "a"
    assert t._holds(rule, {"churn": 0.7, "seg": "b"}, "1") == "churn 0.7 >= 0.6 and seg changed 'a' -> 'b'"
    assert t._holds(rule, {"churn": 0.5, "seg": "b"}, "1") is None
    with pytest.raises(ConfigError, match="op"):
        Rule.from_dict({"name": "x", "when": [{"column": "churn", "op": "~"}]})
    with pytest.raises(ConfigError, match="predictions do not have"):
        t._holds(Rule.from_dict({"name": "y", "when": [{"column": "nope", "op": ">", "value": 1}]}), {"churn": 1}, "1")


def test_memory_store_snapshot_and_journal_replay(tmp_path):
    """Snapshot mid-run, more events journaled, then a 'kill' (no close): a new store on the
    same path has every applied event once; a clean close empties the journal."""
    from journeyformer.service.store import MemoryStore

    def new(customer):
        return CustomerState(customer, (6, 4), 1, max_len=16, tail_days=90)

    events = _events(np.random.default_rng(5), 120)
    rows = [(str(i % 3), i % 3, e) for i, e in enumerate(events)]
    path = tmp_path / "state.bin"
    store = MemoryStore(new, path)
    store.apply(rows[:50])
    assert store.claim("rule:1", 3600)
    store.snapshot()
    store.apply(rows[40:])  # 10 duplicates, 70 new: journaled only
    reopened = MemoryStore(new, path)  # the first was never closed: as after SIGKILL
    assert reopened.replayed == 70 and len(reopened) == 3
    assert {k: s.to_bytes() for k, s in reopened.states.items()} == {k: s.to_bytes() for k, s in store.states.items()}
    assert not reopened.claim("rule:1", 3600)  # the cooldown survived too
    reopened.close()
    assert path.with_name("state.bin.journal").stat().st_size == 0
    assert MemoryStore(new, path).replayed == 0
