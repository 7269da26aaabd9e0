"""Creating and closing operations: the one code path the CLI and the query service's HTTP
routes both call.

Each change is written into ``ledger.operations`` and published on the compacted operations
topic (what ingest learns status from) before the transaction commits, so a refused publish
leaves no row that Kafka never saw. Closing also freezes the tally where it stands:

1. it locks the operation's chain head, which every aggregator batch of that operation locks
   first, so a batch in flight finishes before and a later batch waits, then sees the close;
2. it records in ``tlog.closures`` the log offset of the last event counted (the aggregator and
   a rebuild record any later event as late, `services.ledger.plan.is_late`);
3. it issues the final signed checkpoint, covering exactly the closed tally.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from schemas.canonical import GENESIS_HASH
from services.common import operations as ops
from services.common.settings import CommonSettings
from services.tlog import checkpoints
from services.tlog.keys import Signer

_LOCK_RECORD = "SELECT 1 FROM ledger.operations WHERE operation_id = $1 FOR UPDATE"
# Create-or-lock, as the aggregator's `claim_heads` does (same row, same lock).
_LOCK_HEAD = (
    "INSERT INTO ledger.chain_heads AS h (operation_id, seq, hash) VALUES ($1, 0, $2)"
    " ON CONFLICT (operation_id) DO UPDATE SET seq = h.seq RETURNING seq"
)
_LAST_EVENT = (
    "SELECT kafka_partition, kafka_offset FROM ledger.events WHERE operation_id = $1"
    " ORDER BY seq DESC LIMIT 1"
)
_CLOSURE = (
    "INSERT INTO tlog.closures (operation_id, kafka_partition, last_offset, tree_size,"
    " closed_at, closed_by) VALUES ($1, $2, $3, $4, $5, $6)"
)


async def create(
    conn: asyncpg.Connection, settings: CommonSettings, record: ops.OperationRecord
) -> ops.OperationRecord:
    """Store and publish a new operation; `OperationConflict` when it exists already."""
    async with conn.transaction():
        # Row lock: two admins creating the same operation cannot both succeed.
        if await conn.fetchval(_LOCK_RECORD, record.operation_id):
            raise ops.OperationConflict(f"operation {record.operation_id!r} already exists")
        await ops.store(conn, record)
        await ops.publish(settings, record)
    return record


async def close(
    conn: asyncpg.Connection,
    settings: CommonSettings,
    signer: Signer,
    operation_id: str,
    by: str,
) -> ops.OperationRecord:
    """Close an operation; `UnknownOperation` if never created, `OperationConflict` if closed."""
    async with conn.transaction():
        locked = await conn.fetchval(_LOCK_RECORD, operation_id)
        record = await ops.get(conn, operation_id) if locked else None
        if record is None:
            raise ops.UnknownOperation(f"unknown operation {operation_id!r}: create it first")
        closed = record.close(by, datetime.now(UTC))
        size = await conn.fetchval(_LOCK_HEAD, operation_id, GENESIS_HASH)
        last = await conn.fetchrow(_LAST_EVENT, operation_id)
        await conn.execute(
            _CLOSURE, operation_id, None if last is None else last["kafka_partition"],
            -1 if last is None else last["kafka_offset"], size, closed.closed_at, by,
        )  # fmt: skip
        await ops.store(conn, closed)
        await ops.publish(settings, closed)
        await checkpoints.on_close(conn, operation_id, signer)
    return closed
