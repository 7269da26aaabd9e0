"""Fixtures of the query integration tests: a real query server over the real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from services.common.auth import Role
from services.common.db import create_pool
from services.query.app import create_app
from services.query.settings import QuerySettings
from services.stack.devissuer.tokens import dev_token

from .ledger import Ledger


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # leave Ctrl-C to pytest
        yield


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def query_settings(database_url: str) -> QuerySettings:
    """Settings with a topic and consumer group private to this test session."""
    suffix = secrets.token_hex(4)
    return QuerySettings(
        database_url=database_url,
        topic=f"query-test-{suffix}",
        consumer_group=f"query-test-{suffix}",
        port=_free_port(),
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
    config = uvicorn.Config(
        query_app,
        host="127.0.0.1",
        port=query_settings.port,
        log_level="warning",
        lifespan="on",
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    assert server.started, "the query server did not start within 10 s"
    yield f"http://127.0.0.1:{query_settings.port}"
    server.should_exit = True
    await task


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
