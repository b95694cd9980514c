"""The settings of a synthetic data set (:class:`SyntheticConfig`): size, window, seed, world."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, timezone
from typing import Any

import numpy as np

from journeyformer.errors import ConfigError

WORLDS = ("journeys", "purchases", "campaigns")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and knobs of the synthetic data set; every field has a working default.

    ``intensity`` scales session and e-mail rates; events per customer grow roughly in
    proportion (about 50 per customer at 1.0 over 365 days, 20 at 0.4). ``churn_scale``
    multiplies the churn hazard. ``ticket_hazard`` is the extra churn hazard (churns per day)
    while a support ticket has been unresolved for more than two days; 0 switches that effect
    off. ``acquisition_span`` is the share of the window over which customers are acquired.
    """

    n_customers: int = 20_000
    days: int = 365  # window length, days
    start: str = "2025-01-01"  # ISO date of the window start, UTC midnight
    seed: int = 0
    intensity: float = 1.0
    churn_scale: float = 1.0
    ticket_hazard: float = 0.03  # churns per day
    acquisition_span: float = 0.9
    world: str = "journeys"  # journeys (cross-channel) | purchases (a BTYD purchase log) | campaigns

    def __post_init__(self) -> None:
        if self.world not in WORLDS:
            raise ValueError(f"SyntheticConfig.world must be one of {WORLDS}, got {self.world!r}")
        for name in ("n_customers", "days", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"SyntheticConfig.{name} must be an integer, got {value!r}")
        try:
            date.fromisoformat(str(self.start))
        except ValueError:
            raise ConfigError(f"SyntheticConfig.start must be an ISO date such as '2025-01-01', got {self.start!r}") from None
        rules = {  # name -> (holds, rule)
            "n_customers": (self.n_customers >= 1, ">= 1"),
            "days": (self.days >= 1, ">= 1"),
            "seed": (self.seed >= 0, ">= 0"),
            "intensity": (_is_number(self.intensity) and 0 < self.intensity < math.inf, "> 0"),
            "churn_scale": (_is_number(self.churn_scale) and 0 < self.churn_scale < math.inf, "> 0"),
            "ticket_hazard": (_is_number(self.ticket_hazard) and 0 <= self.ticket_hazard <= 1, "in [0, 1] (churns per day)"),
            "acquisition_span": (_is_number(self.acquisition_span) and 0 < self.acquisition_span <= 1, "in (0, 1]"),
        }  # fmt: skip
        for name, (holds, rule) in rules.items():
            if not holds:
                value = getattr(self, name)
                raise ConfigError(f"SyntheticConfig.{name} must be {rule}, got {value!r}")

    @property
    def start_datetime(self) -> datetime:
        """The window start as a UTC datetime (midnight of ``start``)."""
        d = date.fromisoformat(str(self.start))
        return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SyntheticConfig:
        """Build from a mapping such as Hydra's ``cfg.data.synthetic``, rejecting unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown synthetic data setting(s) {unknown}; valid settings: {sorted(known)}")
        return cls(**dict(values))
