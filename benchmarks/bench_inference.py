"""Inference speed side by side: torch eager (padded, length-bucketed) vs onnxruntime.

Not a test. One run, one model (``configs/model/small.yaml``; untrained unless --checkpoint),
one synthetic data set, three ways from events to a predictions table:

  (a) torch eager, every sequence padded to max_len, batches in input order
  (b) torch eager, batches of similar length (each padded to its own longest sequence)
  (c...) the onnxruntime predictor (journeyformer.inference: chunks, overlap, Parquet out), one
      row per model file (plain / fused graph, fp32 / int8), batch size in --ort-batch-size and
      parallelism in --parallel (batches: each thread runs its own batch; operators: one batch
      at a time split across the threads; the same with 1 thread)

The bundle is exported with ``quantize=true``; the int8 agreement with fp32 it records (on the
validation split of --validation-events) and the predictor's own choice (precision=auto,
graph=auto) are printed above the table.

Each is timed end to end (read events -> sequences -> model -> predictions frame/Parquet) and
model-only (pre-padded batches), best of --repeats. Each runtime gets 1 thread or every core,
whichever a short probe finds faster here (on shared machines busy-waiting thread pools can
be many times slower with more threads), or --threads. Achieved GFLOP/s counts the FLOPs each variant's
graph executes on real events only (no padding, causal attention over real keys; the exported
graph runs its last block at the last event only) against the fp32 matmul GFLOP/s measured
here with the same thread count. Peak RSS of the predictor scoring ``--rss-events`` events is
the VmHWM of a child process.

    python benchmarks/bench_inference.py                  # 20k customers, 10M-event RSS run
    python benchmarks/bench_inference.py --customers 5000 --rss-events 1e6   # quick look
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import tempfile
from pathlib import Path

import numpy as np
import torch
from inference_workloads import (
    child_peak_rss,
    make_checkpoint,
    make_events,
    matmul_gflops,
    median_of,
    real_event_flops,
    timed,
    torch_batches,
    torch_end_to_end,
    torch_run,
)

from journeyformer.data.events.load import load_events
from journeyformer.data.features.batch import length_batches, run_in_batches
from journeyformer.export.bundle import ValidationData, build_bundle
from journeyformer.inference.bundle import load_bundle
from journeyformer.inference.local import predict_events
from journeyformer.inference.runner import OnnxRunner
from journeyformer.inference.session import default_threads
from journeyformer.machine import cpu_line
from journeyformer.model.checkpoint import load_network

ROW_FIELDS = ("label", "batch", "threads", "graph", "e2e_s", "model_s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--customers", type=int, default=20_000, help="customers in the timing data set"
    )
    parser.add_argument("--rss-events", type=float, default=10e6, help="events in the peak-RSS run")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="a trained checkpoint (default: untrained small)",
    )
    parser.add_argument("--torch-batch-size", type=int, default=256)
    parser.add_argument(
        "--ort-batch-size",
        default="64",
        help="customers per onnxruntime call; a comma-separated list times each graph at each",
    )
    parser.add_argument(
        "--parallel",
        default="auto",
        help="onnxruntime parallelism (auto, batches, operators); a comma-separated list times each",
    )
    parser.add_argument("--chunk-customers", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3, help="median of this many timed runs")
    parser.add_argument(
        "--work", type=Path, default=None, help="working directory (default: a temp dir)"
    )
    parser.add_argument(
        "--validation-events",
        type=Path,
        default=None,
        help="events the checkpoint was trained on, for the int8 agreement (default: the "
        "benchmark's events)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="pin torch and onnxruntime to this many threads (default: probe 1 vs every core)",
    )
    args = parser.parse_args()

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_inference_"))
    work.mkdir(parents=True, exist_ok=True)
    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    print(cpu_line())
    print(
        f"work dir {work}; {threads} cores; torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )

    events_path = work / "events.parquet"
    n_events = make_events(events_path, args.customers, seed=0)
    ckpt = args.checkpoint or make_checkpoint(events_path, work / "small.ckpt")
    # quantize: the int8 files beside fp32, compared with it on the validation split of
    # --validation-events (the benchmark's own events unless given: agreement figures mean
    # something only for a trained checkpoint and the events it was trained on).
    validation = ValidationData(str(args.validation_events or events_path))
    bundle_dir = build_bundle(ckpt, work / "bundle", quantize=True, validation=validation).path
    bundle = load_bundle(bundle_dir)
    net = load_network(ckpt)
    cfg = net.cfg
    print(
        f"model d_model={cfg.d_model} layers={cfg.n_layers} heads={cfg.n_heads} d_ff={cfg.d_ff} "
        f"max_len={cfg.max_len}; {args.customers} customers, {n_events} events"
    )

    # Same sequences for the model-only timings and the FLOP count.
    events = load_events(events_path, bundle.schema())
    as_of = events.get_column("timestamp").max()
    seqs = bundle.preprocessing.sequences(events, as_of, with_labels=False, active_only=False)
    lengths = seqs.lengths
    flops = {
        "torch": real_event_flops(cfg, lengths, last_position_only=True),
        "onnx": real_event_flops(cfg, lengths, bool(bundle.spec["onnx"]["last_position_only"])),
    }
    peak = {
        t: max(matmul_gflops(t) for _ in range(3))
        for t in ([threads] if args.threads else sorted({1, threads}))
    }
    torch.set_num_threads(threads)
    print(
        f"{len(seqs)} sequences, {int(lengths.sum())} real events kept (mean length "
        f"{lengths.mean():.1f}, {lengths.sum() / (len(seqs) * cfg.max_len):.0%} of a "
        f"max_len-padded batch is real); work on real events {flops['torch'] / 1e9:.1f} GFLOP "
        f"(model as written), {flops['onnx'] / 1e9:.1f} GFLOP (exported graph)"
    )

    # torch's OpenMP threads busy-wait at every op; on a machine whose cores are shared they can
    # be slower than one thread. Give torch whichever of 1 or all cores is faster here.
    probe = torch_batches(seqs, args.torch_batch_size, False, cfg.max_len)[-4:]
    probe_s = {}
    for n_threads in [threads] if args.threads else sorted({1, threads}):
        torch.set_num_threads(n_threads)
        torch_run(net, probe[:1], len(seqs))
        probe_s[n_threads] = min(timed(lambda: torch_run(net, probe, len(seqs))) for _ in range(3))
    torch_threads = min(probe_s, key=probe_s.get)
    torch.set_num_threads(torch_threads)
    print(
        f"torch threads: {torch_threads} (probe seconds by threads: "
        f"{ {k: round(v, 3) for k, v in probe_s.items()} })"
    )

    rows = {}
    for key, label, padded in (
        ("a", "torch eager, padded to max_len", True),
        ("b", "torch eager, length-bucketed", False),
    ):
        batches = torch_batches(seqs, args.torch_batch_size, padded, cfg.max_len)
        torch_run(net, batches[:2], len(seqs))  # warm-up
        model_s = median_of(
            lambda b=batches: timed(lambda: torch_run(net, b, len(seqs))), args.repeats
        )
        e2e_s = median_of(
            lambda p=padded: torch_end_to_end(
                net, bundle, events_path, args.torch_batch_size, p, work / "torch.parquet"
            ),
            args.repeats,
        )
        rows[key] = (label, args.torch_batch_size, torch_threads, "torch", e2e_s, model_s)

    # The same rule for onnxruntime: 1 thread or every core, whichever the probe finds faster.
    ort_batch_sizes = [int(b) for b in str(args.ort_batch_size).split(",")]
    ort_probe_s = {}
    for n_threads in [threads] if args.threads else sorted({1, threads}):
        candidate = OnnxRunner(bundle, threads=n_threads)
        probe = length_batches(seqs.take(np.argsort(seqs.lengths)[-1024:]), ort_batch_sizes[0])
        run_in_batches(1024, probe[:1], candidate.run)
        ort_probe_s[n_threads] = min(
            timed(lambda c=candidate, p=probe: run_in_batches(1024, p, c.run, workers=c.workers))
            for _ in range(3)
        )
    ort_threads = min(ort_probe_s, key=ort_probe_s.get)
    print(
        f"onnxruntime threads: {ort_threads} (probe seconds by threads: "
        f"{ {k: round(v, 3) for k, v in ort_probe_s.items()} })"
    )
    agreement = bundle.spec["onnx"].get("int8_agreement") or {}
    for graph, a in agreement.items():
        print(
            f"int8 {graph} graph vs fp32 on {a['rows']} validation sequences: top-1 agreement "
            f"(worst class output) {a['top1_agreement_min']:.4f}, largest headline metric change "
            f"{a['headline_abs_diff_max']}, meets the bar {a['bar']}: {a['passes']}"
        )
    # What precision=auto graph=auto picks here (its probe runs once per process).
    auto = OnnxRunner(bundle, threads=ort_threads, precision="auto")
    print(f"predictor's own choice (precision=auto, graph=auto, parallel=auto): {auto.graph} "
          f"{auto.precision}, {auto.parallel} (probe ms per batch of 64: {auto.graph_timings_ms})")
    keys = iter("cdefghijklmnopqrstuvwxyz")
    combos = [
        (bs, g, p, par)
        for par, bs, p, g in itertools.product(
            args.parallel.split(","), ort_batch_sizes, ("fp32", "int8"), ("plain", "fused")
        )
        if g in bundle.graphs(p)
    ]
    for batch_size, graph, precision, parallel in combos:
        key = next(keys)
        ort_batches = length_batches(seqs, batch_size)
        runner = OnnxRunner(
            bundle, threads=ort_threads, graph=graph, precision=precision, parallel=parallel
        )
        run_in_batches(len(seqs), ort_batches[:2], runner.run, workers=runner.workers)
        model_s = median_of(
            lambda r=runner, ob=ort_batches: timed(
                lambda: run_in_batches(len(seqs), ob, r.run, workers=r.workers)
            ),
            args.repeats,
        )
        e2e_s = median_of(
            lambda g=graph, bs=batch_size, p=precision, par=parallel: (
                predict_events(
                    bundle,
                    events_path,
                    work / "ort.parquet",
                    batch_size=bs,
                    chunk_customers=args.chunk_customers,
                    threads=ort_threads,
                    graph=g,
                    precision=p,
                    parallel=par,
                    progress=False,
                ).seconds
            ),
            args.repeats,
        )
        label = f"onnxruntime predictor, {graph} {precision}, parallel {runner.parallel}"
        rows[key] = (label, batch_size, ort_threads, "onnx", e2e_s, model_s)

    n = len(seqs)
    lines = [
        "fp32 matmul (torch.mm 2048x2048): "
        + ", ".join(f"{v:.1f} GFLOP/s on {t} thread(s)" for t, v in peak.items())
        + f"; load average before the run {load_before}, after "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "",
        "| variant | batch | threads | end-to-end s | customers/s | model-only s | GFLOP run "
        "| GFLOP/s | % of matmul (same threads) | vs (a) | vs (b) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = rows["a"][4]
    for key, (label, bs, n_threads, graph, e2e, model) in rows.items():
        gf, share = flops[graph] / model / 1e9, flops[graph] / model / 1e9 / peak[n_threads]
        lines.append(
            f"| ({key}) {label} | {bs} | {n_threads} | {e2e:.2f} | {n / e2e:,.0f} | {model:.2f} | "
            f"{flops[graph] / 1e9:.1f} | {gf:.1f} | {share:.0%} | {base / e2e:.2f}x "
            f"| {rows['b'][4] / e2e:.2f}x |"
        )
    print("\n".join(lines))

    if args.rss_events <= 0:
        return
    # Peak RSS of the predictor on a large input, in a child process.
    per_customer = n_events / args.customers
    big_customers = math.ceil(args.rss_events / per_customer)
    big = work / "big_events"
    n_big = make_events(big, big_customers, seed=1, n_files=8)
    rss = child_peak_rss(bundle_dir, big, work / "big.parquet", args.chunk_customers)
    rss_line = (
        f"predictor on {n_big:,} events / {rss['customers']:,} customers (8 Parquet files, "
        f"chunk_customers={args.chunk_customers}): {rss['seconds']:.1f} s "
        f"({rss['customers'] / rss['seconds']:,.0f} customers/s), "
        f"peak RSS {rss['peak_rss_gb']:.2f} GB (child VmHWM; wait4 ru_maxrss "
        f"{rss['ru_maxrss_gb']:.2f} GB includes the forked parent image), "
        f"torch imported: {rss['torch_imported']}"
    )
    print(rss_line)
    (work / "bench_inference.json").write_text(
        json.dumps(
            {
                "threads": threads,
                "torch_threads": torch_threads,
                "ort_threads": ort_threads,
                "load_before": load_before,
                "matmul_gflops": peak,
                "real_event_gflop": {k: v / 1e9 for k, v in flops.items()},
                "customers": n,
                "rows": {k: dict(zip(ROW_FIELDS, v, strict=True)) for k, v in rows.items()},
                "rss": rss,
                "self_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
