"""Events written through the real batch writer into the real PostgreSQL, and read back."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from services.audit import repository as repo
from services.audit.service import verify_operation
from services.audit.verify import VerifyReport
from services.common.db import create_pool
from services.common.wire import Submission, encode_submission
from services.ledger.writer import BatchResult, BatchWriter

RECORDED_AT = "2026-11-23T09:00:00.123456+00:00"


@dataclass
class Ledger:
    """Applies submissions to the shared ledger as the aggregator would (own topic and group)."""

    pool: asyncpg.Pool
    name: str
    operations: set[str] = field(default_factory=set)
    _offsets: itertools.count[int] = field(default_factory=itertools.count)

    async def write(self, operation_id: str, events: list[dict[str, Any]]) -> BatchResult:
        """One submission of ``events`` (client dicts as ingest forwards them), one batch."""
        self.operations.add(operation_id)
        value = encode_submission(Submission(operation_id, RECORDED_AT, "pc-test", events))
        writer = BatchWriter(self.pool, topic=self.name, consumer_group=self.name, notify=False)
        return await writer.apply_records([(0, next(self._offsets), value)])

    async def verify(self, operation_id: str) -> VerifyReport:
        async with self.pool.acquire() as conn:
            return await verify_operation(conn, operation_id)

    async def metrics(self, operation_id: str) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            rows = await repo.totals(conn, operation_id)
        out: dict[str, int] = {}
        for (metric, *_), value in rows.items():
            out[metric] = out.get(metric, 0) + value
        return out

    async def bodies(self, operation_id: str) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            return [dict(r["body"]) for r in await repo.chain_rows(conn, operation_id)]


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database_url, max_size=4)
    yield p
    await p.close()


async def forget(pool: asyncpg.Pool, operations: list[str]) -> None:
    """Remove test operations from the shared ledger, so no other test's verify sees them."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE ledger.events DISABLE TRIGGER events_append_only")
        for table in ("events", "contributions", "voids", "totals", "chain_heads", "conflicts"):
            await conn.execute(
                f"DELETE FROM ledger.{table} WHERE operation_id = ANY($1::text[])",  # noqa: S608
                operations,
            )
        await conn.execute("ALTER TABLE ledger.events ENABLE TRIGGER events_append_only")


@pytest.fixture
async def ledger(pool: asyncpg.Pool, unique_id: str) -> AsyncIterator[Ledger]:
    ledger = Ledger(pool, f"contract-test-{unique_id}")
    yield ledger
    await forget(pool, sorted(ledger.operations))
