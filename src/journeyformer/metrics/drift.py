"""Distribution drift in NumPy: reference profiles, population stability index, KS statistic.

A *profile* summarises one column of a population so that another population can be compared
with it later without the raw values:

* a continuous column keeps its 101 percentiles (``quantiles[k]`` = the k-th percentile,
  0 and 100 being min and max) and the share of missing values (NaN);
* a categorical column keeps the share of each category (missing values count as ``"<null>"``).

Comparison (:func:`compare`):

* **PSI** (population stability index), ``sum_b (a_b - r_b) * ln(a_b / r_b)`` over bins ``b``
  with reference shares ``r_b`` and actual shares ``a_b``, each floored at :data:`EPS` so that an
  empty bin stays finite. Continuous bins are the reference deciles (fewer where the deciles
  tie, as for counts that are mostly 0) plus one bin for missing values; categorical bins are the
  categories (unseen ones pooled into ``"<other>"``). Conventional reading: below 0.1 stable,
  0.1-0.25 a moderate shift worth a look, above 0.25 a significant shift (Siddiqi, 2006).
* **KS** (continuous columns only): the largest gap between the reference and the actual
  cumulative distribution functions, evaluated at the 99 inner reference percentiles (exact to
  the percentile grid: the reference CDF is k/100 there by construction). Non-missing values.

Counts add up, so a large population can be profiled chunk by chunk (:class:`Counts`).

NumPy only: this module imports nothing from the package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CONTINUOUS = "continuous"
CATEGORICAL = "categorical"
NULL = "<null>"
OTHER = "<other>"
EPS = 1e-4  # floor of a bin share in the PSI (an empty bin adds a finite amount)
PERCENTILES = np.linspace(0.0, 100.0, 101)


@dataclass(frozen=True)
class Profile:
    """One column of the reference population.

    Attributes:
        kind: CONTINUOUS or CATEGORICAL.
        n: rows profiled.
        quantiles: (101,) percentiles 0..100 of the non-missing values (continuous; empty when
            every value is missing).
        missing: share of missing values (continuous).
        shares: category -> share (categorical; sums to 1).
    """

    kind: str
    n: int
    quantiles: tuple[float, ...] = ()
    missing: float = 0.0
    shares: Mapping[str, float] = field(default_factory=dict)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1) of a continuous column, linear between percentiles."""
        if self.kind != CONTINUOUS or not self.quantiles:
            raise ValueError(f"no quantiles in a {self.kind} profile of {self.n} rows")
        return float(np.interp(100.0 * q, PERCENTILES, np.asarray(self.quantiles)))

    def edges(self) -> np.ndarray:
        """Inner bin edges of the PSI: the distinct reference deciles 10..90."""
        if not self.quantiles:
            return np.empty(0)
        return np.unique(np.asarray(self.quantiles)[10:100:10])

    def to_dict(self) -> dict[str, Any]:
        if self.kind == CONTINUOUS:
            return {"kind": self.kind, "n": self.n, "missing": self.missing, "quantiles": list(self.quantiles)}
        return {"kind": self.kind, "n": self.n, "shares": dict(self.shares)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Profile:
        return cls(
            kind=str(d["kind"]),
            n=int(d["n"]),
            quantiles=tuple(float(x) for x in d.get("quantiles", ())),
            missing=float(d.get("missing", 0.0)),
            shares={str(k): float(v) for k, v in (d.get("shares") or {}).items()},
        )


def profile(values: np.ndarray | Sequence[Any], kind: str) -> Profile:
    """The :class:`Profile` of ``values`` (N,): numbers for CONTINUOUS, labels for CATEGORICAL."""
    if kind == CONTINUOUS:
        x = np.asarray(values, dtype=np.float64)
        real = x[~np.isnan(x)]
        q = tuple(float(v) for v in np.percentile(real, PERCENTILES)) if real.size else ()
        return Profile(CONTINUOUS, int(x.size), q, float(1.0 - real.size / x.size) if x.size else 0.0)
    if kind == CATEGORICAL:
        labels = _labels(values)
        cats, counts = np.unique(labels, return_counts=True)
        n = int(counts.sum())
        return Profile(CATEGORICAL, n, shares={str(c): k / n for c, k in zip(cats, counts, strict=True)})
    raise ValueError(f"kind must be {CONTINUOUS!r} or {CATEGORICAL!r}, got {kind!r}")


def _labels(values: np.ndarray | Sequence[Any]) -> np.ndarray:
    return np.asarray([NULL if v is None else str(v) for v in values], dtype=object)


@dataclass
class Counts:
    """Another population binned on a reference profile's bins; add chunks with :meth:`add`.

    ``bins``: counts per PSI bin (continuous: below edge 0, ..., above the last edge, missing;
    categorical: the reference categories in order, then OTHER). ``grid``: counts of
    non-missing values at or below each inner reference percentile 1..99 (continuous), for KS.
    """

    ref: Profile
    bins: np.ndarray = field(init=False)
    grid: np.ndarray = field(init=False)
    n: int = 0

    def __post_init__(self) -> None:
        if self.ref.kind == CONTINUOUS:
            self.bins = np.zeros(len(self.ref.edges()) + 2, np.int64)
            self.grid = np.zeros(99 if self.ref.quantiles else 0, np.int64)
        else:
            self.bins = np.zeros(len(self.ref.shares) + 1, np.int64)
            self.grid = np.zeros(0, np.int64)

    def add(self, values: np.ndarray | Sequence[Any]) -> Counts:
        if self.ref.kind == CONTINUOUS:
            x = np.asarray(values, dtype=np.float64)
            real = x[~np.isnan(x)]
            # Bin b holds edges[b-1] < x <= edges[b] (right-closed, like the percentiles' ties).
            idx = np.searchsorted(self.ref.edges(), real, side="left")
            self.bins[: len(self.bins) - 1] += np.bincount(idx, minlength=len(self.bins) - 1)
            self.bins[-1] += x.size - real.size
            if self.grid.size:
                inner = np.asarray(self.ref.quantiles)[1:100]
                self.grid += np.searchsorted(np.sort(real), inner, side="right")
            self.n += int(x.size)
        else:
            cats = list(self.ref.shares)
            index = {c: i for i, c in enumerate(cats)}
            labels = _labels(values)
            uniq, counts = np.unique(labels, return_counts=True)
            for c, k in zip(uniq, counts, strict=True):
                self.bins[index.get(str(c), len(cats))] += int(k)
            self.n += int(labels.size)
        return self

    def ref_shares(self) -> np.ndarray:
        """Reference share of each bin of :attr:`bins`."""
        if self.ref.kind == CATEGORICAL:
            return np.asarray([*self.ref.shares.values(), 0.0])
        q = np.asarray(self.ref.quantiles)
        if not q.size:
            return np.asarray([0.0, 1.0])  # (any value, missing): every reference value was missing
        inner = np.diff(np.concatenate([[0.0], ref_cdf(q, self.ref.edges()), [1.0]]))
        return np.concatenate([inner * (1.0 - self.ref.missing), [self.ref.missing]])

    def shares(self) -> np.ndarray:
        return self.bins / max(self.n, 1)


def ref_cdf(quantiles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Share of the reference's non-missing values at or below each of ``points``, read off
    its percentiles: the highest percentile whose value is at or below the point (where
    percentiles tie, as for counts that are mostly 0, that is the top of the tie)."""
    below = quantiles[None, :] <= np.asarray(points, np.float64)[:, None]  # (P, 101)
    top = np.where(below, PERCENTILES[None, :], 0.0).max(axis=1)
    return top / 100.0


def psi(ref: np.ndarray, actual: np.ndarray, eps: float = EPS) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.maximum(np.asarray(ref, np.float64), eps)
    a = np.maximum(np.asarray(actual, np.float64), eps)
    return float(np.sum((a - r) * np.log(a / r)))


@dataclass(frozen=True)
class Shift:
    """One column compared with its reference: PSI always, KS for continuous columns."""

    psi: float
    ks: float | None
    n: int
    ref_shares: tuple[float, ...]
    shares: tuple[float, ...]
    bins: tuple[str, ...]


def compare(counts: Counts) -> Shift:
    """PSI (and KS) of the population in ``counts`` against its reference."""
    ref, actual = counts.ref_shares(), counts.shares()
    ks = None
    if counts.ref.kind == CONTINUOUS and counts.grid.size:
        present = counts.n - counts.bins[-1]
        if present > 0:
            q = np.asarray(counts.ref.quantiles)
            cdf_ref = ref_cdf(q, q[1:100])
            ks = float(np.max(np.abs(counts.grid / present - cdf_ref)))
    return Shift(
        psi=psi(ref, actual) if counts.n else float("nan"),
        ks=ks,
        n=counts.n,
        ref_shares=tuple(float(x) for x in ref),
        shares=tuple(float(x) for x in actual),
        bins=bin_labels(counts.ref),
    )


def bin_labels(ref: Profile) -> tuple[str, ...]:
    """Readable names of the PSI bins of ``ref`` (as in :class:`Counts`)."""
    if ref.kind == CATEGORICAL:
        return (*ref.shares, OTHER)
    e = ref.edges()
    if not e.size:
        return ("all", "missing") if ref.quantiles else ("-", "missing")
    names = [f"<= {e[0]:.3g}"]
    names += [f"({lo:.3g}, {hi:.3g}]" for lo, hi in zip(e[:-1], e[1:], strict=True)]
    return (*names, f"> {e[-1]:.3g}", "missing")
