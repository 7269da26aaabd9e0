"""Prometheus metrics of one ingest app: requests, accepted and rejected events, produce latency."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Routes are labelled by template; anything else is "other", so a scanner cannot blow up
# the label set.
ROUTES = frozenset(
    {"/v1/events", "/v1/events/batch", "/healthz", "/readyz", "/metrics", "/openapi.json"}
)


class IngestMetrics:
    """The metric families, in their own registry (one per app, so tests can build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ingest_requests",
            "HTTP requests answered, by route and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.accepted = Counter(
            "ingest_events_accepted",
            "Events acknowledged by the broker.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "ingest_events_rejected",
            "Events refused, by reason (contract, forbidden, unavailable, ...).",
            ["reason"],
            registry=self.registry,
        )
        self.produce_seconds = Histogram(
            "ingest_produce_seconds",
            "Time from producing a record to the broker's acknowledgement.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "ingest_request_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )


class RequestMetricsMiddleware:
    """Count every answer by route and status, and time it (pure ASGI: no per-request objects)."""

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # Labelled children looked up once: `labels()` takes a lock and builds a key each call.
        self._seconds = {r: metrics.request_seconds.labels(r) for r in (*ROUTES, "other")}
        self._answers: dict[tuple[str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in ROUTES else "other"
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            answers = self._answers.get((route, status))
            if answers is None:  # at most |ROUTES| x the status codes the app uses
                answers = self.metrics.requests.labels(route, str(status))
                self._answers[(route, status)] = answers
            answers.inc()
            self._seconds[route].observe(time.perf_counter() - started)
