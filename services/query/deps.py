"""Dependencies wired once at the edge: settings, the pool, the change hub, who is calling.

Routes (including the audit routes in ``routes/audit.py``) take these as ``Annotated`` aliases:

    async def handler(pool: Pool, principal: Reader) -> ...
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from services.common.auth import Principal, Role, TokenCache
from services.common.http import authorize, bearer_token
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
    "StreamReader",
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


def _principal(request: Request, token: str | None, roles: tuple[Role, ...]) -> Principal:
    tokens: TokenCache = request.app.state.tokens
    return authorize(request, tokens, roles, token)


# 401 from services.common.http.authorize, 403 from services.common.access (as in ingest).
async def _require_reader(request: Request) -> Principal:
    return _principal(request, None, READ_ROLES)


async def _require_auditor(request: Request) -> Principal:
    return _principal(request, None, AUDIT_ROLES)


async def stream_reader(request: Request) -> Principal:
    """Like the reader check, but also accepts ``?access_token=`` (EventSource sets no headers)."""
    token = request.query_params.get("access_token")
    if request.headers.get("authorization") or not token:
        token = bearer_token(request)
    return _principal(request, token, READ_ROLES)


Settings = Annotated[QuerySettings, Depends(get_settings)]
Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Hub = Annotated[ChangeHub, Depends(get_hub)]
ReadsDep = Annotated[Reads, Depends(get_reads)]
# supervisor (its operations), auditor and admin (all operations)
Reader = Annotated[Principal, Depends(_require_reader)]
StreamReader = Annotated[Principal, Depends(stream_reader)]
# auditor and admin only: history, verify, export
Auditor = Annotated[Principal, Depends(_require_auditor)]
