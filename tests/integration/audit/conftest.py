"""Fixtures of the audit integration tests: the real ledger written by the aggregator's writer,
a real query server, real Kafka topics private to each test."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.examples import example_events
from services.common.auth import Role
from services.common.db import create_pool
from services.common.migrate import upgrade
from services.common.wire import Submission, encode_submission
from services.devtools.asgi import serve_in_process
from services.devtools.procs import free_port
from services.ledger.writer import BatchWriter
from services.query.app import create_app
from services.query.settings import QuerySettings
from services.stack.devissuer.tokens import dev_token

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def operation_events(operation_id: str) -> list[dict[str, Any]]:
    """The contract's 13 sample events (every kind, one void) with fresh ids for one operation."""
    events = example_events()
    ids = {e["event_id"]: str(uuid.uuid4()) for e in events}
    out = []
    for e in events:
        e = copy.deepcopy(e)
        e["event_id"] = ids[e["event_id"]]
        e["operation_id"] = operation_id
        if e["type"] == "event_voided":
            e["payload"]["voided_event_id"] = ids[e["payload"]["voided_event_id"]]
        out.append(e)
    return out


def submissions(
    operation_id: str, events: list[dict[str, Any]], *, per: int = 3, start: datetime = T0
) -> list[bytes]:
    """Record values: ``per`` events per submission, recorded a minute apart."""
    return [
        encode_submission(
            Submission(
                operation_id=operation_id,
                recorded_at=(start + timedelta(minutes=i)).isoformat(),
                principal="field-officer-1",
                events=events[at : at + per],
            )
        )
        for i, at in enumerate(range(0, len(events), per))
    ]


@dataclass
class Live:
    """Applies records to the live ledger as the aggregator would, for one private topic."""

    pool: asyncpg.Pool
    topic: str
    group: str

    async def apply(self, records: list[tuple[int, int, bytes]]) -> None:
        writer = BatchWriter(self.pool, topic=self.topic, consumer_group=self.group, notify=False)
        await writer.apply_records(records)

    async def apply_values(self, values: list[bytes], partition: int = 0) -> None:
        """Values at made-up consecutive offsets (no broker needed for chain/verify tests)."""
        rows = await self.pool.fetchval(
            "SELECT COALESCE(MAX(last_offset), -1) FROM ledger.consumer_offsets"
            " WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
            self.group,
            self.topic,
            partition,
        )
        await self.apply([(partition, rows + 1 + i, v) for i, v in enumerate(values)])


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database_url, max_size=6)
    yield p
    await p.close()


@pytest.fixture
def op_id(unique_id: str) -> str:
    return f"audit-{unique_id}"


@pytest.fixture
def live(pool: asyncpg.Pool, unique_id: str) -> Live:
    return Live(pool, f"audit-test-{unique_id}", f"audit-test-{unique_id}")


async def forget(pool: asyncpg.Pool, operations: list[str]) -> None:
    """Remove test operations from the shared ledger (tampered ones would fail others' verify)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE ledger.events DISABLE TRIGGER events_append_only")
        for table in ("events", "contributions", "voids", "totals", "chain_heads", "conflicts"):
            await conn.execute(
                f"DELETE FROM ledger.{table} WHERE operation_id = ANY($1::text[])",  # noqa: S608
                operations,
            )
        await conn.execute("ALTER TABLE ledger.events ENABLE TRIGGER events_append_only")


@pytest.fixture
async def filled(live: Live, op_id: str) -> AsyncIterator[list[dict[str, Any]]]:
    """An operation with the 13 sample events applied live; returns the client events."""
    events = operation_events(op_id)
    await live.apply_values(submissions(op_id, events))
    yield events
    await forget(live.pool, [op_id])


async def migrate_database(dsn: str) -> None:
    """Bring a fresh database to the current schema with the project's migrations."""
    upgrade(dsn)


# ---- Kafka ------------------------------------------------------------------------------


@pytest.fixture
async def topic(kafka_bootstrap: str, unique_id: str) -> AsyncIterator[str]:
    """A 3-partition topic private to one test, deleted after it."""
    name = f"audit-rebuild-{unique_id}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def produce(
    bootstrap: str, topic: str, keyed: list[tuple[str, bytes]]
) -> list[tuple[int, int, bytes]]:
    """Produce (key, value) records in order; return their (partition, offset, value)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        out = []
        for key, value in keyed:
            meta = await producer.send_and_wait(topic, value, key=key.encode())
            out.append((meta.partition, meta.offset, value))
        return out
    finally:
        await producer.stop()


# ---- the query service over HTTP ----------------------------------------------------------


@pytest.fixture(scope="session")
def query_settings(database_url: str) -> QuerySettings:
    return QuerySettings(database_url=database_url, port=free_port())


@pytest.fixture(scope="session")
async def query_url(query_settings: QuerySettings) -> AsyncIterator[str]:
    """A query server (with the audit routes) running in this process for the session."""
    async with serve_in_process(create_app(query_settings), query_settings.port) as url:
        yield url


@pytest.fixture
async def client(query_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=query_url, timeout=20) as c:
        yield c


@pytest.fixture
def auth(query_settings: QuerySettings):  # type: ignore[no-untyped-def]
    """``auth(role, *operations, subject=...)`` -> Authorization headers."""

    def make(role: Role, *operations: str, subject: str | None = None) -> dict[str, str]:
        jwt = dev_token(role=role, operations=list(operations), subject=subject, ttl_s=600)
        return {"Authorization": f"Bearer {jwt}"}

    return make
