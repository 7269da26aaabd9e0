"""Prometheus metrics of the query service, and the ASGI middleware that records requests."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "opsledger_query_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "opsledger_query_request_seconds",
    "Time to the first byte of the answer",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STREAM_CLIENTS = Gauge("opsledger_query_stream_clients", "Live-stream clients connected")
LISTENER_UP = Gauge("opsledger_query_listener_up", "1 while the LISTEN connection is up")


class MetricsMiddleware:
    """Count each request and time it to its first byte (a stream's start, not its end)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                LATENCY.labels(scope["method"], _route(scope)).observe(time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            REQUESTS.labels(scope["method"], _route(scope), str(status)).inc()


def _route(scope: Scope) -> str:
    # The route template, not the raw path: operation ids must not explode label cardinality.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
