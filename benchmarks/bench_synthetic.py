"""Throughput of the synthetic journey generator: events generated per second, end to end.

    .venv/bin/python benchmarks/bench_synthetic.py [--customers 500000] [--intensity 0.4]
                                                   [--repeats 1] [--write DIR]

Not a test. The timed call is ``generate_journeys`` (simulation, sorting, Polars frames); the
default asks for about 10M events over 500k customers and one year. ``--write`` also times
``write_journeys`` into DIR. CPU time is printed next to wall time because the wall time on a
shared machine depends on what else is running.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_journeys, write_journeys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=500_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--intensity", type=float, default=0.4, help="0.4: ~20 events/customer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--write", type=Path, default=None, help="also time write_journeys here")
    args = parser.parse_args()
    config = SyntheticConfig(
        n_customers=args.customers, days=args.days, intensity=args.intensity, seed=args.seed
    )
    print(f"config: {config}   cpus: {os.cpu_count()}")
    walls = []
    for _ in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        journeys = generate_journeys(config)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        walls.append(wall)
        n = journeys.events.height
        print(
            f"events {n:,}   customers {args.customers:,}   seconds {wall:.2f} (cpu {cpu:.2f})   "
            f"events/s {n / wall:,.0f}"
        )
    if args.repeats > 1:
        best = min(walls)
        print(f"best of {args.repeats}: {best:.2f} s, {n / best:,.0f} events/s; "
              f"median {statistics.median(walls):.2f} s")  # fmt: skip
    if args.write is not None:
        start = time.perf_counter()
        paths = write_journeys(journeys, args.write)
        print(f"write_journeys: {time.perf_counter() - start:.2f} s -> {paths['events'].parent}")


if __name__ == "__main__":
    main()
