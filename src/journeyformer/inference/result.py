"""What a scoring run reports, and the output paths every driver shares.

Both drivers (:mod:`journeyformer.inference.local`, :mod:`journeyformer.inference.ray_driver`)
add up :class:`~journeyformer.inference.partition.PartitionResult` s into one
:class:`PredictResult`. Needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from journeyformer.inference.partition import PartitionResult


@dataclass
class PredictResult:
    """What a scoring run did. Counts are customers unless named otherwise.

    ``output``: the predictions file (local engine) or directory of part files (ray engine).
    """

    output: Path
    rejects: Path
    as_of: datetime
    n_customers: int
    n_scored: int
    n_rejected: int
    n_events: int
    n_chunks: int
    seconds: float
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

    def add(self, part: PartitionResult) -> None:
        """Add one partition's counts (events, scored customers, unknown values)."""
        self.n_events += part.n_events
        self.n_scored += part.n_scored
        for name, n in part.unknown.items():
            self.unknown[name] = self.unknown.get(name, 0) + n

    def finish(self, rejected: pl.DataFrame, seconds: float) -> None:
        """Set the reject counts from every partition's rejects, and the run time."""
        self.n_rejected = rejected.height
        self.n_customers = self.n_scored + self.n_rejected
        self.reject_reasons = dict(rejected.get_column("reason").value_counts(sort=True).iter_rows())
        self.seconds = seconds


def rejects_path(output: str | Path) -> Path:
    """``out/predictions.parquet`` -> ``out/predictions.rejects.parquet``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.rejects{output.suffix or '.parquet'}")


def check_accounted(name: str, n_customers: int, n_scored: int, n_rejected: int) -> None:
    """Every customer of the input scored or rejected exactly once; otherwise a bug (never bad
    data), and nothing is published."""
    if n_scored + n_rejected != n_customers:
        raise RuntimeError(
            f"{name}: {n_customers} customers in the input but {n_scored} scored + "
            f"{n_rejected} rejected; nothing was written"
        )
