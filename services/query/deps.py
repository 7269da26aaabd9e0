"""Dependencies wired once at the edge: settings, the pool, the change hub, who is calling.

Routes (including the audit routes in ``routes/audit.py``) take these as ``Annotated`` aliases:

    async def handler(pool: Pool, principal: Reader) -> ...
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from services.common.auth import Principal, Role
from services.common.http import authorize
from services.common.oidc import OidcVerifier
from services.query.hub import ChangeHub
from services.query.reads import Reads
from services.query.settings import QuerySettings

__all__ = [
    "AUDIT_ROLES",
    "READ_ROLES",
    "Auditor",
    "Hub",
    "Pool",
    "ReadsDep",
    "Reader",
    "Settings",
]

READ_ROLES: tuple[Role, ...] = ("supervisor", "auditor", "admin")
AUDIT_ROLES: tuple[Role, ...] = ("auditor", "admin")


# Every dependency here is `async def`: FastAPI runs a plain `def` dependency in a worker
# thread, which cost more than the whole cached read.
async def get_settings(request: Request) -> QuerySettings:
    """The settings the app was built with."""
    return _settings(request)


def _settings(request: Request) -> QuerySettings:
    settings: QuerySettings = request.app.state.settings
    return settings


async def get_pool(request: Request) -> asyncpg.Pool:
    """The process's PostgreSQL pool (opened by the app's lifespan)."""
    pool: asyncpg.Pool = request.app.state.pool
    return pool


async def get_hub(request: Request) -> ChangeHub:
    """The process's single LISTEN connection and its subscribers."""
    hub: ChangeHub = request.app.state.hub
    return hub


async def get_reads(request: Request) -> Reads:
    """The read use-cases (totals, freshness, audit logging) over the pool and cache."""
    reads: Reads = request.app.state.reads
    return reads


async def _principal(request: Request, roles: tuple[Role, ...]) -> Principal:
    verifier: OidcVerifier = request.app.state.verifier
    return await authorize(request, verifier, roles)


# 401 (and 503 when the issuer's keys cannot be had) from services.common.http.authorize,
# 403 from services.common.access (as in ingest). The stream takes its token from the
# Authorization header like every route: never from a URL.
async def _require_reader(request: Request) -> Principal:
    return await _principal(request, READ_ROLES)


async def _require_auditor(request: Request) -> Principal:
    return await _principal(request, AUDIT_ROLES)


Settings = Annotated[QuerySettings, Depends(get_settings)]
Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Hub = Annotated[ChangeHub, Depends(get_hub)]
ReadsDep = Annotated[Reads, Depends(get_reads)]
# supervisor (its operations), auditor and admin (all operations)
Reader = Annotated[Principal, Depends(_require_reader)]
# auditor and admin only: history, verify, export
Auditor = Annotated[Principal, Depends(_require_auditor)]
