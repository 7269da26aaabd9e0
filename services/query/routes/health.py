"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from services.common.problems import ProblemError
from services.query import repository
from services.query.deps import Hub, Pool, Settings
from services.query.hub import ChangeHub
from services.query.metrics import LISTENER_UP, STREAM_CLIENTS
from services.query.openapi import problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: problem("The database did not answer in time.")})
async def readyz(pool: Pool, hub: Hub, settings: Settings) -> dict[str, object]:
    """The database answers within ``ready_timeout_s`` (503 otherwise)."""
    try:
        async with asyncio.timeout(settings.ready_timeout_s):
            async with pool.acquire() as conn:
                await repository.ping(conn)
    except (TimeoutError, OSError, Exception) as exc:  # noqa: BLE001 - any failure means not ready
        raise ProblemError(
            503, "Not ready", detail=f"database: {type(exc).__name__}: {exc}", kind="not-ready"
        ) from exc
    return {"status": "ready", "database": "ok", "live_updates": hub.connected}


def render_metrics(hub: ChangeHub) -> bytes:
    """Prometheus text exposition, with the live gauges read now."""
    STREAM_CLIENTS.set(hub.subscribers)
    LISTENER_UP.set(1 if hub.connected else 0)
    return generate_latest()


@router.get("/metrics", include_in_schema=False)
async def metrics(hub: Hub, settings: Settings) -> Response:
    """Prometheus text exposition (404 here when a metrics port of its own is configured)."""
    if settings.metrics_port is not None:
        raise ProblemError(404, "Not Found", detail="metrics are served on the metrics port")
    return Response(render_metrics(hub), media_type=CONTENT_TYPE_LATEST)
