"""The ingest app factory: settings, producer and metrics wired once, at the edge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import generate_latest

from services.common.http import BodyLimitMiddleware, install
from services.common.metrics_server import MetricsServer
from services.ingest import capture_routes, docs
from services.ingest.fastlane import FastLane
from services.ingest.metrics import IngestMetrics, RequestMetricsMiddleware
from services.ingest.producer import EventProducer, KafkaEventProducer
from services.ingest.routes import Ingest, post_batch, post_event, router
from services.ingest.settings import IngestSettings, ingest_settings
from services.ingest.statuses import FixedStatuses, OperationsFollower, OperationStatuses


def create_app(
    settings: IngestSettings | None = None,
    producer: EventProducer | None = None,
    statuses: OperationStatuses | None = None,
) -> FastAPI:
    """Build the ingest app; tests pass a fake ``producer`` (and ``statuses``) through this
    same seam. With a real producer, operation statuses are followed on the operations topic;
    with a fake one and no ``statuses``, no operation is closed."""
    settings = settings or ingest_settings()
    if statuses is None:
        statuses = OperationsFollower(settings) if producer is None else FixedStatuses()
    producer = producer or KafkaEventProducer(settings)
    metrics = IngestMetrics()

    metrics_server = (
        None
        if settings.metrics_port is None
        else MetricsServer(
            lambda: generate_latest(metrics.registry), settings.metrics_host, settings.metrics_port
        )
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Side by side: neither bounded wait adds to the other's when the broker is down.
        await asyncio.gather(producer.start(), statuses.start())
        if metrics_server is not None:
            await metrics_server.start()
        try:
            yield
        finally:
            if metrics_server is not None:
                await metrics_server.stop()
            await statuses.stop()
            await producer.stop()

    app = FastAPI(
        title="opsledger ingest",
        version="1.0.0",
        description=docs.DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
        # Metrics are Prometheus (/metrics); FastAPI's OpenTelemetry hooks would only add a
        # per-request provider lookup.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.ingest = Ingest(settings, producer, metrics, statuses)
    install(app)
    app.include_router(router)
    app.include_router(capture_routes.router)
    fast_routes = {("POST", "/v1/events"): post_event, ("POST", "/v1/events/batch"): post_batch}
    app.add_middleware(FastLane, routes=fast_routes)
    # Outermost last: the body limit answers 413 before anything reads the body, and the
    # metrics middleware sees every answer, the 413s included.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)

    def openapi() -> dict[str, Any]:
        return docs.build_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
    return app
