"""Baselines of the next-item task: the candidate generators a practitioner starts from, and a
LightGBM lambdarank ranker over their candidates (:class:`ItemRanker`).

Every baseline returns (N, LIST_K) item ids, best first, like the model's ``next_item_ids``;
ids 0 and 1 (padding, ``<unk>``) are never listed. The item column is the last column of
``Sequences.categorical`` (see :class:`journeyformer.data.features.definitions.FeatureConfig`); an event
without an item has id 0. With ``exclude_seen`` (the label settings') the items of a sample's
kept events are never listed, as in the model's graph.

Everything is fitted on labelled samples only, before their cutoff (the targets) or at it
(the histories); "recent popularity" counts the scored samples' own events in the last 7 or
30 days before their cutoff, which a job scoring at that cutoff knows too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from journeyformer.data.features.aggregates import CATEGORICAL_AGGREGATES
from journeyformer.data.features.definitions import EVENT_NUMERIC
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.labels.lifecycle import LabelConfig
from journeyformer.metrics.ranking import top_k
from journeyformer.tasks.base import Baseline, BaselineContext, Task
from journeyformer.tasks.boosting import DEFAULT_PARAMS, NATIVE_LOCK, Boosted, available, objective

log = logging.getLogger(__name__)

LIST_K = 20  # items each baseline lists (the model's export default)
_CHUNK = 512  # rows scored at once: (chunk, catalogue) scores, never (N, catalogue)
_AGE = EVENT_NUMERIC.index("log_age")


def item_ids(seqs: Sequences) -> np.ndarray:
    """(E,) int64 item id of every kept event (the last categorical column)."""
    return seqs.categorical[:, -1].astype(np.int64)


def event_rows(seqs: Sequences) -> np.ndarray:
    """(E,) sample index of every kept event."""
    return np.repeat(np.arange(len(seqs)), seqs.lengths)


def age_days(seqs: Sequences) -> np.ndarray:
    """(E,) days before the cutoff of every kept event (from ``log_age``)."""
    return np.expm1(seqs.numeric[:, _AGE].astype(np.float64) * 10.0) / 86_400.0


def target_items(y: np.ndarray) -> np.ndarray:
    """The item ids of labels ``y`` (N,) or (N, K), padding (< 2) left out."""
    flat = np.asarray(y).reshape(-1).astype(np.int64)
    return flat[flat >= 2]


def exclude_seen(labels: LabelConfig | None) -> bool:
    return (labels or LabelConfig()).exclude_seen


class ItemBaseline(Baseline):
    """Shared machinery: ``n_items`` from the data, chunked ranking with the seen mask."""

    exclude: bool = True
    n_items: int = 2
    popularity: np.ndarray

    def fit(self, train: Sequences, ctx: BaselineContext) -> ItemBaseline:
        """The catalogue size, the seen mask's setting and the popularity (every generator's
        last tie-break); a generator with a model of its own fits it after this."""
        assert train.labels is not None, "item baselines are fitted on labelled samples"
        y = train.labels["next_item"]
        items, targets = item_ids(train), target_items(y)
        top = max(int(items.max(initial=1)), int(targets.max(initial=1)))
        self.n_items = max(self.n_items, top + 1)
        self.exclude = exclude_seen(ctx.labels)
        # Training targets count most; history items break ties (a catalogue-wide prior).
        pop = np.bincount(targets, minlength=self.n_items).astype(np.float64)
        pop += 1e-3 * np.bincount(items, minlength=self.n_items)
        self.popularity = pop
        return self

    def _width(self, n: int) -> int:
        return max(n, self.n_items)

    def _rank(self, seqs: Sequences, scores: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``scores(rows)`` (R, V) for a chunk of sample rows -> (N, LIST_K) ranked ids, with
        the popularity as the last tie-break and the seen mask applied."""
        n = len(seqs)
        items, rows = item_ids(seqs), event_rows(seqs)
        out = np.zeros((n, LIST_K), dtype=np.int64)
        for lo in range(0, n, _CHUNK):
            chunk = np.arange(lo, min(lo + _CHUNK, n))
            s = scores(chunk)
            v = s.shape[1]
            pop = np.zeros(v)
            pop[: min(v, len(self.popularity))] = self.popularity[:v]
            s = s + 1e-6 * pop / max(pop.max(), 1.0)
            mask = None
            if self.exclude:
                mask = np.zeros_like(s, dtype=bool)
                sel = (rows >= lo) & (rows < lo + len(chunk)) & (items < v)
                mask[rows[sel] - lo, items[sel]] = True
            ids = top_k(s, LIST_K, mask)  # fewer columns in a catalogue under LIST_K: 0 after
            out[chunk, : ids.shape[1]] = ids
        return out


class GlobalPopularity(ItemBaseline):
    """The most frequent target items of the training samples, the same list for everyone."""

    name = "item_popularity"

    def predict(self, seqs: Sequences) -> np.ndarray:
        return self._rank(seqs, lambda rows: np.tile(self.popularity, (len(rows), 1)))


class RecentPopularity(ItemBaseline):
    """The items of the scored samples' own events in the last ``days`` days before their
    cutoff, most frequent first (per cutoff), global popularity breaking ties."""

    def __init__(self, days: int) -> None:
        self.days = days
        self.name = f"recent_popularity_{days}d"

    def predict(self, seqs: Sequences) -> np.ndarray:
        items, rows = item_ids(seqs), event_rows(seqs)
        recent = (age_days(seqs) <= self.days) & (items >= 2)
        v = self._width(int(items.max(initial=1)) + 1)
        counts = {}
        for cut in np.unique(seqs.cutoff):
            at = (seqs.cutoff[rows] == cut) & recent
            counts[cut] = np.bincount(items[at], minlength=v).astype(np.float64)
        base = np.zeros(v)
        base[: len(self.popularity)] = self.popularity[:v]
        base = 1e-3 * base / max(base.max(), 1.0)
        return self._rank(seqs, lambda r: np.stack([counts[c] + base for c in seqs.cutoff[r]]))


class RepeatItems(ItemBaseline):
    """The customer's own items, most frequent then most recent first (popularity after)."""

    name = "repeat_items"

    def predict(self, seqs: Sequences) -> np.ndarray:
        items, rows = item_ids(seqs), event_rows(seqs)
        v = self._width(int(items.max(initial=1)) + 1)
        recency = 1.0 / (1.0 + age_days(seqs))

        def scores(chunk: np.ndarray) -> np.ndarray:
            s = np.zeros((len(chunk), v))
            sel = (rows >= chunk[0]) & (rows <= chunk[-1]) & (items >= 2)
            np.add.at(s, (rows[sel] - chunk[0], items[sel]), 1.0 + 0.01 * recency[sel])
            return s

        return self._rank(seqs, scores)


class ItemTransitions(ItemBaseline):
    """First-order item-to-item transitions: P(next item | the last item), counted over
    consecutive item events of the training histories and from each last item to the
    target; popularity where the last item was never followed."""

    name = "item_transitions"

    def fit(self, train: Sequences, ctx: BaselineContext) -> ItemTransitions:
        from scipy import sparse

        super().fit(train, ctx)
        items, rows = item_ids(train), event_rows(train)
        has = items >= 2
        it, rw = items[has], rows[has]
        same = rw[1:] == rw[:-1]
        src, dst = list(it[:-1][same]), list(it[1:][same])
        last = _last_item(train)
        y = np.asarray(train.labels["next_item"]).reshape(len(train), -1)[:, 0]
        ok = (last >= 2) & (y >= 2)
        src += list(last[ok])
        dst += list(y[ok])
        v = self.n_items
        m = sparse.coo_matrix((np.ones(len(src)), (src, dst)), shape=(v, v)).tocsr()
        self.matrix = m.multiply(1.0 / np.maximum(m.sum(1), 1.0)).tocsr()
        return self

    def predict(self, seqs: Sequences) -> np.ndarray:
        last = _last_item(seqs)
        v = self.matrix.shape[0]

        def scores(chunk: np.ndarray) -> np.ndarray:
            li = np.where(last[chunk] < v, last[chunk], 0)
            return np.asarray(self.matrix[li].todense())

        return self._rank(seqs, scores)


class ItemCooccurrence(ItemBaseline):
    """Item kNN: items that occur in the same training histories (and targets) as the
    customer's items, cosine-normalised co-occurrence summed over the customer's items,
    more recent items weighted more."""

    name = "cooccurrence_knn"

    def fit(self, train: Sequences, ctx: BaselineContext) -> ItemCooccurrence:
        from scipy import sparse

        super().fit(train, ctx)
        items, rows = item_ids(train), event_rows(train)
        y = np.asarray(train.labels["next_item"]).reshape(len(train), -1)
        yr, yc = np.nonzero(y >= 2)
        r = np.concatenate([rows[items >= 2], yr])
        c = np.concatenate([items[items >= 2], y[yr, yc]])
        v = self.n_items
        x = sparse.coo_matrix((np.ones(len(r)), (r, c)), shape=(len(train), v)).tocsr()
        x.data[:] = 1.0  # presence, not counts
        co = (x.T @ x).tocsr()
        co.setdiag(0)
        norm = np.sqrt(np.asarray(x.sum(0)).ravel()) + 1e-9
        self.sim = sparse.diags(1 / norm) @ co @ sparse.diags(1 / norm)
        self.sim = self.sim.tocsr()
        return self

    def predict(self, seqs: Sequences) -> np.ndarray:
        from scipy import sparse

        items, rows = item_ids(seqs), event_rows(seqs)
        v = self.sim.shape[0]
        w = 1.0 / (1.0 + age_days(seqs) / 30.0)
        ok = (items >= 2) & (items < v)
        hist = sparse.coo_matrix((w[ok], (rows[ok], items[ok])), shape=(len(seqs), v)).tocsr()

        def scores(chunk: np.ndarray) -> np.ndarray:
            return np.asarray((hist[chunk] @ self.sim).todense())

        return self._rank(seqs, scores)


def _last_item(seqs: Sequences) -> np.ndarray:
    """(N,) the id of each sample's most recent event with an item (0 without one)."""
    items, rows = item_ids(seqs), event_rows(seqs)
    out = np.zeros(len(seqs), dtype=np.int64)
    has = items >= 2
    out[rows[has]] = items[has]  # later rows overwrite earlier: the last one stays
    return out


def generators() -> tuple[ItemBaseline, ...]:
    """The candidate generators, in table order."""
    return (
        GlobalPopularity(),
        RecentPopularity(7),
        RecentPopularity(30),
        RepeatItems(),
        ItemTransitions(),
        ItemCooccurrence(),
    )


class ItemRanker(Boosted):
    """The practitioner's strongest next-item baseline: LightGBM lambdarank over the
    candidates of the generators, with the aggregate features.

    Per sample, the candidates are the union of every generator's list; each (sample,
    candidate) pair has the reciprocal rank of the candidate in each generator's list (0 when
    absent), the item's log training popularity, how often the sample's kept events had it, and
    the sample's aggregate numbers (:mod:`journeyformer.data.features.aggregates`). Relevance
    is 1 when the candidate is a target. Rounds stop early on the validation samples (another
    set of customers than the fitted generators'). Items no generator proposes are never
    ranked. Left out (``fit`` returns None) without lightgbm or without validation samples, as
    every :class:`Boosted` baseline.
    """

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self.generators: tuple[ItemBaseline, ...] = ()
        self.booster: Any = None
        self.rounds = 0

    def fit(self, train: Sequences, ctx: BaselineContext) -> ItemRanker | None:
        objective(self.task)
        if not available() or ctx.val is None or ctx.val.labels is None:
            log.info("next_item: no LightGBM ranker (lightgbm missing or no validation samples)")
            return None
        import lightgbm as lgb

        self.generators = tuple(g.fit(train, ctx) for g in generators())
        self.popularity = next(g for g in self.generators if isinstance(g, GlobalPopularity)).popularity
        x, rel, groups, _ = self._pairs(train)
        vx, vrel, vgroups, _ = self._pairs(ctx.val)
        if rel.sum() == 0 or vrel.sum() == 0:
            log.info("next_item: no target among the candidates; no LightGBM ranker")
            return None
        params = {**DEFAULT_PARAMS, **objective(self.task), "seed": ctx.seed}
        with NATIVE_LOCK:
            dtrain = lgb.Dataset(x, rel, group=groups)
            dval = lgb.Dataset(vx, vrel, group=vgroups, reference=dtrain)
            self.booster = lgb.train(
                params, dtrain, num_boost_round=500, valid_sets=[dval],
                callbacks=[lgb.early_stopping(30, verbose=False)],
            )  # fmt: skip
        self.rounds = int(self.booster.best_iteration or self.booster.current_iteration())
        return self

    def _pairs(self, seqs: Sequences) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Features (P, F), relevance (P,), group sizes (samples with a candidate) and the
        (P, 2) (sample, item) pairs, sample-major."""
        lists = [g.predict(seqs) for g in self.generators]  # each (N, LIST_K)
        cand = np.sort(np.concatenate(lists, axis=1), axis=1)
        dup = np.zeros_like(cand, dtype=bool)
        dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
        ok = (cand >= 2) & ~dup
        rows, cols = np.nonzero(ok)
        items = cand[rows, cols]
        feats = []
        for ids in lists:
            hit = ids[rows] == items[:, None]  # (P, LIST_K)
            feats.append(np.where(hit.any(1), 1.0 / (hit.argmax(1) + 1), 0.0))
        pop = self.popularity
        feats.append(np.log1p(np.where(items < len(pop), pop[np.minimum(items, len(pop) - 1)], 0.0)))
        own = np.zeros(len(items))
        hist_items, hist_rows = item_ids(seqs), event_rows(seqs)
        keyed = hist_rows.astype(np.int64) * (1 << 32) + hist_items
        uniq, count = np.unique(keyed, return_counts=True)
        key = rows.astype(np.int64) * (1 << 32) + items
        at = np.searchsorted(uniq, key)
        found = (at < len(uniq)) & (uniq[np.minimum(at, len(uniq) - 1)] == key)
        own[found] = count[at[found]]
        feats.append(own)
        n_numeric = seqs.aggregates.shape[1] - len(CATEGORICAL_AGGREGATES)
        x = np.column_stack([*feats, seqs.aggregates[rows, :n_numeric]]).astype(np.float32)
        rel = np.zeros(len(items), dtype=np.int64)
        if seqs.labels is not None:
            y = np.asarray(seqs.labels[self.task.name]).reshape(len(seqs), -1)
            rel = (y[rows] == items[:, None]).any(1).astype(np.int64)
        groups = np.bincount(rows, minlength=len(seqs))
        return x, rel, groups[groups > 0], np.column_stack([rows, items])

    def predict(self, seqs: Sequences) -> np.ndarray:
        assert self.booster is not None, "fit first"
        x, _, _, pairs = self._pairs(seqs)
        with NATIVE_LOCK:
            score = self.booster.predict(x, num_iteration=self.rounds) if len(x) else np.zeros(0)
        fallback = self.generators[0].predict(seqs)  # global popularity fills short lists
        out = np.zeros((len(seqs), LIST_K), dtype=np.int64)
        order = np.lexsort((-score, pairs[:, 0])) if len(x) else np.zeros(0, dtype=np.int64)
        rows, items = pairs[order, 0], pairs[order, 1]
        starts = np.searchsorted(rows, np.arange(len(seqs)))
        ends = np.searchsorted(rows, np.arange(len(seqs)), side="right")
        for i in range(len(seqs)):
            mine = items[starts[i] : ends[i]][:LIST_K]
            rest = fallback[i][~np.isin(fallback[i], mine)]
            out[i] = np.concatenate([mine, rest])[:LIST_K]
        return out
