"""Events that reach the ledger after their operation closed: recorded, never chained or counted.

The rule is `services.ledger.plan.is_late`; this module reads the closures it needs (in the
batch's transaction, after the batch locked the operations' chain heads, which closing also
locks, so a batch sees a close that committed before it) and writes what it decided.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.common.db import LEDGER_SCHEMA
from services.ledger.plan import LATE_REASON, Closure
from services.ledger.records import PreparedEvent
from services.ledger.schema import ident

CLOSURES = (
    "SELECT operation_id, last_offset FROM tlog.closures WHERE operation_id = ANY($1::text[])"
)

_INSERT = """
INSERT INTO {s}.late_events (event_id, operation_id, type, occurred_at, recorded_at, principal,
    role, body, content_hash, kafka_partition, kafka_offset, kafka_index, reason)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
    $6::text[], $7::text[], $8::jsonb[], $9::text[], $10::int[], $11::bigint[], $12::int[],
    $13::text[])
ON CONFLICT (event_id) DO NOTHING
"""


async def closures(conn: asyncpg.Connection, operations: Sequence[str]) -> dict[str, Closure]:
    """The closures of ``operations`` (only the closed ones appear)."""
    rows = await conn.fetch(CLOSURES, list(operations))
    return {r["operation_id"]: Closure(r["last_offset"]) for r in rows}


async def record(
    conn: asyncpg.Connection, events: Sequence[PreparedEvent], schema: str = LEDGER_SCHEMA
) -> None:
    """Store late events (a resend of one already stored changes nothing)."""
    if not events:
        return
    cols = list(zip(*(
        (e.event_id, e.operation_id, e.type, e.occurred_at, e.recorded_at, e.principal, e.role,
         e.body_json.decode(), e.content_hash, e.partition, e.offset, e.index, LATE_REASON)
        for e in events
    ), strict=True))  # fmt: skip
    await conn.execute(_INSERT.format(s=f'"{ident(schema)}"'), *(list(c) for c in cols))
