"""The practitioner's strongest next-item baseline: LightGBM lambdarank over the candidates of
the generators (:mod:`journeyformer.tasks.item_baselines`), with the aggregate features.

Per sample, the candidates are the union of every generator's list; each (sample,
candidate) pair has the reciprocal rank of the candidate in each generator's list (0 when
absent), the item's log training popularity, how often the sample's kept events had it, and
the sample's aggregate numbers (:mod:`journeyformer.data.features.aggregates`). Relevance is 1 when
the candidate is a target. Rounds stop early on the validation samples (another set of
customers than the fitted generators'). Items no generator proposes are never ranked.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from journeyformer.data.features.aggregates import CATEGORICAL_AGGREGATES
from journeyformer.data.features.sequences import Sequences
from journeyformer.tasks.base import BaselineContext, Task
from journeyformer.tasks.boosting import DEFAULT_PARAMS, NATIVE_LOCK, Boosted, available, objective
from journeyformer.tasks.item_baselines import (
    LIST_K,
    GlobalPopularity,
    ItemBaseline,
    event_rows,
    generators,
    item_ids,
)

log = logging.getLogger(__name__)


class ItemRanker(Boosted):
    """See the module docstring; left out (``fit`` returns None) without lightgbm or without
    validation samples, as every :class:`Boosted` baseline."""

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
