"""Temperature scaling of the churn probability, fitted on validation data.

p = sigmoid(logit / T). One parameter, so it cannot overfit a validation set of a few
thousand customers, and it keeps the ranking (AUROC) unchanged while fixing over- or
under-confidence (Guo et al., 2017).
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-7


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    s = z / t
    # log(1 + exp(-s)) for y=1, log(1 + exp(s)) for y=0, computed stably.
    return float(np.mean(np.logaddexp(0.0, np.where(y > 0.5, -s, s))))


def fit_temperature(logits: np.ndarray, y: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T > 0 that minimises the binary NLL of sigmoid(logits / T) on (logits, y).

    Golden-section search on log T (the NLL is unimodal in it); returns 1.0 for a single-class y.
    """
    z, y = np.asarray(logits, np.float64), np.asarray(y, np.float64)
    if y.min() == y.max():
        return 1.0
    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(80):
        if _nll(z, y, np.exp(c)) < _nll(z, y, np.exp(d)):
            b = d
        else:
            a = c
        c, d = b - g * (b - a), a + g * (b - a)
    return float(np.exp((a + b) / 2))


def apply_temperature(p: np.ndarray, t: float) -> np.ndarray:
    """Probabilities computed at temperature 1 -> probabilities at temperature ``t``."""
    return 1.0 / (1.0 + np.exp(-logit(p) / t))
