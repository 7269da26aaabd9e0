"""The aggregator process signs checkpoints of the trees it grows, and the last one at stop."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import pytest

from schemas.canonical import canonical_json
from services.tlog.keys import ledger_signer
from services.tlog.settings import TlogSettings
from services.tlog.verifier import Checkpoint, leaf_hash, open_checkpoint, root_of

from .harness import AggregatorProcess, Target, produce, submission, wait_applied
from .test_aggregator_pipeline import fresh_events

pytestmark = pytest.mark.integration


async def latest(db: str, op: str) -> Checkpoint | None:
    """The latest checkpoint of ``op``, its signature checked with the ledger's key."""
    key = ledger_signer(TlogSettings()).public
    note = await asyncpg_fetchval(
        db, "SELECT note FROM tlog.checkpoints WHERE operation_id = $1 ORDER BY size DESC", op
    )
    return None if note is None else open_checkpoint(note, key, f"{key.name}/{op}")


async def root_of_events(db: str, op: str) -> tuple[int, bytes]:
    """(size, root) of the tree recomputed from the operation's event bodies."""
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch(
            "SELECT body::text AS body FROM ledger.events WHERE operation_id = $1 ORDER BY seq", op
        )
    finally:
        await conn.close()
    hashes = [leaf_hash(canonical_json(json.loads(r["body"]))) for r in rows]
    return len(hashes), root_of(hashes)


async def asyncpg_fetchval(db: str, query: str, *args: object) -> str | None:
    conn = await asyncpg.connect(db)
    try:
        value = await conn.fetchval(query, *args)
    finally:
        await conn.close()
    return None if value is None else str(value)


async def test_checkpoints_while_events_arrive_and_at_stop(
    target: Target, aggregator: AggregatorProcess
) -> None:
    op = f"cp-{target.topic}"
    await aggregator.start()
    await produce(target, [(op, submission(fresh_events(op, 40)))])
    await wait_applied(target, 1)
    deadline = time.monotonic() + 20  # the interval is 2 s; the timer ticks every second
    cp = None
    while time.monotonic() < deadline:
        cp = await latest(target.database_url, op)
        if cp is not None:
            break
        await asyncio.sleep(0.25)
    assert cp is not None, f"no checkpoint within 20 s:\n{aggregator.tail()}"
    assert (cp.size, cp.root) == await root_of_events(target.database_url, op)
    # More events, then a stop before the next interval is up: the stop signs them.
    await produce(target, [(op, submission(fresh_events(op, 25)))])
    await wait_applied(target, 2)
    aggregator.stop()
    cp = await latest(target.database_url, op)
    assert cp is not None and cp.size == 65, aggregator.tail()
    assert (cp.size, cp.root) == await root_of_events(target.database_url, op)
