"""Latency of the Python API with a warm session: Predictor.predict for 1, 10 and 100 customers.

Not a test. Each call scores the events of n different customers (a Polars frame in the
bundle's columns, as a service would hold them) and returns the predictions frame; p50 and p99
over --repeats calls, after warm-up. The 1-customer row also shows where the time goes.

    python benchmarks/bench_latency.py --bundle checkpoints/small_h30_s42/bundle \\
        --events data/generated/synthetic_n20000_s0/events.parquet
    python benchmarks/bench_latency.py --bundle <dir> --events <file> --threads 1

Prints the CPU model and its vector extensions, onnxruntime's version and the thread count.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import onnxruntime as ort
import polars as pl

from journeyformer import Predictor
from journeyformer.data.sequences import build_sequences

EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
              "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")  # fmt: skip


def cpu() -> tuple[str, list[str], int]:
    """CPU model name, the listed vector extensions it has, logical cores."""
    name, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and name in ("unknown", "x86_64", ""):
                    name = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    import os

    return name, [e for e in EXTENSIONS if e in flags], os.cpu_count() or 1


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--events", required=True, help="events in the bundle's columns (Parquet)")
    ap.add_argument("--as-of", default=None, help="default: the latest event")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--repeats", type=int, default=300)
    args = ap.parse_args()

    name, ext, cores = cpu()
    print(f"CPU: {name}; {cores} logical cores; extensions: {' '.join(ext) or 'none listed'}")
    predictor = Predictor.load(args.bundle, threads=args.threads)
    print(
        f"onnxruntime {ort.__version__}, {args.threads} intra-op thread(s), model "
        f"d_model={predictor.bundle.spec['model']['d_model']} "
        f"n_layers={predictor.bundle.spec['model']['n_layers']} "
        f"max_len={predictor.bundle.spec['max_len']}, polars {pl.__version__}"
    )
    events = pl.read_parquet(args.events)
    as_of = args.as_of or events["timestamp"].max()
    by_customer = events.partition_by("customer_id", as_dict=False, maintain_order=True)
    rng = np.random.default_rng(0)
    print(f"\n{'customers':>9} {'events/call':>11} {'p50 ms':>8} {'p99 ms':>8} {'calls':>6}")
    for n in (1, 10, 100):
        repeats = max(30, args.repeats // (1 if n == 1 else 3 if n == 10 else 10))
        frames = [
            pl.concat([by_customer[i] for i in rng.choice(len(by_customer), n, replace=False)])
            for _ in range(repeats)
        ]
        for frame in frames[:10]:  # warm-up
            predictor.predict(frame, as_of=as_of)
        times = []
        for frame in frames:
            start = time.perf_counter()
            predictor.predict(frame, as_of=as_of)
            times.append(time.perf_counter() - start)
        p50, p99 = percentiles(times)
        rows = statistics.median(f.height for f in frames)
        print(f"{n:>9} {rows:>11.0f} {p50:>8.2f} {p99:>8.2f} {repeats:>6}")

    # Where one customer's time goes (medians).
    frames = [by_customer[i] for i in rng.choice(len(by_customer), 200)]
    parts: dict[str, list[float]] = {"validate": [], "sequences": [], "onnxruntime": [], "frame": []}
    b = predictor.bundle
    for frame in frames:
        t0 = time.perf_counter()
        canonical = predictor.events(frame)
        t1 = time.perf_counter()
        seqs = build_sequences(canonical, as_of, b.vocabs, b.features, b.labels, with_labels=False)
        t2 = time.perf_counter()
        outputs = predictor.runner.predict(seqs)
        t3 = time.perf_counter()
        predictor.runner.to_frame(seqs, outputs, as_of)
        t4 = time.perf_counter()
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[key].append(dt)
    print("\none customer, median ms: " + ", ".join(
        f"{k} {statistics.median(v) * 1e3:.2f}" for k, v in parts.items()
    ))  # fmt: skip


if __name__ == "__main__":
    main()
