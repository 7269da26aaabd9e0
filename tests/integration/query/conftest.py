"""Fixtures of the query integration tests: a real query server over the real PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.common.auth import Role
from services.common.db import create_pool
from services.devtools.asgi import serve_in_process
from services.devtools.procs import free_port
from services.query.app import create_app
from services.query.settings import QuerySettings
from services.stack.devissuer.tokens import dev_token

from .ledger import Ledger


@pytest.fixture(scope="session")
def query_settings(database_url: str) -> QuerySettings:
    """Settings with a topic and consumer group private to this test session."""
    suffix = secrets.token_hex(4)
    return QuerySettings(
        database_url=database_url,
        topic=f"query-test-{suffix}",
        consumer_group=f"query-test-{suffix}",
        port=free_port(),
        stream_heartbeat_s=1.0,
        stream_min_interval_s=0.0,
    )


@pytest.fixture(scope="session")
def query_app(query_settings: QuerySettings) -> FastAPI:
    """The app under test (its state holds the pool and the change hub once served)."""
    return create_app(query_settings)


@pytest.fixture(scope="session")
async def query_url(query_settings: QuerySettings, query_app: FastAPI) -> AsyncIterator[str]:
    """Base URL of a query server running in this process for the whole session."""
    async with serve_in_process(query_app, query_settings.port) as url:
        yield url


@pytest.fixture(scope="session")
async def ledger(query_settings: QuerySettings) -> AsyncIterator[Ledger]:
    """Writes events into the ledger as the aggregator would, for the session's topic."""
    pool = await create_pool(query_settings.database_url, max_size=2)
    yield Ledger(pool, query_settings.topic, query_settings.consumer_group)
    await pool.close()


@pytest.fixture
async def client(query_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=query_url, timeout=10) as c:
        yield c


@pytest.fixture
def token(query_settings: QuerySettings):  # type: ignore[no-untyped-def]
    """``token(role, *operations)`` -> Authorization headers."""

    def make(role: Role, *operations: str) -> dict[str, str]:
        jwt = dev_token(role=role, operations=list(operations), ttl_s=600)
        return {"Authorization": f"Bearer {jwt}"}

    return make


@pytest.fixture
def op_id(unique_id: str) -> str:
    """An operation id private to one test."""
    return f"qtest-{unique_id}"
