"""Whom to contact: customers by expected incremental value minus the contact cost, under a budget.

``journeyformer target predictions=<predict output> [score=uplift_value] [times=null]
contact_cost=2 budget=1000 [output=targets.parquet]`` (``configs/target.yaml``) reads the
predictions of a bundle with an uplift head and writes one row per customer:

=================  ===================================================================
customer_id        as in the predictions
incremental_value  ``score`` (an expected incremental value, currency: ``uplift_value``),
                   or ``score x times`` (``score=uplift_retention times=expected_value``:
                   the retention uplift times the customer's expected value)
net_value          incremental_value - contact_cost
contact            true for the customers to contact: by decreasing net value, while it is
                   positive and the contacts' cost stays within the budget
                   (:func:`journeyformer.metrics.uplift.select_by_net_value`)
=================  ===================================================================

Every input customer is in the output (nothing lost); a customer whose score is missing (null
or NaN) is an error naming the count and examples. The output is written atomically and never
over the predictions. Polars and NumPy only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from journeyformer.errors import ConfigError, EventDataError
from journeyformer.io import atomic_write_parquet
from journeyformer.metrics.uplift import select_by_net_value
from journeyformer.publish import check_file_output

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetingConfig:
    """``score``: prediction column of an expected effect; ``times``: a column it is
    multiplied by (None: the score is already in currency); ``contact_cost`` per contact and
    ``budget`` for all contacts, in currency (budget None: no limit)."""

    score: str = "uplift_value"
    times: str | None = None
    contact_cost: float = 0.0
    budget: float | None = None

    def __post_init__(self) -> None:
        if self.contact_cost < 0 or (self.budget is not None and self.budget < 0):
            raise ConfigError(f"contact_cost={self.contact_cost} and budget={self.budget} must be >= 0")


def target_customers(predictions: pl.DataFrame, cfg: TargetingConfig, name: str = "predictions") -> pl.DataFrame:
    """One row per customer of ``predictions``: incremental_value, net_value, contact."""
    needed = [c for c in ("customer_id", cfg.score, cfg.times) if c]
    missing = [c for c in needed if c not in predictions.columns]
    if missing:
        hint = (" Score with a bundle trained with an exposure log (data.exposures) for the uplift columns."
                if any(c.startswith("uplift") for c in missing) else "")  # fmt: skip
        raise ConfigError(f"{name}: no column(s) {missing} (columns: {predictions.columns}).{hint}")
    incremental = pl.col(cfg.score).cast(pl.Float64)
    if cfg.times:
        incremental = incremental * pl.col(cfg.times).cast(pl.Float64)
    frame = predictions.select("customer_id", incremental.alias("incremental_value"))
    bad = frame.filter(pl.col("incremental_value").is_null() | pl.col("incremental_value").is_nan())
    if bad.height:
        raise EventDataError(
            f"{name}: {bad.height} of {frame.height} customers have no {' x '.join(needed[1:])} "
            f"(null or NaN), e.g. customer_id {bad['customer_id'].head(5).to_list()}; score them again "
            "or drop them from the predictions"
        )
    value = frame.get_column("incremental_value").to_numpy()
    budget = np.inf if cfg.budget is None else cfg.budget
    if cfg.budget is None or cfg.contact_cost <= 0:
        contact = value - cfg.contact_cost > 0  # no binding budget: everyone worth a contact
        if cfg.budget is not None and cfg.contact_cost <= 0:
            log.warning("contact_cost=0: the budget does not limit the contacts")
    else:
        contact = select_by_net_value(value, cfg.contact_cost, budget)
    return frame.with_columns(
        (pl.col("incremental_value") - cfg.contact_cost).alias("net_value"), pl.Series("contact", contact)
    )


def run_targeting(cfg: dict[str, Any]) -> tuple[pl.DataFrame, Path]:
    """``configs/target.yaml`` as a plain dict -> the targets frame and where it was written."""
    source = str(cfg["predictions"])
    output = check_file_output(cfg.get("output") or "targets.parquet", "output", [source])
    settings = TargetingConfig(
        score=str(cfg.get("score") or "uplift_value"),
        times=cfg.get("times") or None,
        contact_cost=float(cfg.get("contact_cost") or 0.0),
        budget=None if cfg.get("budget") is None else float(cfg["budget"]),
    )
    predictions = pl.read_csv(source) if source.endswith((".csv", ".tsv")) else pl.read_parquet(source)
    targets = target_customers(predictions, settings, source)
    atomic_write_parquet(output, targets)
    n = int(targets["contact"].sum())
    gain = float(targets.filter("contact")["net_value"].sum()) if n else 0.0
    log.info("%s: %d of %d customers to contact, expected net incremental value %.2f", output, n, targets.height, gain)
    return targets, Path(output)
