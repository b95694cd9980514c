"""A population against the bundle's reference: PSI and KS per column, flagged by thresholds.

:class:`DriftReport` is what ``journeyformer monitor`` computes and writes as ``monitor.json``.
Each column of ``reference.json`` (:mod:`journeyformer.inference.reference`) gets a PSI (and a
KS statistic when continuous) and a status from :class:`Thresholds`:

=========  ==========================  =============================================
status     rule                        reading
=========  ==========================  =============================================
ok         PSI < ``psi_warn`` (0.1)     no meaningful shift
warn       PSI < ``psi_drift`` (0.25)   a moderate shift: look at the column
drift      PSI >= ``psi_drift``         a significant shift: the model's inputs or
                                       scores no longer look like its validation data
=========  ==========================  =============================================

The population's status is the worst of its columns' (``drift`` fails the command with
``fail_on_drift=true``). KS is reported with its 1% critical value for the two sample sizes
(``ks_critical``), as a second opinion; it does not set the status (with large populations it
calls tiny, harmless shifts significant).

Needs only NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from journeyformer.errors import ConfigError
from journeyformer.metrics.drift import Counts, Shift, compare

STATUSES = ("ok", "warn", "drift")


@dataclass(frozen=True)
class Thresholds:
    psi_warn: float = 0.1
    psi_drift: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.psi_warn <= self.psi_drift:
            raise ConfigError(
                f"thresholds: need 0 < psi_warn <= psi_drift, got {self.psi_warn}, {self.psi_drift}"
            )

    def status(self, psi: float) -> str:
        if math.isnan(psi):
            return "ok"  # nothing to compare (an empty population is reported by its n)
        return "drift" if psi >= self.psi_drift else "warn" if psi >= self.psi_warn else "ok"


@dataclass
class ColumnDrift:
    name: str
    kind: str
    shift: Shift
    status: str
    ks_critical: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "psi": self.shift.psi,
            "ks": self.shift.ks,
            "ks_critical": self.ks_critical,
            "n": self.shift.n,
            "bins": list(self.shift.bins),
            "reference_shares": list(self.shift.ref_shares),
            "shares": list(self.shift.shares),
        }


@dataclass
class DriftReport:
    """Every column's drift, worst first, and the population's status."""

    columns: list[ColumnDrift]
    thresholds: Thresholds
    n_customers: int
    reference_customers: int
    about: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        worst = max((STATUSES.index(c.status) for c in self.columns), default=0)
        return STATUSES[worst]

    def flagged(self, status: str = "warn") -> list[ColumnDrift]:
        """Columns at ``status`` or worse, worst PSI first."""
        level = STATUSES.index(status)
        return [c for c in self.columns if STATUSES.index(c.status) >= level]

    def by_status(self) -> dict[str, int]:
        """How many columns are at each status."""
        return {s: sum(c.status == s for c in self.columns) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.about,
            "status": self.status,
            "n_customers": self.n_customers,
            "reference_customers": self.reference_customers,
            "thresholds": {"psi_warn": self.thresholds.psi_warn, "psi_drift": self.thresholds.psi_drift},
            "columns_by_status": self.by_status(),
            "columns": {c.name: c.to_dict() for c in self.columns},
        }

    def summary(self, top: int = 10) -> str:
        counts = ", ".join(f"{k} {s}" for s, k in self.by_status().items())
        lines = [
            f"drift status: {self.status.upper()} ({len(self.columns)} columns: {counts}); "
            f"{self.n_customers} customers vs {self.reference_customers} reference customers"
        ]
        for c in self.columns[:top]:
            ks = f"  KS {c.shift.ks:.3f}" if c.shift.ks is not None else ""
            lines.append(f"  {c.status:<5}  PSI {c.shift.psi:7.3f}{ks}  {c.name}")
        return "\n".join(lines)


def drift_report(counts: Mapping[str, Counts], thresholds: Thresholds, n_customers: int, reference_customers: int,
                 about: Mapping[str, Any] | None = None) -> DriftReport:  # fmt: skip
    """Compare every column's counts with its reference profile; columns sorted worst first."""
    columns = []
    for name, c in counts.items():
        shift = compare(c)
        crit = None
        if shift.ks is not None:
            n, m = c.ref.n * (1 - c.ref.missing), c.n - int(c.bins[-1])
            crit = 1.628 * math.sqrt((n + m) / (n * m)) if n > 0 and m > 0 else None  # alpha 0.01
        columns.append(ColumnDrift(name, c.ref.kind, shift, thresholds.status(shift.psi), crit))
    columns.sort(key=lambda c: -(c.shift.psi if not math.isnan(c.shift.psi) else -1.0))
    return DriftReport(columns, thresholds, n_customers, reference_customers, dict(about or {}))
