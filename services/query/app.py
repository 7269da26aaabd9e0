"""The query service's app factory: pool, change listener, cache, routes, error shape, metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from services.common.db import create_pool
from services.common.http import install
from services.common.metrics_server import MetricsServer
from services.common.problems import problem_response
from services.query.cache import ReadCache
from services.query.hub import ChangeHub
from services.query.metrics import MetricsMiddleware
from services.query.openapi import forbid_nul_in_text_parameters, tidy_optional_parameters
from services.query.reads import Reads
from services.query.routes import routers
from services.query.routes.health import render_metrics
from services.query.settings import QuerySettings

log = logging.getLogger(__name__)


def create_app(
    settings: QuerySettings | None = None, *, extra_routers: Sequence[APIRouter] = ()
) -> FastAPI:
    """Build the read-side app; ``extra_routers`` are included after the built-in ones."""
    settings = settings or QuerySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await _open_pool(settings)
        hub = ChangeHub(
            settings.database_url,
            queue_size=settings.stream_queue_size,
            max_subscribers=settings.stream_max_clients,
        )
        await hub.start()
        cache = ReadCache(
            hub,
            enabled=settings.cache_totals,
            freshness_ttl_s=settings.freshness_ttl_s,
            max_age_s=settings.cache_max_age_s,
        )
        app.state.pool, app.state.hub = pool, hub
        app.state.reads = Reads(pool, cache, settings)
        metrics_server = None
        if settings.metrics_port is not None:
            metrics_server = MetricsServer(
                lambda: render_metrics(hub), settings.metrics_host, settings.metrics_port
            )
            await metrics_server.start()
        try:
            yield
        finally:
            if metrics_server is not None:
                await metrics_server.stop()
            await hub.stop()
            await pool.close()

    app = FastAPI(
        title="opsledger query",
        summary="Totals, breakdowns, as-of reads, live stream and dashboard of the ledger.",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.verifier = settings.verifier()
    install(app)
    _answer_503_when_database_is_down(app)
    _answer_422_when_a_parameter_does_not_fit(app)
    app.add_middleware(MetricsMiddleware)
    for router in [*routers(), *extra_routers]:
        app.include_router(router)
    _tidy_openapi(app)
    return app


# A database that is down, restarting or saturated: the caller should retry, it is not a bug.
_DATABASE_DOWN: tuple[type[Exception], ...] = (
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, starting up, statement timeout
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
)


def _answer_503_when_database_is_down(app: FastAPI) -> None:
    """503 problem with Retry-After (like /readyz) instead of a 500 when PostgreSQL is away."""

    async def unavailable(_: Request, exc: Exception) -> Response:
        return problem_response(
            503,
            "Database unavailable",
            detail=f"the ledger database did not answer ({type(exc).__name__}); retry shortly",
            kind="database-unavailable",
            headers={"Retry-After": "2"},
        )

    for error in _DATABASE_DOWN:
        app.add_exception_handler(error, unavailable)


def _answer_422_when_a_parameter_does_not_fit(app: FastAPI) -> None:
    """A value PostgreSQL cannot take (a NUL in a string, an integer past bigint) is the caller's
    mistake, so a 422 rather than a 500; routes bound what they can before it gets this far."""

    async def invalid(_: Request, exc: Exception) -> Response:
        return problem_response(
            422,
            "Invalid request",
            detail=f"a parameter holds a value the ledger cannot store or compare: {exc}",
            kind="invalid-request",
        )

    app.add_exception_handler(asyncpg.DataError, invalid)


def _tidy_openapi(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = forbid_nul_in_text_parameters(tidy_optional_parameters(build()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Release a connection to the pool without asyncpg's reset query (RESET ALL, UNLISTEN *,
    CLOSE ALL, advisory unlock: one more round trip after every read, which the reader waits
    for). The read side sets no session state on pooled connections: no SET, no LISTEN (the
    hub has its own connection), no session advisory lock, no holdable cursor. asyncpg still
    rolls back a transaction left open before calling this."""


async def _open_pool(settings: QuerySettings) -> asyncpg.Pool:
    kwargs: dict[str, Any] = {
        "max_size": settings.pool_max_size,
        "reset": _keep_session,
        "server_settings": {
            "application_name": "opsledger-query",
            "statement_timeout": str(settings.statement_timeout_ms),
        },
    }
    try:
        return await create_pool(settings.database_url, min_size=settings.pool_min_size, **kwargs)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        # Start anyway (not ready): /readyz says so until PostgreSQL is back.
        log.warning("database unreachable at start (%s); connecting lazily", exc)
        return await create_pool(settings.database_url, min_size=0, **kwargs)
