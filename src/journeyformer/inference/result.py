"""What scoring reports: one partition's predictions and rejects, a run's counts, the output
paths every driver shares. Needs no torch.

Both drivers (:mod:`journeyformer.inference.local`, :mod:`journeyformer.inference.ray_driver`)
add up the :class:`PartitionResult` s into one :class:`PredictResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from journeyformer.data.events.timestamps import UTC_US
from journeyformer.data.features.batch import Batch
from journeyformer.data.features.sequences import Sequences

REASON_NO_HISTORY = "no events at or before as_of"
REASON_NO_VALID = "no valid events (every row had a null timestamp; data.null_keys=drop)"


@dataclass
class Prepared:
    """A partition ready for the runner: its sequences, batches and rejects."""

    seqs: Sequences | None
    batches: list[Batch]
    rejects: pl.DataFrame  # customer_id, reason, first_event
    n_events: int


@dataclass
class PartitionResult:
    """What scoring one partition gives.

    Attributes:
        predictions: one row per scored customer
            (:func:`journeyformer.inference.loop.prediction_frame` columns).
        rejects: customer_id, as_of, reason, first_event (UTC, null when no valid event).
        n_events: events read; unknown: column -> kept events mapped to ``<unk>``.
    """

    predictions: pl.DataFrame
    rejects: pl.DataFrame
    n_events: int
    unknown: dict[str, int] = field(default_factory=dict)

    @property
    def n_scored(self) -> int:
        return self.predictions.height

    @property
    def n_rejected(self) -> int:
        return self.rejects.height

    @property
    def n_customers(self) -> int:
        return self.n_scored + self.n_rejected


@dataclass
class PredictResult:
    """What a scoring run did. Counts are customers unless named otherwise.

    ``output``: the predictions file (local engine) or directory of part files (ray engine).
    """

    output: Path
    rejects: Path
    as_of: datetime
    n_customers: int = 0
    n_scored: int = 0
    n_rejected: int = 0
    n_events: int = 0
    n_chunks: int = 0
    seconds: float = 0.0
    unknown: dict[str, int] = field(default_factory=dict)
    reject_reasons: dict[str, int] = field(default_factory=dict)
    engine: str = "local"

    def summary(self) -> str:
        rate = self.n_customers / self.seconds if self.seconds else float("nan")
        lines = [
            f"as_of {self.as_of.isoformat()}: {self.n_customers} customers, {self.n_events} events "
            f"in {self.n_chunks} chunk(s), {self.seconds:.1f} s ({rate:,.0f} customers/s, "
            f"engine {self.engine})",
            f"  scored   {self.n_scored:>9}  -> {self.output}",
            f"  rejected {self.n_rejected:>9}  -> {self.rejects}",
        ]
        lines += [f"    {n:>9}  {reason}" for reason, n in self.reject_reasons.items()]
        if self.unknown:
            lines.append(f"  values unseen in training, mapped to <unk> (events): {self.unknown}")
        return "\n".join(lines)

    def add(self, n_events: int, n_scored: int, unknown: dict[str, int]) -> None:
        """Add one partition's counts (events, scored customers, unknown values)."""
        self.n_events += n_events
        self.n_scored += n_scored
        for name, n in unknown.items():
            self.unknown[name] = self.unknown.get(name, 0) + n

    def finish(self, name: str, n_customers: int, rejected: pl.DataFrame) -> None:
        """Set the reject counts from every partition's rejects, once every
        customer of the input (``n_customers``) was scored or rejected exactly once; otherwise
        a bug (never bad data), and nothing is published."""
        if self.n_scored + rejected.height != n_customers:
            raise RuntimeError(
                f"{name}: {n_customers} customers in the input but {self.n_scored} scored + "
                f"{rejected.height} rejected; nothing was written"
            )
        self.n_rejected = rejected.height
        self.n_customers = self.n_scored + self.n_rejected
        self.reject_reasons = dict(rejected.get_column("reason").value_counts(sort=True).iter_rows())


def rejects_path(output: str | Path) -> Path:
    """``out/predictions.parquet`` -> ``out/predictions.rejects.parquet``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.rejects{output.suffix or '.parquet'}")


def partition_rejects(
    seen: pl.DataFrame, events: pl.DataFrame | None, seqs: Sequences | None
) -> pl.DataFrame:
    """Customers in ``seen`` without a sequence, with why."""
    empty = pl.DataFrame(
        {"customer_id": seen.get_column("customer_id").clear(), "reason": [], "first_event": []},
        schema_overrides={"reason": pl.String, "first_event": UTC_US},
    )
    if seen.height == 0:
        return empty
    scored = seqs.customer_id.to_frame("customer_id") if seqs is not None else seen.clear()
    missing = seen.join(scored, on="customer_id", how="anti")
    if missing.height == 0:
        return empty
    assert events is not None
    first = events.group_by("customer_id").agg(pl.col("timestamp").min().alias("first_event"))
    return (
        missing.join(first, on="customer_id", how="left")
        .select(
            "customer_id",
            pl.when(pl.col("first_event").is_null())
            .then(pl.lit(REASON_NO_VALID))
            .otherwise(pl.lit(REASON_NO_HISTORY))
            .alias("reason"),
            pl.col("first_event").cast(UTC_US),
        )
        .sort("customer_id")
    )
