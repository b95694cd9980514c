"""Synthetic data larger than memory: a directory of Parquet files written one piece at a time.

:func:`write_in_pieces` simulates ``piece_customers`` at a time, each piece with its own seed
derived from ``(seed, piece)``, and writes it before the next starts, so peak memory is that of
one piece whatever the total::

    out/events/part-00000.parquet ...          # sorted by (customer_id, timestamp) within a file
    out/truth_customers/part-00000.parquet ...
    out/truth_stages/part-00000.parquet ...
    out/events.config.json                     # the settings; written last

Customer ids run 1..n_customers across pieces. The pieces are independent populations with the
same settings: statistically the data ``generate_journeys`` gives, not the same draws. A
directory the generator did not make is refused (:func:`journeyformer.synthetic.journeys.check_owned`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import polars as pl

from journeyformer.errors import ConfigError
from journeyformer.io import atomic_write_parquet, atomic_write_text
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import (
    GENERATOR_VERSION,
    check_owned,
    generate_journeys,
    stamp_path,
)

log = logging.getLogger(__name__)

TABLES = ("events", "truth_customers", "truth_stages")


def piece_seed(seed: int, piece: int) -> int:
    """The seed of piece ``piece``: independent streams for every (seed, piece) pair."""
    return int(np.random.SeedSequence([seed, piece]).generate_state(1, np.uint32)[0])


def write_in_pieces(
    config: SyntheticConfig,
    out_dir: str | Path,
    piece_customers: int = 100_000,
    generated_dir: str | Path | None = None,
) -> dict[str, Path]:
    """Generate ``config.n_customers`` customers ``piece_customers`` at a time into ``out_dir``
    (layout in the module docstring); returns the three directories by table name.

    Peak memory is about that of ``generate_journeys`` for ``piece_customers`` customers
    (about 1 GB per 100,000 customers at ``intensity=1``).
    """
    if piece_customers < 1:
        raise ConfigError(f"piece_customers must be >= 1, got {piece_customers}")
    if config.world == "campaigns":
        raise ConfigError(
            "the campaigns world is not written in pieces (its exposure log and true effects "
            "would be lost); generate it whole with generate_dataset / journeyformer generate-data"
        )
    out = Path(out_dir)
    stamp = stamp_path(out / "events.parquet")
    check_owned(out / "events.parquet", generated_dir)
    dirs = {name: out / name for name in TABLES}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)  # the set is incomplete until the stamp is back
    n_pieces = -(-config.n_customers // piece_customers)
    for i in range(n_pieces):
        size = min(piece_customers, config.n_customers - i * piece_customers)
        journeys = generate_journeys(replace(config, n_customers=size, seed=piece_seed(config.seed, i)))
        shift = pl.col("customer_id") + i * piece_customers
        frames = {
            "events": journeys.events,
            "truth_customers": journeys.customers,
            "truth_stages": journeys.stages,
        }
        for name, frame in frames.items():
            atomic_write_parquet(dirs[name] / f"part-{i:05d}.parquet", frame.with_columns(shift))
        log.info("piece %d/%d: %d customers, %d events", i + 1, n_pieces, size, journeys.events.height)
        del journeys, frames
    for d in dirs.values():  # parts of an earlier, larger run would join this one
        for stale in d.glob("part-*.parquet"):
            if int(stale.stem.split("-")[1]) >= n_pieces:
                stale.unlink()
    record = {"config": asdict(config), "generator": GENERATOR_VERSION, "piece_customers": piece_customers}
    atomic_write_text(stamp, json.dumps(record, sort_keys=True))
    return dirs
