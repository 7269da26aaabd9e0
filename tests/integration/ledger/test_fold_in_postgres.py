"""Generated streams through the real `BatchWriter` into PostgreSQL come out equal to `fold`.

Each stream is cut into batches at arbitrary points; every operation's totals equal the fold
of its events, and `verify` finds every operation intact.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from schemas.parsing import parse_event
from schemas.tally import fold
from services.audit.service import verify_operation
from services.common.db import create_pool
from services.common.migrate import upgrade
from services.ledger.writer import BatchWriter
from tests.unit.ledger.streams import Stream, cut, raw_records, renamed, streams

pytestmark = pytest.mark.integration

STREAMS = 300


def sample(n: int) -> list[tuple[Stream, list[int]]]:
    """``n`` generated (stream, cut points) pairs, drawn once (the checks run against PG)."""
    drawn: list[tuple[Stream, list[int]]] = []

    @settings(
        max_examples=n, database=None, phases=[Phase.generate], deadline=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(streams(), st.lists(st.integers(0, 30), max_size=6))
    def collect(stream: Stream, cuts: list[int]) -> None:
        drawn.append((stream, cuts))

    collect()
    return drawn


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    upgrade(database_url)
    p = await create_pool(database_url, max_size=2)
    yield p
    await p.close()


async def totals(conn: asyncpg.Connection, operation_id: str) -> dict[Any, int]:
    rows = await conn.fetch(
        "SELECT metric, detail, area, unit, day, value FROM ledger.totals"
        " WHERE operation_id = $1 AND value <> 0",
        operation_id,
    )
    return {(r["metric"], r["detail"], r["area"], r["unit"], r["day"]): r["value"] for r in rows}


async def test_generated_streams_through_the_writer_equal_the_fold(
    pool: asyncpg.Pool, unique_id: str
) -> None:
    started = time.monotonic()
    drawn = sample(STREAMS)
    checked = 0
    for n, (generated, cuts) in enumerate(drawn):
        stream = renamed(generated, f"fold-{unique_id}-{n}")
        topic = f"fold-{unique_id}-{n}"
        writer = BatchWriter(pool, topic=topic, consumer_group="fold-test", notify=False)
        for batch in cut(raw_records(stream), cuts):
            await writer.apply_records(batch)
        parsed = [parse_event(e) for e, _ in stream]
        async with pool.acquire() as conn:
            for op in sorted({e.operation_id for e in parsed}):
                expected = fold(e for e in parsed if e.operation_id == op).rows
                assert await totals(conn, op) == expected, (n, op)
                report = await verify_operation(conn, op)
                assert report.ok, (n, op, report)
                checked += 1
    assert len(drawn) == STREAMS and checked >= STREAMS
    print(
        f"{len(drawn)} streams, {checked} operations verified in {time.monotonic() - started:.1f} s"
    )
