"""Honest baselines, fitted on labelled training samples only, scored like the model.

churn:       days since last activity; logistic regression on recency/frequency/monetary
next_action: the customer's most frequent past action; first-order Markov chain over actions
stage:       the current stage carries over
value:       past spend rate x horizon

Each task lists its baselines (:meth:`journeyformer.tasks.base.Task.baselines`); adding one is
a :class:`~journeyformer.tasks.base.Baseline` subclass here and one entry in that list.
"""

from __future__ import annotations

import numpy as np

from journeyformer.data.features.sequences import Sequences
from journeyformer.data.features.vocab import PAD_ID, UNK_ID
from journeyformer.tasks.base import Baseline, BaselineContext


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
    counts[:, [PAD_ID, UNK_ID]] = -1.0  # never predict padding/unknown
    return counts


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 50) -> np.ndarray:
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


def _labels(train: Sequences) -> dict[str, np.ndarray]:
    assert train.labels is not None, "baselines are fitted on labelled training samples"
    return train.labels


class DaysSinceLastActivity(Baseline):
    """Churn score: days since the last activity (the longer, the likelier)."""

    name = "days_since_last_activity"

    def predict(self, seqs: Sequences) -> np.ndarray:
        return seqs.summary["recency_days"].cast(float).to_numpy()


class RfmLogisticRegression(Baseline):
    """Churn probability: logistic regression on log recency, frequency, monetary, tenure."""

    name = "rfm_logistic_regression"

    def __init__(self, label: str = "churn") -> None:
        self.label = label
        self.weights = np.zeros(5)

    def fit(self, train: Sequences, ctx: BaselineContext) -> RfmLogisticRegression:
        y = _labels(train)[self.label].astype(np.float64)
        self.weights = fit_logistic(rfm_features(train), y)
        return self

    def predict(self, seqs: Sequences) -> np.ndarray:
        w = self.weights
        return 1 / (1 + np.exp(-(w[0] + rfm_features(seqs) @ w[1:])))


class MostFrequentAction(Baseline):
    name = "most_frequent_action"

    def fit(self, train: Sequences, ctx: BaselineContext) -> MostFrequentAction:
        self.n_actions = ctx.n_actions
        return self

    def predict(self, seqs: Sequences) -> np.ndarray:
        return action_counts(seqs, self.n_actions)


class MarkovChain(Baseline):
    """P(next action | last action), from consecutive pairs in the training sequences and
    from each training sample's last event to its label (add-one smoothing)."""

    name = "markov_chain"

    def fit(self, train: Sequences, ctx: BaselineContext) -> MarkovChain:
        y = _labels(train)["next_action"]
        n = ctx.n_actions
        counts = np.ones((n, n))
        same = np.repeat(np.arange(len(train)), train.lengths)
        a = train.categorical[:, 0].astype(np.int64)
        pair = same[1:] == same[:-1]
        np.add.at(counts, (a[:-1][pair], a[1:][pair]), 1.0)
        has = y >= 0
        np.add.at(counts, (last_actions(train)[has], y[has]), 1.0)
        counts[:, [PAD_ID, UNK_ID]] = 0.0
        self.transitions = counts / counts.sum(1, keepdims=True)  # (A, A) row-normalised
        return self

    def predict(self, seqs: Sequences) -> np.ndarray:
        return self.transitions[last_actions(seqs)]


class CurrentStage(Baseline):
    name = "current_stage"

    def predict(self, seqs: Sequences) -> np.ndarray:
        return seqs.stage_now.copy()


class SpendRate(Baseline):
    """Expected spend: past spend per day of tenure x horizon."""

    name = "spend_rate"

    def fit(self, train: Sequences, ctx: BaselineContext) -> SpendRate:
        self.horizon_days = ctx.horizon_days
        return self

    def predict(self, seqs: Sequences) -> np.ndarray:
        s = seqs.summary
        spend = s["spend"].cast(float).to_numpy()
        tenure = s["tenure_days"].cast(float).to_numpy()
        return spend / np.maximum(tenure, 1.0) * self.horizon_days
