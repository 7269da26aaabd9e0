"""SQL of the audit side: chain rows, heads, totals and contributions of one ledger schema.

Every function takes the schema name so the same reads serve the live ``ledger`` and a
rebuild's shadow schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from schemas.tally import RowKey
from services.common.db import LEDGER_SCHEMA
from services.ledger.schema import ident

_ROW_COLUMNS = """
    e.seq, e.event_id, e.operation_id, e.type, e.schema_version, e.occurred_at, e.recorded_at,
    e.principal, e.officer_id, e.unit, e.area, e.body, e.prev_hash, e.hash,
    e.kafka_partition, e.kafka_offset, e.kafka_index,
    (v.void_event_id IS NOT NULL) AS voided, v.void_event_id AS voided_by
"""


async def chain_rows(
    conn: asyncpg.Connection, operation_id: str, *, schema: str = LEDGER_SCHEMA
) -> list[asyncpg.Record]:
    """Every event row of the operation in chain order, with whether (and by what) it is voided.

    ``body_text`` is the body exactly as stored (``json`` keeps its text): the bytes hashed.
    """
    s = ident(schema)
    return list(
        await conn.fetch(
            f"""SELECT {_ROW_COLUMNS}, e.body::text AS body_text FROM {s}.events e
                LEFT JOIN {s}.voids v ON v.target_event_id = e.event_id AND v.applied
                WHERE e.operation_id = $1 ORDER BY e.seq""",  # noqa: S608 - schema via ident()
            operation_id,
        )
    )


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """Filters of the history listing; None means no filter."""

    type: str | None = None
    area: str | None = None
    unit: str | None = None
    officer: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None


async def history_page(
    conn: asyncpg.Connection,
    operation_id: str,
    filters: HistoryFilter,
    *,
    after_seq: int = 0,
    limit: int = 100,
    schema: str = LEDGER_SCHEMA,
) -> tuple[list[asyncpg.Record], int | None]:
    """One page of history in chain order, and the cursor of the next page (None at the end)."""
    s = ident(schema)
    rows = await conn.fetch(
        f"""SELECT {_ROW_COLUMNS} FROM {s}.events e
            LEFT JOIN {s}.voids v ON v.target_event_id = e.event_id AND v.applied
            WHERE e.operation_id = $1 AND e.seq > $2
              AND ($3::text IS NULL OR e.type = $3)
              AND ($4::text IS NULL OR e.area = $4)
              AND ($5::text IS NULL OR e.unit = $5)
              AND ($6::text IS NULL OR e.officer_id = $6)
              AND ($7::timestamptz IS NULL OR e.occurred_at >= $7)
              AND ($8::timestamptz IS NULL OR e.occurred_at <= $8)
            ORDER BY e.seq LIMIT $9""",  # noqa: S608 - schema via ident()
        operation_id,
        after_seq,
        filters.type,
        filters.area,
        filters.unit,
        filters.officer,
        filters.occurred_from,
        filters.occurred_to,
        limit + 1,  # one more tells whether another page exists
    )
    page = list(rows[:limit])
    return page, (int(page[-1]["seq"]) if len(rows) > limit else None)


async def closure_offset(conn: asyncpg.Connection, operation_id: str) -> int | None:
    """The log offset the operation's tally froze at when it closed; None while open."""
    value = await conn.fetchval(
        "SELECT last_offset FROM tlog.closures WHERE operation_id = $1", operation_id
    )
    return None if value is None else int(value)


async def late_events(conn: asyncpg.Connection, operation_id: str) -> list[asyncpg.Record]:
    """``ledger.late_events`` of one operation, in log order."""
    return list(
        await conn.fetch(
            "SELECT event_id, type, occurred_at, recorded_at, principal, role, body,"
            " kafka_partition, kafka_offset, kafka_index, reason, noted_at"
            " FROM ledger.late_events WHERE operation_id = $1"
            " ORDER BY kafka_partition, kafka_offset, kafka_index",
            operation_id,
        )
    )


async def chain_head(
    conn: asyncpg.Connection, operation_id: str, *, schema: str = LEDGER_SCHEMA
) -> tuple[int, str] | None:
    """The recorded head (seq, hash) of the operation's chain."""
    row = await conn.fetchrow(
        f"SELECT seq, hash FROM {ident(schema)}.chain_heads WHERE operation_id = $1",  # noqa: S608
        operation_id,
    )
    return None if row is None else (int(row["seq"]), str(row["hash"]))


def _keyed(rows: list[asyncpg.Record]) -> dict[RowKey, int]:
    return {
        (r["metric"], r["detail"], r["area"], r["unit"], r["day"]): int(r["value"])
        for r in rows
        if r["value"]
    }


async def totals(
    conn: asyncpg.Connection, operation_id: str, *, schema: str = LEDGER_SCHEMA
) -> dict[RowKey, int]:
    """The projection's non-zero rows for the operation."""
    return _keyed(
        await conn.fetch(
            f"""SELECT metric, detail, area, unit, day, value FROM {ident(schema)}.totals
                WHERE operation_id = $1""",  # noqa: S608
            operation_id,
        )
    )


async def contribution_rows(
    conn: asyncpg.Connection, operation_id: str, *, schema: str = LEDGER_SCHEMA
) -> list[asyncpg.Record]:
    """Every stored contribution row of the operation (what verify recomputes one by one)."""
    return list(
        await conn.fetch(
            f"""SELECT event_id, metric, detail, area, unit, day, delta, occurred_at, recorded_at
                FROM {ident(schema)}.contributions WHERE operation_id = $1""",  # noqa: S608
            operation_id,
        )
    )


async def void_rows(
    conn: asyncpg.Connection, operation_id: str, *, schema: str = LEDGER_SCHEMA
) -> list[asyncpg.Record]:
    """Every stored void row sent under the operation, with its status."""
    return list(
        await conn.fetch(
            f"""SELECT void_event_id, target_event_id, applied
                FROM {ident(schema)}.voids WHERE operation_id = $1""",  # noqa: S608
            operation_id,
        )
    )


async def rollup_rows(
    conn: asyncpg.Connection, operation_id: str, *, schema: str = LEDGER_SCHEMA
) -> list[asyncpg.Record]:
    """Every stored time-travel rollup row of the operation (both grains)."""
    return list(
        await conn.fetch(
            f"""SELECT grain, occurred_bucket, recorded_bucket, metric, detail, area, unit, day,
                       value
                FROM {ident(schema)}.rollups WHERE operation_id = $1""",  # noqa: S608
            operation_id,
        )
    )


async def contribution_sums(
    conn: asyncpg.Connection,
    operation_id: str,
    *,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
    schema: str = LEDGER_SCHEMA,
) -> dict[RowKey, int]:
    """SUM(delta) of contributions per totals row, optionally up to a time on either timeline."""
    return _keyed(
        await conn.fetch(
            f"""SELECT metric, detail, area, unit, day, SUM(delta)::bigint AS value
                FROM {ident(schema)}.contributions
                WHERE operation_id = $1
                  AND ($2::timestamptz IS NULL OR occurred_at <= $2)
                  AND ($3::timestamptz IS NULL OR recorded_at <= $3)
                GROUP BY metric, detail, area, unit, day""",  # noqa: S608
            operation_id,
            as_of,
            known_at,
        )
    )


async def operations(conn: asyncpg.Connection, *, schema: str = LEDGER_SCHEMA) -> list[str]:
    """Every operation with events, a chain head or totals."""
    s = ident(schema)
    rows = await conn.fetch(
        f"""SELECT operation_id FROM {s}.chain_heads
            UNION SELECT DISTINCT operation_id FROM {s}.events
            UNION SELECT DISTINCT operation_id FROM {s}.totals
            ORDER BY 1"""  # noqa: S608
    )
    return [r["operation_id"] for r in rows]


def plain(row: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
    """A history row as JSON-ready data."""
    out: dict[str, Any] = {}
    for key, value in dict(row).items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif key in ("event_id", "voided_by") and value is not None:
            out[key] = str(value)
        else:
            out[key] = value
    return out
