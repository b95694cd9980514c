"""``journeyformer serve``: the settings of ``configs/serve.yaml`` -> a running service.

:func:`build_service` assembles the parts (bundle -> Predictor, store, triggers, stream
consumer) and :func:`serve_from_config` runs them under uvicorn until SIGINT/SIGTERM, then
stops the consumer and closes the store (the embedded store writes its snapshot).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from journeyformer.api import Predictor
from journeyformer.errors import ConfigError
from journeyformer.service.core import Encoder, ScoringService
from journeyformer.service.store import MemoryStore, RedisStore, Store
from journeyformer.service.triggers import triggers_from_config

log = logging.getLogger(__name__)

STORES = ("memory", "redis")


@dataclass
class Assembled:
    service: ScoringService
    consumer: Any = None  # journeyformer.service.stream.StreamConsumer when stream.enabled


def redis_client(url: str) -> Any:
    """A redis-py client for ``url`` (redis://host:port/db)."""
    from journeyformer.extras import require

    require("serve", "a Redis store, stream or sink")
    import redis

    return redis.Redis.from_url(url)


def build_service(cfg: Mapping[str, Any], predictor: Predictor | None = None) -> Assembled:
    """The service of ``cfg`` (plain values of configs/serve.yaml); the bundle's checksums are
    verified before anything is served (:func:`journeyformer.inference.bundle.load_bundle`)."""
    if predictor is None:
        data = {k: v for k, v in dict(cfg.get("data") or {}).items() if v is not None}
        predictor = Predictor.load(
            cfg["bundle"], threads=cfg.get("threads"), batch_size=int(cfg.get("batch_size", 64)),
            graph=str(cfg.get("graph", "auto")), parallel=str(cfg.get("parallel", "auto")),
            data=data, segments=cfg.get("segments"),
        )  # fmt: skip
    encoder = Encoder(predictor)
    state = dict(cfg.get("state") or {})
    kind = str(state.get("store", "memory"))
    if kind not in STORES:
        raise ConfigError(f"state.store={kind!r} is not one of {list(STORES)}")
    url = (cfg.get("redis") or {}).get("url")
    prefix = str((cfg.get("redis") or {}).get("prefix", "jf:"))
    client = redis_client(url) if url else None
    if kind == "redis":
        if client is None:
            raise ConfigError("state.store=redis needs redis.url (e.g. redis://127.0.0.1:6379/0)")
        store: Store = RedisStore(encoder.new_state, client, prefix)
    else:
        store = MemoryStore(encoder.new_state, state.get("path"), bool(state.get("fsync", False)))
        if store.replayed:
            log.info("state: replayed %d journaled events onto the snapshot", store.replayed)
    triggers = triggers_from_config(cfg.get("triggers"), client)
    service = ScoringService(predictor, store, encoder, as_of=str(cfg.get("as_of", "now")), triggers=triggers, top_k=int(cfg.get("top_k", 3)))
    consumer = None
    stream = dict(cfg.get("stream") or {})
    if stream.get("enabled"):
        from journeyformer.service.stream import RedisStreamSource, StreamConsumer

        if client is None:
            raise ConfigError("stream.enabled=true needs redis.url")
        source = RedisStreamSource(
            client, str(stream.get("key", "jf:events")), str(stream.get("group", "journeyformer")),
            str(stream.get("consumer") or f"{socket.gethostname()}-{os.getpid()}"), dead_letter=str(stream.get("dead_letter", "jf:events:dead")),
            claim_idle_ms=int(stream.get("claim_idle_ms", 60_000)),
        )  # fmt: skip
        consumer = StreamConsumer(service, source, batch=int(stream.get("batch", 256)), block_ms=int(stream.get("block_ms", 1000)))
    return Assembled(service, consumer)


def serve_from_config(cfg: Mapping[str, Any]) -> None:
    """Run the service of ``cfg`` on ``host:port`` until stopped."""
    from journeyformer.extras import require

    require("serve", "journeyformer serve")
    import uvicorn

    from journeyformer.service.app import create_app

    parts = build_service(cfg)
    store = parts.service.store

    stopping = threading.Event()
    every = float((cfg.get("state") or {}).get("snapshot_every_s") or 0)

    def snapshots() -> None:  # bounds the journal (and the replay at start) of a long run
        while not stopping.wait(every):
            store.snapshot()  # type: ignore[union-attr]

    def start() -> None:
        if parts.consumer is not None:
            parts.consumer.start()
        if every > 0 and isinstance(store, MemoryStore) and store.path is not None:
            threading.Thread(target=snapshots, name="journeyformer-snapshot", daemon=True).start()

    def stop() -> None:
        stopping.set()
        if parts.consumer is not None:
            parts.consumer.stop()
        store.close()
        log.info("serve: stopped; state closed (%d customers)", len(store))

    extra = (lambda: parts.consumer.metrics()) if parts.consumer is not None else None
    app = create_app(parts.service, on_start=start, on_stop=stop, extra_metrics=extra)
    host, port = str(cfg.get("host", "127.0.0.1")), int(cfg.get("port", 8000))
    log.info("serve: %s on http://%s:%d (store %s)", cfg["bundle"], host, port, (cfg.get("state") or {}).get("store", "memory"))
    uvicorn.run(app, host=host, port=port, log_level=str(cfg.get("log_level", "warning")), access_log=False)
