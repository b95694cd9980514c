"""Embedding clusters: k-means on training customers' embeddings, nearest centroid at predict.

The export fits :func:`kmeans` on the embeddings (the model's ``embedding`` output, the
customer representation every head reads) of up to ``max_customers`` training customers at the
last training cutoff, and stores the centroids in the bundle as ``clusters.json``; predict gives
each customer the id of its nearest centroid (``cluster`` column, 0..k-1, ordered by size on the
training customers: 0 the largest). Clusters group customers the model sees alike, whatever the
segment rules say; they have no names, the evaluation report describes each.

NumPy only (a hand-written k-means++: a dependency such as scikit-learn is not worth ~40 lines).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CLUSTERS = "clusters.json"


def _sq_dist(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(N, K) squared Euclidean distances, float64."""
    x = x.astype(np.float64, copy=False)
    c = centroids.astype(np.float64, copy=False)
    d = (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :]
    return np.maximum(d, 0.0)


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(N,) int32 index of the nearest of (K, D) ``centroids`` for each row of (N, D) ``x``."""
    if len(x) == 0:
        return np.empty(0, np.int32)
    return _sq_dist(x, centroids).argmin(1).astype(np.int32)


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 100, restarts: int = 4) -> np.ndarray:
    """(k, D) centroids of (N, D) ``x``: k-means++ seeding then Lloyd iterations, the best of
    ``restarts`` runs by inertia; centroids sorted by cluster size, largest first.

    Deterministic for a given ``seed``. ``k`` is lowered to the number of distinct rows.
    """
    x = np.asarray(x, dtype=np.float64)
    k = int(min(k, len(np.unique(x, axis=0))))
    if k < 1:
        raise ValueError("k-means needs at least one row")
    rng = np.random.default_rng(seed)
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        c = _plus_plus(x, k, rng)
        for _ in range(iters):
            assign = _sq_dist(x, c).argmin(1)
            new = np.stack([x[assign == j].mean(0) if (assign == j).any() else c[j] for j in range(k)])
            if np.allclose(new, c):
                break
            c = new
        inertia = float(_sq_dist(x, c).min(1).sum())
        if inertia < best_inertia:
            best, best_inertia = c, inertia
    assert best is not None
    sizes = np.bincount(_sq_dist(x, best).argmin(1), minlength=k)
    return best[np.argsort(-sizes, kind="stable")]


def _plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each next centroid drawn with probability ~ squared distance."""
    c = [x[rng.integers(len(x))]]
    d = _sq_dist(x, np.asarray(c))[:, 0]
    for _ in range(1, k):
        total = d.sum()
        i = int(rng.choice(len(x), p=d / total)) if total > 0 else int(rng.integers(len(x)))
        c.append(x[i])
        d = np.minimum(d, _sq_dist(x, x[i : i + 1])[:, 0])
    return np.asarray(c)


@dataclass(frozen=True)
class Clusters:
    """The centroids of ``clusters.json`` and who they were fitted on."""

    centroids: np.ndarray  # (K, D) float64
    population: str
    sizes: tuple[int, ...]

    def assign(self, embedding: np.ndarray) -> np.ndarray:
        return nearest(embedding, self.centroids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": int(len(self.centroids)),
            "population": self.population,
            "sizes": list(self.sizes),
            "centroids": self.centroids.tolist(),
        }

    @classmethod
    def fit(cls, embedding: np.ndarray, k: int, population: str, seed: int = 0) -> Clusters:
        centroids = kmeans(embedding, k, seed)
        sizes = np.bincount(nearest(embedding, centroids), minlength=len(centroids))
        return cls(centroids, population, tuple(int(s) for s in sizes))

    @classmethod
    def load(cls, path: str | Path) -> Clusters:
        d = json.loads(Path(path).read_text())
        return cls(np.asarray(d["centroids"], dtype=np.float64), str(d["population"]), tuple(d["sizes"]))


def clusters_of(bundle: Any) -> Clusters | None:
    """The bundle's :class:`Clusters`, or None when it was exported without data."""
    name = bundle.spec.get("clusters")
    return Clusters.load(Path(bundle.path) / name) if name else None
