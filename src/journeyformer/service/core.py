"""The service without HTTP: events in (validated like the batch job), state updated, scores out.

Events are validated by :meth:`journeyformer.api.Predictor.events` (so a bad request gets the
batch job's one-line message); scores come from :func:`journeyformer.service.features.sequences_at`
and :meth:`journeyformer.api.Predictor.score`, the scoring loop ``journeyformer predict`` runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import polars as pl

from journeyformer.api import Predictor
from journeyformer.data.labels.samples import parse_time
from journeyformer.errors import EventDataError
from journeyformer.service.features import sequences_at, tail_days
from journeyformer.service.state import (
    ACTIVITY,
    INTENT,
    PURCHASE,
    VALUE,
    CustomerState,
    Event,
    identity,
)
from journeyformer.service.store import Encoded, Store
from journeyformer.service.triggers import Triggers, rows

AS_OF = ("now", "latest")


class Encoder:
    """Canonical events (:meth:`Predictor.events`) -> (store key, customer id, :class:`Event`)."""

    def __init__(self, predictor: Predictor) -> None:
        pre = predictor.bundle.preprocessing
        self.features = pre.features
        self.index = [{t: i for i, t in enumerate(pre.vocabs[c].tokens) if i >= 2} for c in pre.features.categorical]
        labels = pre.labels
        self.sets = [
            (PURCHASE, set(labels.purchase_actions)),
            (INTENT, set(labels.intent_actions)),
            (VALUE, set(labels.value_actions)),
            (ACTIVITY, None if labels.activity_actions is None else set(labels.activity_actions)),
        ]
        self.vocab_sizes = tuple(len(pre.vocabs[c].tokens) for c in pre.features.categorical)
        self.tail_days = tail_days(pre)

    def new_state(self, customer: Any) -> CustomerState:
        return CustomerState(customer, self.vocab_sizes, len(self.features.numeric), self.features.max_len, self.tail_days)

    def encode(self, canonical: pl.DataFrame) -> list[Encoded]:
        f = self.features
        frame = canonical.with_columns(pl.col("timestamp").cast(pl.Int64))
        cols = [frame.get_column(c).to_list() for c in ("customer_id", "timestamp", *f.categorical, "amount", *f.numeric)]
        n_cat = len(f.categorical)
        out = []
        for customer, ts, *rest in zip(*cols, strict=True):
            texts = tuple(rest[:n_cat])
            amount = float(rest[n_cat])
            extras = tuple(float(x) for x in rest[n_cat + 1 :])
            ids = tuple(ix.get(t, 1) for ix, t in zip(self.index, texts, strict=True))
            flags = sum(bit for bit, s in self.sets if s is None or texts[0] in s)
            out.append((str(customer), customer, Event(ts, ids, flags, amount, extras, identity(customer, ts, texts, amount, extras))))
        return out


class ScoringService:
    """Events -> state -> scores over one bundle and one store.

    Args:
        predictor: the bundle's warm :class:`~journeyformer.api.Predictor`.
        store: a :class:`~journeyformer.service.store.Store`.
        as_of: the default scoring time: ``now`` (the wall clock) or ``latest`` (the newest
            event the service has seen, as ``journeyformer predict`` takes the end of the data).
        triggers: rules evaluated on the scores of customers whose state changed.
        top_k: actions listed in ``top_actions``.
    """

    def __init__(self, predictor: Predictor, store: Store, encoder: Encoder, *, as_of: str = "now", triggers: Triggers | None = None, top_k: int = 3) -> None:
        if as_of not in AS_OF:
            raise ValueError(f"as_of={as_of!r} is not one of {list(AS_OF)}")
        self.predictor = predictor
        self.store = store
        self.encoder = encoder
        self.as_of = as_of
        self.triggers = triggers
        self.top_k = top_k
        self.latest_us = 0
        # The HTTP handlers and the stream consumer's thread share the states: an update and a
        # read of the same customer never interleave (the embedded store's states are live).
        self.lock = threading.RLock()
        self.counters = {"events_received": 0, "events_applied": 0, "events_duplicate": 0, "requests_rejected": 0, "scores": 0, "decisions": 0}

    def ingest(self, records: Sequence[Mapping[str, Any]], score: bool = False) -> dict[str, Any]:
        """Validate JSON events (the bundle's column names; EventDataError as the batch job
        words it), apply them and (with triggers or ``score``) rescore the customers changed."""
        canonical = self.predictor.events(_typed(_frame(records), self.predictor.schema))
        encoded = self.encoder.encode(canonical)
        with self.lock:
            applied, touched = self.store.apply(encoded)
            if encoded:
                self.latest_us = max(self.latest_us, max(e.ts for _, _, e in encoded))
            self.counters["events_received"] += len(records)
            self.counters["events_applied"] += applied
            self.counters["events_duplicate"] += len(encoded) - applied
            out: dict[str, Any] = {"received": len(encoded), "applied": applied, "duplicates": len(encoded) - applied}
            if touched and (score or self.triggers is not None):
                frame = self.score_states(touched, self.cutoff(None, touched))
                if self.triggers is not None:
                    decisions = self.triggers.evaluate(frame, self.store)
                    self.counters["decisions"] += len(decisions)
                    out["decisions"] = len(decisions)
                if score:
                    out["scores"] = rows(frame)
            return out

    def cutoff(self, as_of: str | None, states: Sequence[CustomerState]) -> datetime:
        """``as_of`` (ISO-8601) or the default rule; never before a state's newest event under
        ``now`` (a clock behind the events would otherwise refuse them)."""
        if as_of:
            return parse_time(as_of)
        newest = max((s.times[-1] for s in states), default=0)
        if self.as_of == "latest":
            us = max(self.latest_us, newest)
        else:
            us = max(int(time.time() * 1e6), newest)
        return datetime.fromtimestamp(us // 1_000_000, tz=timezone.utc).replace(microsecond=us % 1_000_000)

    def score_states(self, states: Sequence[CustomerState], when: datetime) -> pl.DataFrame:
        seqs = sequences_at(states, when, self.predictor.bundle.preprocessing)
        self.counters["scores"] += len(states)
        return self.predictor.score(seqs, when, top_k=self.top_k)

    def customers(self, keys: Sequence[str], as_of: str | None = None) -> tuple[pl.DataFrame, list[str]]:
        """Current scores of the known ``keys`` and the keys without state."""
        with self.lock:
            states = self.store.get(keys)
            known = [s for s in states if s is not None]
            missing = [k for k, s in zip(keys, states, strict=True) if s is None]
            if not known:
                return pl.DataFrame(), missing
            return self.score_states(known, self.cutoff(as_of, known)), missing

    def score_events(self, records: Sequence[Mapping[str, Any]], as_of: str | None = None) -> tuple[pl.DataFrame, list[Any]]:
        """Stateless: the Python API's answer for these events (rows, customers without history)."""
        frame = self.predictor.predict(_frame(records), as_of=as_of, top_k=self.top_k)
        return frame, self.predictor.last_rejected


def _frame(records: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    if not records:
        raise EventDataError("events: no events in the request; send one event object or a list of them")
    try:
        return pl.DataFrame(list(records), infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as err:
        raise EventDataError(f"events: cannot read the events as a table ({err}); send objects with the same fields and one type per field") from None


def _typed(frame: pl.DataFrame, schema: Any) -> pl.DataFrame:
    """JSON's usual types made canonical where that is unambiguous, so the API's query-free
    path (:func:`journeyformer.data.events.normalize.already_canonical`) takes small requests:
    timestamps that all carry a UTC offset ("...Z", "+02:00") become Datetime("us", "UTC")
    (the same instants whatever ``data.time_zone`` says), whole numbers of the amount and extra
    numeric columns Float64. Anything else is left for the batch job's normalisation."""
    fixes = []
    if schema.source("timestamp") == "timestamp" and frame.schema.get("timestamp") == pl.String:
        try:
            parsed = [datetime.fromisoformat(t) for t in frame.get_column("timestamp").to_list()]
        except (TypeError, ValueError):
            parsed = []
        if parsed and all(t.tzinfo is not None for t in parsed):
            fixes.append(pl.Series("timestamp", [t.astimezone(timezone.utc) for t in parsed], dtype=pl.Datetime("us", "UTC")))
    for c in ("amount", *schema.extra_numeric):
        if schema.source(c) in (c, None) and c in frame.columns and frame.schema[c].is_integer():
            fixes.append(frame.get_column(c).cast(pl.Float64))
    return frame.with_columns(fixes) if fixes else frame


__all__ = ["Encoder", "ScoringService"]
