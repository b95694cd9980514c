"""Latency of the Python API with a warm session: Predictor.predict for 1, 10 and 100 customers.

Not a test. Each call scores the events of n different customers (a Polars frame in the
bundle's columns, as a service would hold them) and returns the predictions frame; p50 and p99
over the calls, after warm-up. Variants, measured in the same run with their calls interleaved
(so a change in the machine's load hits all of them alike):

* ``batch path``: what every input took before the small-input path: sequences built by the
  batch job's Polars code (``small_events=0``) and validation one check at a time;
* ``small path``: the default (NumPy sequences for small inputs; events already in the
  canonical types and clean skip the normalize query and are checked, and sorted when the
  customers come in any order, in NumPy);
* ``small path + segments``: the default with the ``segment`` and ``cluster`` columns (when the
  bundle has its reference and clusters, i.e. was exported with ``data.path``).

The first two have no segment column, as the API had none before. The 1-customer row also
shows where the time goes.

    python benchmarks/bench_latency.py --bundle checkpoints/small_h30_s42/bundle \\
        --events data/generated/synthetic_n20000_s0/events.parquet

Prints the CPU, onnxruntime's version, the thread count and the load average.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from contextlib import contextmanager

import numpy as np
import onnxruntime as ort
import polars as pl

from journeyformer import Predictor
from journeyformer import api as api_module
from journeyformer.data.events import validate as validate_module
from journeyformer.data.features.batch import length_batches, run_in_batches
from journeyformer.data.labels.samples import parse_time
from journeyformer.inference.loop import prediction_frame


def cpu() -> tuple[str, int]:
    """CPU model name and logical cores."""
    name = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return name, os.cpu_count() or 1


@contextmanager
def steps_validation(on: bool):
    """Validation one check at a time (the path before the one-query check) while ``on``."""
    if not on:
        yield
        return
    api_module.validate = validate_module._validate_steps
    try:
        yield
    finally:
        api_module.validate = validate_module.validate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--events", required=True, help="events in the bundle's columns (Parquet)")
    ap.add_argument("--as-of", default=None, help="default: the latest event")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--repeats", type=int, default=300, help="calls per variant for 1 customer")
    args = ap.parse_args()

    name, cores = cpu()
    print(f"CPU: {name}; {cores} logical cores; load average {os.getloadavg()}")
    base = Predictor.load(args.bundle, threads=args.threads, segments=None)
    spec = base.bundle.spec
    print(
        f"onnxruntime {ort.__version__}, {args.threads} intra-op thread(s), model "
        f"d_model={spec['model']['d_model']} n_layers={spec['model']['n_layers']} "
        f"max_len={base.bundle.preprocessing.max_len}, polars {pl.__version__}"
    )
    variants = {
        "batch path": (Predictor(base.bundle, base.runner, segments=None, small_events=0), True),
        "small path": (base, False),
        "small path + segments": (Predictor(base.bundle, base.runner), False),
    }
    events = pl.read_parquet(args.events)
    as_of = parse_time(args.as_of) if args.as_of else events["timestamp"].max()
    by_customer = events.partition_by("customer_id", as_dict=False, maintain_order=True)
    rng = np.random.default_rng(0)
    print(f"\n{'customers':>9} {'events/call':>11}  " + "  ".join(f"{v + ' p50/p99 ms':>32}" for v in variants))
    for n in (1, 10, 100):
        calls = max(30, args.repeats // (1 if n == 1 else 3 if n == 10 else 10))
        frames = [pl.concat([by_customer[i] for i in rng.choice(len(by_customer), n, replace=False)]) for _ in range(calls)]
        times: dict[str, list[float]] = {v: [] for v in variants}
        for i, frame in enumerate(frames + frames[:10]):  # the first 10 are warm-up
            for v, (predictor, steps) in variants.items():
                with steps_validation(steps):
                    start = time.perf_counter()
                    predictor.predict(frame, as_of=as_of)
                    if i >= 10:
                        times[v].append(time.perf_counter() - start)
        cells = []
        for v in variants:
            ms = np.asarray(times[v]) * 1e3
            cells.append(f"{np.percentile(ms, 50):>14.2f} / {np.percentile(ms, 99):<15.2f}")
        rows = statistics.median(f.height for f in frames)
        print(f"{n:>9} {rows:>11.0f}  " + "  ".join(f"{c:>32}" for c in cells), flush=True)

    # Where one customer's time goes (medians), for each path: events = read and validate.
    frames = [by_customer[i] for i in rng.choice(len(by_customer), 200)]
    for v in ("batch path", "small path"):
        predictor, steps = variants[v]
        parts: dict[str, list[float]] = {"events": [], "sequences": [], "onnxruntime": [], "frame": []}
        with steps_validation(steps):
            for frame in frames:
                t0 = time.perf_counter()
                canonical = predictor.events(frame)
                t1 = time.perf_counter()
                seqs = predictor.sequences(canonical, as_of)
                t2 = time.perf_counter()
                outputs = run_in_batches(len(seqs), length_batches(seqs, 64), predictor.runner.run)
                t3 = time.perf_counter()
                prediction_frame(seqs, outputs, predictor.bundle, as_of)
                t4 = time.perf_counter()
                for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                    parts[key].append(dt)
        print(f"one customer, {v}, median ms: " + ", ".join(
            f"{k} {statistics.median(t) * 1e3:.2f}" for k, t in parts.items()
        ))  # fmt: skip
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
