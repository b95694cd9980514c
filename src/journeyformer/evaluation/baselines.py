"""Honest baselines, fitted on the training split only, scored like the model.

churn:       days since last activity; logistic regression on recency/frequency/monetary
next_action: the customer's most frequent past action; first-order Markov chain over actions
stage:       the current stage carries over
value:       past spend rate x horizon
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeyformer.data.sequences import Sequences

BASELINES = {
    "churn": ("days_since_last_activity", "rfm_logistic_regression"),
    "next_action": ("most_frequent_action", "markov_chain"),
    "stage": ("current_stage",),
    "value": ("spend_rate",),
}


def rfm_features(seqs: Sequences) -> np.ndarray:
    """(N, 4) log1p of recency (days), frequency (events), monetary (spend), tenure (days)."""
    s = seqs.summary
    cols = [s["recency_days"], s["n_events"], s["spend"], s["tenure_days"]]
    return np.log1p(np.stack([c.cast(float).to_numpy() for c in cols], axis=1).clip(0))


def last_actions(seqs: Sequences) -> np.ndarray:
    return seqs.categorical[seqs.offsets[1:] - 1, 0].astype(np.int64)


def action_counts(seqs: Sequences, n_actions: int) -> np.ndarray:
    """(N, A) how often each action occurs among the kept events, plus a tiny recency bonus so
    ties go to the most recent action."""
    rows = np.repeat(np.arange(len(seqs)), seqs.lengths)
    counts = np.zeros((len(seqs), n_actions))
    np.add.at(counts, (rows, seqs.categorical[:, 0]), 1.0)
    counts[np.arange(len(seqs)), last_actions(seqs)] += 0.5
    counts[:, :2] = -1.0  # never predict padding/unknown
    return counts


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 50) -> np.ndarray:
    """Newton-Raphson logistic regression with an intercept; returns weights (F + 1,)."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = np.hstack([np.ones((len(x), 1)), (x - mu) / sd])
    w = np.zeros(z.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-z @ w))
        grad = z.T @ (p - y) + l2 * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    # Fold the standardisation into the weights so predict needs only x.
    return np.concatenate([[w[0] - np.sum(w[1:] * mu / sd)], w[1:] / sd])


@dataclass
class Baselines:
    """Baselines fitted on training samples; :meth:`predict` returns scores per baseline."""

    horizon_days: float
    n_actions: int
    churn_weights: np.ndarray
    transitions: np.ndarray  # (A, A) row-normalised P(next action | last action)

    @classmethod
    def fit(cls, train: Sequences, horizon_days: float, n_actions: int) -> Baselines:
        assert train.labels is not None, "baselines are fitted on labelled training samples"
        weights = _fit_logistic(rfm_features(train), train.labels["churn"].astype(np.float64))
        counts = np.ones((n_actions, n_actions))  # add-one smoothing
        # Consecutive pairs inside the training sequences, and last event -> label.
        same = np.repeat(np.arange(len(train)), train.lengths)
        a = train.categorical[:, 0].astype(np.int64)
        pair = same[1:] == same[:-1]
        np.add.at(counts, (a[:-1][pair], a[1:][pair]), 1.0)
        y = train.labels["next_action"]
        has = y >= 0
        np.add.at(counts, (last_actions(train)[has], y[has]), 1.0)
        counts[:, :2] = 0.0
        transitions = counts / counts.sum(1, keepdims=True)
        return cls(horizon_days, n_actions, weights, transitions)

    def predict(self, seqs: Sequences) -> dict[str, dict[str, np.ndarray]]:
        """task -> baseline name -> predictions in the shape :func:`score_task` expects."""
        x = rfm_features(seqs)
        s = seqs.summary
        spend = s["spend"].cast(float).to_numpy()
        tenure = s["tenure_days"].cast(float).to_numpy()
        return {
            "churn": {
                "days_since_last_activity": s["recency_days"].cast(float).to_numpy(),
                "rfm_logistic_regression": 1 / (1 + np.exp(-(self.churn_weights[0] + x @ self.churn_weights[1:]))),
            },
            "next_action": {
                "most_frequent_action": action_counts(seqs, self.n_actions),
                "markov_chain": self.transitions[last_actions(seqs)],
            },
            "stage": {"current_stage": seqs.stage_now.copy()},
            "value": {"spend_rate": spend / np.maximum(tenure, 1.0) * self.horizon_days},
        }
