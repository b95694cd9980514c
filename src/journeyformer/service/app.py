"""The HTTP app of ``journeyformer serve`` (FastAPI on uvicorn): ``POST /events``,
``GET /customers/{id}``, ``POST /score``, ``/health``, ``/metrics`` and ``/openapi.json``
(docs/service.md#endpoints).

Bad input gets a 422 whose ``detail`` is the batch job's one-line message (the same
validation); an unexpected error is a 500 with its message, logged with its traceback, and the
worker goes on serving.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from journeyformer import __version__
from journeyformer.service.core import ScoringService
from journeyformer.service.triggers import rows

log = logging.getLogger(__name__)

_BODY = Body(...)  # the request body: an event object, a list, or {"events": [...]}
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, float("inf"))


class _Latency:
    """Per-route request counts and a latency histogram (seconds), Prometheus-style."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(_BUCKETS))
        self.sums: dict[str, float] = defaultdict(float)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.counts[(route, status)] += 1
        self.sums[route] += seconds
        b = self.buckets[route]
        for i, edge in enumerate(_BUCKETS):
            if seconds <= edge:
                b[i] += 1


def create_app(service: ScoringService, *, on_start: Callable[[], None] | None = None, on_stop: Callable[[], None] | None = None, extra_metrics: Callable[[], dict[str, float]] | None = None) -> FastAPI:
    """The app over ``service``; ``on_start``/``on_stop`` run in its lifespan (the stream
    consumer, the store's snapshot)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        if on_start is not None:
            on_start()
        try:
            yield
        finally:
            if on_stop is not None:
                on_stop()

    app = FastAPI(title="journeyformer", version=__version__, lifespan=lifespan, summary="Real-time customer scores over a journeyformer bundle")
    latency = _Latency()

    def timed(inner: Any) -> Any:
        """A plain ASGI middleware (Starlette's BaseHTTPMiddleware costs about a millisecond
        per request): the route's latency and status into :class:`_Latency`."""

        async def asgi(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            start, status = time.perf_counter(), [500]

            async def sending(message: dict) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await inner(scope, receive, sending)
            finally:
                route = scope.get("route")
                latency.observe(getattr(route, "path", "other"), status[0], time.perf_counter() - start)

        return asgi

    app.add_middleware(timed)

    @app.exception_handler(ValueError)  # JourneyformerError included
    async def bad_input(request: Request, err: ValueError) -> JSONResponse:
        service.counters["requests_rejected"] += 1
        return JSONResponse({"detail": str(err)}, status_code=422)

    @app.exception_handler(Exception)
    async def failed(request: Request, err: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {type(err).__name__}: {err}"}, status_code=500)

    @app.post("/events", summary="Apply events to the customers' state")
    async def post_events(payload: dict[str, Any] | list[dict[str, Any]] = _BODY, score: bool = False) -> dict[str, Any]:
        return service.ingest(_events(payload), score=score)

    @app.get("/customers/{customer_id}", summary="A customer's current scores")
    async def get_customer(customer_id: str, as_of: str | None = None) -> Any:
        frame, missing = service.customers([customer_id], as_of)
        if missing:
            return JSONResponse({"detail": f"customer {customer_id!r}: no events received; POST /events first"}, status_code=404)
        return rows(frame)[0]

    @app.post("/score", summary="Score events without state (the Python API's answer)")
    async def post_score(payload: dict[str, Any] | list[dict[str, Any]] = _BODY) -> dict[str, Any]:
        as_of = payload.get("as_of") if isinstance(payload, dict) else None
        frame, without = service.score_events(_events(payload), as_of)
        return {"predictions": rows(frame), "without_history": without}

    @app.get("/health", summary="Liveness and what is served")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "bundle": str(service.predictor.bundle.path), "customers": len(service.store), "version": __version__}

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics() -> str:
        lines = []
        for name, value in service.counters.items():
            lines += [f"# TYPE journeyformer_{name}_total counter", f"journeyformer_{name}_total {value}"]
        lines += ["# TYPE journeyformer_customers gauge", f"journeyformer_customers {len(service.store)}"]
        for name, value in (extra_metrics() if extra_metrics else {}).items():
            lines.append(f"journeyformer_{name} {value}")
        lines.append("# TYPE journeyformer_requests_total counter")
        for (route, status), n in sorted(latency.counts.items()):
            lines.append(f'journeyformer_requests_total{{route="{route}",status="{status}"}} {n}')
        lines.append("# TYPE journeyformer_request_seconds histogram")
        for route, b in sorted(latency.buckets.items()):
            for edge, n in zip(_BUCKETS, b, strict=True):
                le = "+Inf" if edge == float("inf") else repr(edge)
                lines.append(f'journeyformer_request_seconds_bucket{{route="{route}",le="{le}"}} {n}')
            lines.append(f'journeyformer_request_seconds_sum{{route="{route}"}} {latency.sums[route]}')
            lines.append(f'journeyformer_request_seconds_count{{route="{route}"}} {b[-1]}')
        return "\n".join(lines) + "\n"

    return app


def _events(payload: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of a request body: an object, a list, or ``{"events": [...]}``."""
    if isinstance(payload, list):
        return payload
    if "events" in payload:
        events = payload["events"]
        if not isinstance(events, list):
            raise ValueError(f"events: `events` must be a list of event objects, got {type(events).__name__}")
        return events
    return [payload]


__all__ = ["create_app"]
