"""The catalogue world: customers moving through a catalogue of items, for the next-item task.

Items have a latent topic and a popularity (Zipf within the topic). Each customer holds an
interest over topics (one or two topics mostly) that drifts: at each event, with probability
``drift``, the current topic is redrawn from the interest. Events come in sessions with an
intent: within a session the customer follows the catalogue's item-to-item path (the next
item of the topic) with probability ``follow``, else draws a popular item of the current
topic; with probability ``repeat`` an event repeats one of the customer's own earlier items
(repeat purchase). So global popularity knows little, recent popularity a little more,
transitions and the customer's topics most: the room a sequence model should take.

Columns: the event contract (customer_id, timestamp, channel, action, amount) plus ``item``
(String ids ``i<n>``); map it with ``data.columns.item=item``. :meth:`CatalogueWorld.simulate`
also returns what the generator drew and no observer sees (:class:`CatalogueState`), for the
world's Bayes ceiling (``benchmarks/bench_items_ceiling.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl


@dataclass(frozen=True)
class CatalogueState:
    """The latent side of one generated catalogue world.

    Attributes:
        topic_of: (n_items,) topic of each item (item ``i<n>`` is index n).
        members: per topic, its items, most popular first.
        weights: per topic, the probability of each of ``members`` in a popular draw.
        successor: (n_items,) the item that follows each on the catalogue's path.
        interest: (n_customers, n_topics) each customer's interest (customer c + 1 is row c).
        topic: (E,) the topic in force at each event, in the rows' order of the events.
        session_start: (E,) bool, the event begins a session (more than an hour after the
            customer's previous event, or the first).
    """

    topic_of: np.ndarray
    members: list[np.ndarray]
    weights: list[np.ndarray]
    successor: np.ndarray
    interest: np.ndarray
    topic: np.ndarray
    session_start: np.ndarray


SESSION_GAP_S = 3600  # a gap longer than this between two events starts a new session


@dataclass(frozen=True)
class CatalogueWorld:
    """Settings of the catalogue world (see the module docstring)."""

    n_customers: int = 2000
    n_items: int = 500
    n_topics: int = 20
    days: int = 240
    events_per_customer: float = 40.0
    session_length: float = 5.0
    follow: float = 0.6
    repeat: float = 0.1
    drift: float = 0.05
    zipf: float = 1.1
    start: str = "2025-01-01"
    seed: int = 0

    def generate(self) -> pl.DataFrame:
        """The events, sorted by customer and time."""
        return self.simulate()[0]

    def simulate(self) -> tuple[pl.DataFrame, CatalogueState]:
        """The events (as :meth:`generate`) and the latent state that drew them."""
        rng = np.random.default_rng(self.seed)
        topic_of = rng.integers(0, self.n_topics, self.n_items)
        members = [np.flatnonzero(topic_of == t) for t in range(self.n_topics)]
        members = [m if len(m) else np.array([t % self.n_items]) for t, m in enumerate(members)]
        weights = [w / w.sum() for w in (1.0 / np.arange(1, len(m) + 1) ** self.zipf for m in members)]
        # The catalogue's path: each item's successor is the next item of its topic.
        successor = np.empty(self.n_items, dtype=np.int64)
        for m in members:
            successor[m] = np.roll(m, -1)
        start = datetime.fromisoformat(self.start).replace(tzinfo=timezone.utc)
        span_s = self.days * 86_400
        cids, stamps, items, topics, fresh, interests = [], [], [], [], [], []
        for c in range(self.n_customers):
            n = max(2, rng.poisson(self.events_per_customer))
            interest = rng.dirichlet(np.full(self.n_topics, 0.1))
            interests.append(interest)
            # Sessions: starts spread over the period, events minutes apart within one.
            n_sessions = max(1, int(np.ceil(n / self.session_length)))
            session = np.sort(rng.integers(0, n_sessions, n))
            starts = np.sort(rng.integers(0, span_s - 86_400, n_sessions))
            times = starts[session] + np.cumsum(rng.exponential(180.0, n)).astype(np.int64) % 3600
            times = np.sort(times)
            topic = rng.choice(self.n_topics, p=interest)
            own: list[int] = []
            prev = -1
            for j in range(n):
                new_session = j == 0 or times[j] - times[j - 1] > SESSION_GAP_S
                if rng.random() < self.drift:
                    topic = rng.choice(self.n_topics, p=interest)
                topics.append(topic)
                fresh.append(new_session)
                if own and rng.random() < self.repeat:
                    item = own[rng.integers(len(own))]
                elif prev >= 0 and not new_session and rng.random() < self.follow:
                    item = int(successor[prev])
                else:
                    m = members[topic]
                    item = int(m[rng.choice(len(m), p=weights[topic])])
                own.append(item)
                prev = item
            cids.append(np.full(n, c + 1, dtype=np.int64))
            stamps.append(times)
            items.append(np.asarray(own))
        cid = np.concatenate(cids)
        item = np.concatenate(items)
        ts = np.concatenate(stamps)
        buy = rng.random(len(cid)) < 0.3
        state = CatalogueState(
            topic_of, members, weights, successor, np.asarray(interests),
            np.asarray(topics, dtype=np.int64), np.asarray(fresh, dtype=bool),
        )  # fmt: skip
        events = pl.DataFrame(
            {
                "customer_id": cid,
                "timestamp": pl.Series([start + timedelta(seconds=int(s)) for s in ts], dtype=pl.Datetime("us", "UTC")),
                "channel": np.where(rng.random(len(cid)) < 0.5, "web", "app"),
                "action": np.where(buy, "purchase", "product_view"),
                "amount": np.where(buy, np.round(rng.gamma(2.0, 20.0, len(cid)), 2), 0.0),
                "item": [f"i{i}" for i in item],
            }
        )
        return events, state
