"""The local driver reads its input a fixed number of times: one spill pass writes every
chunk, and the chunks are then read from the spill, not from the input."""

from __future__ import annotations

import polars as pl

from journeyformer.data.events.partitions import EventChunks
from journeyformer.data.events.schema import EventSchema
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_journeys


def test_one_spill_pass_gives_every_chunk_without_the_input(tmp_path):
    events = generate_journeys(SyntheticConfig(n_customers=300, seed=5, days=60)).events
    path = tmp_path / "events.parquet"
    events.write_parquet(path)
    chunks = EventChunks(path, EventSchema(), chunk_customers=40)
    assert chunks.plan.n_chunks == -(-events["customer_id"].n_unique() // 40) > 3
    chunks.spill(tmp_path / "spill")
    path.unlink()  # every read below comes from the spill
    parts = [chunks.read(i) for i in range(chunks.plan.n_chunks)]
    owners = pl.concat([p.select("customer_id").unique().with_columns(pl.lit(i).alias("chunk"))
                        for i, p in enumerate(parts)])  # fmt: skip
    assert owners["customer_id"].is_unique().all()  # each customer in exactly one chunk
    got = pl.concat(parts).sort("customer_id", "timestamp", "_row")
    assert got.height == events.height
    assert got["customer_id"].to_list() == events["customer_id"].to_list()
    assert got["action"].to_list() == events["action"].to_list()
    assert got["_row"].to_list() == list(range(events.height))  # file order kept for ties
