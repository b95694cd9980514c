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

With ``holdout_share`` (e.g. 0.1) the customers to contact are split at random into the arm
``treatment`` (send) and ``control`` (the holdout: chosen, not sent), column ``arm`` (null for
the others), so the campaign can be measured afterwards; with ``exposures_output`` (and
``campaign``, ``send_at``) the job also writes the campaign's exposure log
(:func:`exposure_log`: the contacted customers and their arm, ``journeyformer experiment``'s
input, and with its ``feedback=`` the next training run's).

Every input customer is in the output (nothing lost); a customer whose score is missing (null
or NaN) is an error naming the count and examples. The outputs are written atomically and never
over the predictions. Polars and NumPy only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from journeyformer.errors import ConfigError, EventDataError
from journeyformer.io import atomic_write_parquet
from journeyformer.metrics.uplift import select_by_net_value
from journeyformer.publish import check_distinct, check_file_output

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
    holdout_share: float = 0.0  # share of the chosen customers held out at random (arm control)
    seed: int = 0  # the holdout draw

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout_share < 1.0:
            raise ConfigError(f"holdout_share must be in [0, 1), got {self.holdout_share}")
        if self.contact_cost < 0 or (self.budget is not None and self.budget < 0):
            raise ConfigError(
                f"contact_cost={self.contact_cost} and budget={self.budget} must be >= 0"
            )


def target_customers(
    predictions: pl.DataFrame, cfg: TargetingConfig, name: str = "predictions"
) -> pl.DataFrame:
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
    if cfg.budget is None or cfg.contact_cost <= 0:
        contact = value - cfg.contact_cost > 0  # no binding budget: everyone worth a contact
        if cfg.budget is not None and cfg.contact_cost <= 0:
            log.warning("contact_cost=0: the budget does not limit the contacts")
    else:
        contact = select_by_net_value(value, cfg.contact_cost, cfg.budget)
    frame = frame.with_columns(
        (pl.col("incremental_value") - cfg.contact_cost).alias("net_value"),
        pl.Series("contact", contact),
    )
    if cfg.holdout_share <= 0:
        return frame
    held = np.random.default_rng(cfg.seed).random(len(contact)) < cfg.holdout_share
    if contact.any() and (held[contact].all() or not held[contact].any()):
        raise EventDataError(
            f"{name}: holdout_share={cfg.holdout_share:g} of {int(contact.sum())} customers to "
            "contact leaves one arm empty; contact more customers or change holdout_share"
        )
    arm = pl.when(~pl.col("contact")).then(None)
    arm = arm.when(pl.Series(held)).then(pl.lit("control")).otherwise(pl.lit("treatment"))
    return frame.with_columns(arm.cast(pl.String).alias("arm"))


def exposure_log(targets: pl.DataFrame, campaign: str, send_at: datetime) -> pl.DataFrame:
    """The exposure log of a targeted campaign (:mod:`journeyformer.data.events.exposures`):
    one row per customer to contact (``arm`` from :func:`target_customers` with a holdout),
    all eligible (the holdout is random among them), exposed at ``send_at``."""
    if "arm" not in targets.columns:
        raise ConfigError(
            "an exposure log needs a random holdout among the contacted customers: set "
            "holdout_share (e.g. 0.1), or the campaign cannot be measured or learnt from"
        )
    at = send_at if send_at.tzinfo else send_at.replace(tzinfo=timezone.utc)
    chosen = targets.filter("contact")
    return chosen.select(
        "customer_id",
        pl.lit(at).cast(pl.Datetime("us", "UTC")).alias("timestamp"),
        pl.lit(campaign, pl.String).alias("campaign"),
        "arm",
        pl.lit(True).alias("eligible"),
    ).sort("customer_id")


def run_targeting(cfg: dict[str, Any]) -> tuple[pl.DataFrame, Path]:
    """``configs/target.yaml`` as a plain dict -> the targets frame and where it was written."""
    source = str(cfg["predictions"])
    output = check_file_output(cfg.get("output") or "targets.parquet", "output", [source])
    settings = TargetingConfig(
        score=str(cfg.get("score") or "uplift_value"),
        times=cfg.get("times") or None,
        contact_cost=float(cfg.get("contact_cost") or 0.0),
        budget=None if cfg.get("budget") is None else float(cfg["budget"]),
        holdout_share=float(cfg.get("holdout_share") or 0.0),
        seed=int(cfg.get("seed") or 0),
    )
    log_out = cfg.get("exposures_output") or None
    if log_out is not None:
        if not cfg.get("campaign") or not cfg.get("send_at"):
            raise ConfigError(
                "exposures_output needs campaign=<name> and send_at=<time of sending>"
            )
        check_file_output(log_out, "exposures_output", [source])
        check_distinct({"output": output, "exposures_output": log_out})
        send_at = datetime.fromisoformat(str(cfg["send_at"]))
    predictions = (
        pl.read_csv(source) if source.endswith((".csv", ".tsv")) else pl.read_parquet(source)
    )
    targets = target_customers(predictions, settings, source)
    if log_out is not None:
        exposures = exposure_log(targets, str(cfg["campaign"]), send_at)
        atomic_write_parquet(log_out, exposures)
        log.info("%s: the exposure log of %d customers (%d held out)", log_out, exposures.height,
                 int((exposures["arm"] == "control").sum()))  # fmt: skip
    atomic_write_parquet(output, targets)
    n = int(targets["contact"].sum())
    gain = float(targets.filter("contact")["net_value"].sum()) if n else 0.0
    log.info(
        "%s: %d of %d customers to contact, expected net incremental value %.2f",
        output,
        n,
        targets.height,
        gain,
    )
    return targets, Path(output)
