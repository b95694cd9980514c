"""k-means of embeddings (inference/clusters.py)."""

from __future__ import annotations

import numpy as np

from journeyformer.inference.clusters import Clusters, kmeans, nearest


def test_kmeans_recovers_separated_blobs_largest_first():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    sizes = [300, 100, 200]
    x = np.concatenate([c + rng.normal(size=(n, 3)) for c, n in zip(centers, sizes, strict=True)])
    c = kmeans(x, 3, seed=1)
    # centroids near the true centers, ordered by cluster size
    assert np.allclose(c, centers[[0, 2, 1]], atol=0.3)
    assert np.bincount(nearest(x, c)).tolist() == [300, 200, 100]
    assert np.array_equal(kmeans(x, 3, seed=1), c)  # deterministic


def test_clusters_round_trip_and_k_above_distinct_rows(tmp_path):
    x = np.repeat(np.eye(2), 5, axis=0)
    fitted = Clusters.fit(x, 4, "10 points")
    assert len(fitted.centroids) == 2  # only two distinct rows
    (tmp_path / "c.json").write_text(__import__("json").dumps(fitted.to_dict()))
    back = Clusters.load(tmp_path / "c.json")
    assert np.array_equal(back.assign(x), fitted.assign(x)) and back.sizes == (5, 5)
