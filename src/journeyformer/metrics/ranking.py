"""Full-ranking metrics of next items, from ranked item ids: one definition for the model and
every baseline alike.

``ranked`` is (N, k) int item ids, best first (k at least the largest cut-off asked for; ids
below 2, the vocabulary's padding and ``<unk>``, never count as hits). ``y`` is (N, K) int
target ids padded with negative values (IGNORE_INDEX): column 0 is the next item, columns
0..K-1 the basket. Rows whose first target is negative have no target and are left out.

NumPy only: this module imports nothing from the package.
"""

from __future__ import annotations

import numpy as np


def _targets(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    return y.reshape(len(y), -1).astype(np.int64)


def labelled(y: np.ndarray) -> np.ndarray:
    """(N,) bool: rows with at least one target."""
    return _targets(y)[:, 0] >= 0


def first_rank(ranked: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(M,) 1-based rank of the first target (the next item) in each labelled row's list;
    0 where it is not in the list."""
    y = _targets(y)
    keep = y[:, 0] >= 0
    ranked = np.asarray(ranked)[keep].astype(np.int64)
    hit = ranked == y[keep, :1]
    return np.where(hit.any(1), hit.argmax(1) + 1, 0)


def hit_rate_at_k(ranked: np.ndarray, y: np.ndarray, k: int) -> float:
    """Share of labelled rows whose next item is in the top ``k``; NaN without a label."""
    r = first_rank(ranked, y)
    return float(np.mean((r > 0) & (r <= k))) if len(r) else float("nan")


def ndcg_at_k(ranked: np.ndarray, y: np.ndarray, k: int) -> float:
    """Mean 1 / log2(rank + 1) of the next item within the top ``k`` (0 below): one relevant
    item, so the ideal DCG is 1."""
    r = first_rank(ranked, y)
    if not len(r):
        return float("nan")
    gain = np.where((r > 0) & (r <= k), 1.0 / np.log2(np.maximum(r, 1) + 1.0), 0.0)
    return float(gain.mean())


def mrr(ranked: np.ndarray, y: np.ndarray) -> float:
    """Mean reciprocal rank of the next item within the listed items (0 when not listed)."""
    r = first_rank(ranked, y)
    return float(np.mean(np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0))) if len(r) else float("nan")


def basket_recall_at_k(ranked: np.ndarray, y: np.ndarray, k: int) -> float:
    """Mean over labelled rows of |top k ∩ basket| / min(|basket|, k): the share of the
    horizon's distinct items found in the first ``k``, capped so a perfect list scores 1."""
    y = _targets(y)
    keep = y[:, 0] >= 0
    if not keep.any():
        return float("nan")
    y, top = y[keep], np.asarray(ranked)[keep, :k].astype(np.int64)
    valid = top >= 2
    hits = ((top[:, :, None] == y[:, None, :]) & valid[:, :, None] & (y[:, None, :] >= 0)).any(2).sum(1)
    size = np.array([len(set(row[row >= 0].tolist())) for row in y])
    return float(np.mean(hits / np.minimum(size, k)))


def coverage_at_k(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Distinct items in the top ``k`` of every row over the catalogue size (``n_items``
    recommendable items)."""
    top = np.asarray(ranked)[:, :k]
    return float(len(np.unique(top[top >= 2])) / max(n_items, 1))


def popularity_bias_at_k(ranked: np.ndarray, popularity: np.ndarray, k: int) -> float:
    """Mean popularity percentile (0 = least, 1 = most popular training item) of the items
    in the top ``k``; ``popularity`` is (V,) training counts by item id."""
    pop = np.asarray(popularity, dtype=np.float64)
    order = np.argsort(np.argsort(pop, kind="stable"), kind="stable")
    pct = order / max(len(pop) - 1, 1)
    top = np.asarray(ranked)[:, :k].astype(np.int64)
    top = top[(top >= 2) & (top < len(pop))]  # padding and <unk> are no recommendation
    return float(pct[top].mean()) if len(top) else float("nan")


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """(N, V) scores -> (N, k) ids, best first (ties by lower id); ids 0, 1 (padding,
    ``<unk>``) and ``exclude`` (N, V) bool never listed: where fewer than k items are left (a
    small catalogue, most of it seen), the tail of the row is 0 (padding), never a hit."""
    s = np.asarray(scores, dtype=np.float64).copy()
    s[:, :2] = -np.inf
    if exclude is not None:
        s[exclude] = -np.inf
    k = max(1, min(k, s.shape[1]))
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -picked), axis=1)
    ids = np.take_along_axis(part, order, axis=1)
    return np.where(np.take_along_axis(picked, order, axis=1) == -np.inf, 0, ids)
