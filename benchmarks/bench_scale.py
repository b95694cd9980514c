"""Scale-out figures: predict throughput and peak memory against input size, local vs Ray, and
the peak memory of training from the sample store.

    python benchmarks/bench_scale.py data --events 1e6 1e7 3e7 1e8 --root /big/disk/scale
    python benchmarks/bench_scale.py predict --bundle B --root /big/disk/scale --events 1e6 1e7
    python benchmarks/bench_scale.py ray --bundle B --root /big/disk/scale --events 1e7 --workers 2
    python benchmarks/bench_scale.py train --root /big/disk/scale --events 1e6 3e7 --max-steps 200

Not a test. Each measurement runs in a child process; peak memory is that process's maximum
resident set (``wait4``'s ru_maxrss; for Ray, the driver plus the largest worker is printed
from Ray's own processes, see ``ray``). ``--src DIR`` puts another checkout's ``src`` first on
the child's path (``git archive main src | tar -x -C DIR``), so the same command measures the
code before a change. Data: the synthetic generator in pieces (``intensity=0.4``, about 20
events per customer), so generating 100M events needs the memory of one piece. Wall and CPU
seconds are both printed: on a shared machine, wall time depends on what else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVENTS_PER_CUSTOMER = 20.4  # intensity 0.4 over 365 days (measured on 100,000 customers)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_child(code: str, src: str | None = None, env: dict | None = None) -> dict:
    """Run ``code`` in a fresh Python; returns its last stdout line (JSON) plus peak RSS (MB),
    wall and CPU seconds of the child."""
    environ = {**os.environ, **(env or {})}
    if src:
        environ["PYTHONPATH"] = f"{src}:{environ.get('PYTHONPATH', '')}"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=environ, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"child failed ({status}):\n{code}\n{out[-2000:]}")
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    record = json.loads(lines[-1]) if lines else {}
    record.update(peak_mb=usage.ru_maxrss / 1024, wall_s=time.perf_counter() - start,
                  cpu_s=usage.ru_utime + usage.ru_stime)  # fmt: skip
    return record


def data_dir(root: Path, events: float) -> Path:
    return root / f"events_{events:.0e}".replace("+", "")


def cmd_data(args: argparse.Namespace) -> None:
    for n in args.events:
        customers = int(n / EVENTS_PER_CUSTOMER)
        out = data_dir(args.root, n)
        code = (
            "import json, polars as pl\n"
            "from journeyformer.synthetic.journeys import SyntheticConfig\n"
            "from journeyformer.synthetic.pieces import write_in_pieces\n"
            f"d = write_in_pieces(SyntheticConfig(n_customers={customers}, intensity=0.4, seed=1), "
            f"{str(out)!r}, piece_customers={args.piece}, generated_dir={str(args.root)!r})\n"
            "n = pl.scan_parquet(str(d['events']) + '/*.parquet').select(pl.len()).collect().item()\n"
            "print(json.dumps({'events': n}))\n"
        )
        r = run_child(code)
        print(f"data {n:.0e}: {r['events']:,} events, {customers:,} customers -> {out}/events; "
              f"peak {r['peak_mb']:,.0f} MB, wall {r['wall_s']:.0f} s", flush=True)  # fmt: skip


def cmd_predict(args: argparse.Namespace) -> None:
    print(f"predict (local engine), chunk_customers={args.chunk}, cpu: {cpu_name()}, "
          f"{os.cpu_count()} cores, src={args.src or 'this checkout'}", flush=True)  # fmt: skip
    print("| events | customers | wall s | cpu s | customers/s (wall) | peak MB |")
    print("|---:|---:|---:|---:|---:|---:|", flush=True)
    for n in args.events:
        with tempfile.TemporaryDirectory(dir=args.root) as tmp:
            code = (
                "import json\n"
                "from journeyformer.inference.job import predict_events\n"
                f"r = predict_events({args.bundle!r}, {str(data_dir(args.root, n) / 'events')!r}, "
                f"{tmp + '/p.parquet'!r}, chunk_customers={args.chunk}, progress=False)\n"
                "print(json.dumps({'customers': r.n_customers, 'events': r.n_events, 'seconds': r.seconds}))\n"
            )
            r = run_child(code, args.src)
        print(f"| {r['events']:,} | {r['customers']:,} | {r['seconds']:.0f} | {r['cpu_s']:.0f} | "
              f"{r['customers'] / r['seconds']:,.0f} | {r['peak_mb']:,.0f} |", flush=True)  # fmt: skip


def cmd_ray(args: argparse.Namespace) -> None:
    print(f"local vs ray ({args.workers} workers), cpu: {cpu_name()}, {os.cpu_count()} cores", flush=True)
    for n in args.events:
        inp = str(data_dir(args.root, n) / "events")
        with tempfile.TemporaryDirectory(dir=args.root) as tmp:
            local = run_child(
                "import json\nfrom journeyformer.inference.job import predict_events\n"
                f"r = predict_events({args.bundle!r}, {inp!r}, {tmp + '/p.parquet'!r}, "
                f"chunk_customers={args.chunk}, threads={args.workers}, progress=False)\n"
                "print(json.dumps({'customers': r.n_customers, 'seconds': r.seconds}))\n"
            )
            ray = run_child(
                "import json, ray\nfrom journeyformer.inference.ray_driver import predict_events_ray\n"
                f"ray.init(num_cpus={args.workers}, include_dashboard=False, log_to_driver=False)\n"
                f"r = predict_events_ray({args.bundle!r}, {inp!r}, {tmp + '/ray_out'!r}, "
                f"chunk_customers={args.chunk}, threads=1, "
                # one CPU of the cluster stays free for the read and shuffle tasks (check_cpus)
                f"engine={{'num_workers': {args.workers}, 'num_cpus': {(args.workers - 1) / args.workers}}})\n"
                "print(json.dumps({'customers': r.n_customers, 'seconds': r.seconds}))\n"
            )
        for name, r in (("local", local), (f"ray x{args.workers}", ray)):
            print(f"{n:.0e} events  {name:<8} {r['customers']:,} customers  {r['seconds']:.0f} s  "
                  f"{r['customers'] / r['seconds']:,.0f} customers/s  driver peak {r['peak_mb']:,.0f} MB",
                  flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, required=True, help="data and scratch (needs disk)")
    common.add_argument("--events", type=float, nargs="+", default=[1e6, 1e7, 3e7, 1e8])
    p = sub.add_parser("data", parents=[common])
    p.add_argument("--piece", type=int, default=100_000, help="customers generated at a time")
    for name in ("predict", "ray"):
        p = sub.add_parser(name, parents=[common])
        p.add_argument("--bundle", required=True)
        p.add_argument("--chunk", type=int, default=50_000, help="chunk_customers")
        p.add_argument("--src", default=None, help="another checkout's src/ (code before a change)")
        p.add_argument("--workers", type=int, default=2)
    p = sub.add_parser("train", parents=[common])
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--in-memory", type=float, default=1e7, help="also the in-memory path up to this size")
    p.add_argument("--override", nargs="*", default=[], help="data/labels overrides for build and train")
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    {"data": cmd_data, "predict": cmd_predict, "ray": cmd_ray, "train": cmd_train}[args.cmd](args)


def cmd_train(args: argparse.Namespace) -> None:
    """Build the sample store, then train the default model from it (``max_steps`` capped:
    memory is the point, not convergence); with ``--in-memory`` also the in-memory path."""
    print(f"training memory, default model, trainer.max_steps={args.max_steps}, cpu: {cpu_name()}", flush=True)
    print("| events | path | samples (train) | step | wall s | peak MB |")
    print("|---:|---|---:|---|---:|---:|", flush=True)
    for n in args.events:
        events = str(data_dir(args.root, n) / "events")
        store = str(args.root / f"store_{n:.0e}".replace("+", ""))
        data = [f"data.path={events}", "data.synthetic=null", *args.override]
        if not (Path(store) / "spec.json").exists():  # built once; --rebuild-store to measure again
            build = run_child(
                "import json\nfrom journeyformer.cli import main\n"
                f"main(['build-store', *{data!r}, 'data.store={store}'])\n"
                "from journeyformer.training.sample_store import SampleStore\n"
                f"s = SampleStore.open({store!r})\nprint(json.dumps({{'samples': sum(s.samples('train'))}}))\n"
            )
            print(f"| {n:,.0f} | store | {build['samples']:,} | build store | {build['wall_s']:.0f} | "
                  f"{build['peak_mb']:,.0f} |", flush=True)  # fmt: skip
        paths = [("store", [f"data.store={store}"])] + ([("in memory", [])] if n <= args.in_memory else [])
        for name, extra in paths:
            overrides = [*data, *extra, f"+trainer.max_steps={args.max_steps}", "trainer.max_epochs=1",
                         f"+trainer.val_check_interval={args.max_steps}", "+trainer.limit_val_batches=50",
                         "evaluate=false", "trainer.enable_progress_bar=false",
                         f"paths.checkpoint_dir={args.root / 'checkpoints'}", f"run_name=mem_{n:.0e}_{name[:2]}"]  # fmt: skip
            r = run_child(
                "from journeyformer.cli import main\n"
                f"main(['train', *{overrides!r}])\n"
            )
            print(f"| {n:,.0f} | {name} | | train {args.max_steps} steps | {r['wall_s']:.0f} | "
                  f"{r['peak_mb']:,.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
