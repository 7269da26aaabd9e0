"""The query service's routes, one module per concept, each exposing ``router: APIRouter``."""

from __future__ import annotations

from fastapi import APIRouter

from services.query.routes import (
    audit,
    auth_config,
    dashboard,
    health,
    operations,
    records,
    stream,
    summary,
    tlog,
)


def routers() -> list[APIRouter]:
    """Every route module's ``router``, in the order the app includes them."""
    modules = (health, operations, records, summary, stream, audit, tlog, auth_config, dashboard)
    return [m.router for m in modules]
