"""A multiclass decision rule fitted for the headline metric on validation data.

A head trained with cross-entropy ranks classes by probability, and its argmax maximises
accuracy, not macro-F1: rare classes are under-predicted. Where classes persist (a customer's
lifecycle stage in 91 days is most often the stage now), "the class now" is also a strong prior
that a small validation set can weigh better than the head alone. The rule is

    decision = argmax_k( logit_k + offset_k + carry * [k == class_now] )

with ``offset`` (K,) and ``carry`` (a scalar) chosen by coordinate ascent on the metric. It is
kept only when it pays off on data it was not fitted on: the validation samples are split in
two halves, the rule fitted on each half is scored on the other, and the rule (refitted on
all) is used only if that held-out gain is positive; otherwise offsets and carry stay 0 (the
plain argmax). The same two half-fits give ``heldout_logits``: each sample's logits under the
rule fitted on the other half, what a choice made afterwards on the same validation samples
(the per-head blend) must compare, since the rule refitted on all of them has seen their labels.
NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Score = Callable[[np.ndarray, np.ndarray], float]  # (predicted class ids, labels) -> metric

CARRY_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
OFFSET_GRID = np.round(np.arange(-3.0, 3.01, 0.25), 2)


@dataclass(frozen=True)
class DecisionRule:
    """``offset`` (K,) and ``carry``; ``heldout_gain``: metric gained on the half it was not
    fitted on (mean of both halves), ``val_before`` / ``val_after``: on all validation;
    ``heldout_logits`` (N, K): each validation sample's logits under the rule fitted on the
    other half (the plain logits where the rule is not kept)."""

    offset: np.ndarray
    carry: float
    heldout_gain: float
    val_before: float
    val_after: float
    heldout_logits: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)

    def decide(self, logits: np.ndarray, now: np.ndarray) -> np.ndarray:
        return apply_rule(logits, now, self.offset, self.carry).argmax(axis=1)

    def report(self) -> dict[str, float | list[float]]:
        return {
            "offset": [float(v) for v in self.offset],
            "carry": float(self.carry),
            "heldout_gain": self.heldout_gain,
            "val_before": self.val_before,
            "val_after": self.val_after,
        }


def apply_rule(logits: np.ndarray, now: np.ndarray, offset: np.ndarray, carry: float) -> np.ndarray:
    """(N, K) logits adjusted by the rule (the same arithmetic the network does in its graph)."""
    adjusted = logits + offset[None, :]
    adjusted[np.arange(len(now)), now] += carry
    return adjusted


def _fit(logits: np.ndarray, now: np.ndarray, y: np.ndarray, score: Score, passes: int = 3):
    k = logits.shape[1]
    best = (score(logits.argmax(1), y), np.zeros(k), 0.0)
    for carry in CARRY_GRID:
        offset = np.zeros(k)
        current = score(apply_rule(logits, now, offset, carry).argmax(1), y)
        for _ in range(passes):
            improved = False
            for j in range(k):
                for value in OFFSET_GRID:
                    trial = offset.copy()
                    trial[j] = value
                    s = score(apply_rule(logits, now, trial, carry).argmax(1), y)
                    if s > current + 1e-12:
                        current, offset, improved = s, trial, True
            if not improved:
                break
        if current > best[0] + 1e-12:
            best = (current, offset, carry)
    return best[1], best[2]


def fit_decision_rule(
    logits: np.ndarray, now: np.ndarray, y: np.ndarray, score: Score, seed: int = 0
) -> DecisionRule:
    """The rule for (N, K) ``logits`` (log-probabilities are fine), ``now`` (N,) the class now
    and ``y`` (N,) the labels; see the module docstring."""
    logits = np.asarray(logits, dtype=np.float64)
    now, y = np.asarray(now, dtype=np.int64), np.asarray(y, dtype=np.int64)
    plain = score(logits.argmax(1), y)
    order = np.random.default_rng(seed).permutation(len(y))
    halves = (order[: len(y) // 2], order[len(y) // 2 :])
    gains = []
    heldout = logits.copy()
    for fit_on, score_on in (halves, halves[::-1]):
        offset, carry = _fit(logits[fit_on], now[fit_on], y[fit_on], score)
        heldout[score_on] = apply_rule(logits[score_on], now[score_on], offset, carry)
        held = heldout[score_on], logits[score_on], y[score_on]
        gains.append(score(held[0].argmax(1), held[2]) - score(held[1].argmax(1), held[2]))
    gain = float(np.mean(gains))
    if gain <= 0:
        return DecisionRule(np.zeros(logits.shape[1]), 0.0, gain, plain, plain, logits)
    offset, carry = _fit(logits, now, y, score)
    after = score(apply_rule(logits, now, offset, carry).argmax(1), y)
    return DecisionRule(offset, float(carry), gain, plain, after, heldout)
