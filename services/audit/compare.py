"""Comparing a rebuilt projection with the live one: totals row by row, chain heads, offsets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.common.db import LEDGER_SCHEMA
from services.ledger.schema import ident


@dataclass(frozen=True, slots=True)
class TotalsDifference:
    """A totals row whose live value differs from the value rebuilt from the log."""

    operation_id: str
    metric: str
    detail: str
    area: str
    unit: str
    day: str
    live: int
    rebuilt: int


@dataclass(frozen=True, slots=True)
class HeadDifference:
    """A chain head (seq, hash) that differs: live events that the log does not reproduce."""

    operation_id: str
    live: tuple[int, str] | None
    rebuilt: tuple[int, str] | None


async def shadow_operations(conn: asyncpg.Connection, shadow: str) -> list[str]:
    """Operations the rebuild saw in the log."""
    rows = await conn.fetch(
        f"SELECT operation_id FROM {ident(shadow)}.chain_heads ORDER BY 1"  # noqa: S608
    )
    return [r["operation_id"] for r in rows]


async def compare_totals(
    conn: asyncpg.Connection,
    shadow: str,
    operations: Sequence[str] | None,
    *,
    known_at: datetime | None = None,
    live: str = LEDGER_SCHEMA,
) -> list[TotalsDifference]:
    """Rows whose value differs; ``operations`` None compares every operation of either side.

    With ``known_at`` the live side is what the ledger knew then (contributions recorded by
    that time), which is what a rebuild ``--until`` that time must reproduce.
    """
    s, lv = ident(shadow), ident(live)
    columns = "operation_id, metric, detail, area, unit, day"
    if known_at is None:
        live_rows = f"SELECT {columns}, value FROM {lv}.totals"  # noqa: S608
    else:
        live_rows = (
            f"SELECT {columns}, SUM(delta) AS value FROM {lv}.contributions"  # noqa: S608
            f" WHERE recorded_at <= $2 GROUP BY {columns}"
        )
    rows = await conn.fetch(
        f"""SELECT operation_id, metric, detail, area, unit, day,
                   COALESCE(l.value, 0)::bigint AS live, COALESCE(r.value, 0)::bigint AS rebuilt
            FROM ({live_rows}) l
            FULL JOIN (SELECT * FROM {s}.totals) r
                USING (operation_id, metric, detail, area, unit, day)
            WHERE ($1::text[] IS NULL OR operation_id = ANY($1::text[]))
              AND COALESCE(l.value, 0) <> COALESCE(r.value, 0)
            ORDER BY operation_id, metric, detail, area, unit, day""",  # noqa: S608
        None if operations is None else list(operations),
        *([] if known_at is None else [known_at]),
    )
    return [
        TotalsDifference(
            r["operation_id"],
            r["metric"],
            r["detail"],
            r["area"],
            r["unit"],
            r["day"].isoformat(),
            int(r["live"]),
            int(r["rebuilt"]),
        )  # fmt: skip
        for r in rows
    ]


async def compare_heads(
    conn: asyncpg.Connection,
    shadow: str,
    operations: Sequence[str] | None,
    *,
    live: str = LEDGER_SCHEMA,
) -> list[HeadDifference]:
    """Operations whose chain head differs (equal heads mean equal chains, hash by hash)."""
    s, lv = ident(shadow), ident(live)
    rows = await conn.fetch(
        f"""SELECT operation_id, l.seq AS l_seq, l.hash AS l_hash, r.seq AS r_seq, r.hash AS r_hash
            FROM (SELECT * FROM {lv}.chain_heads WHERE seq > 0) l
            FULL JOIN (SELECT * FROM {s}.chain_heads WHERE seq > 0) r USING (operation_id)
            WHERE ($1::text[] IS NULL OR operation_id = ANY($1::text[]))
              AND (l.seq IS DISTINCT FROM r.seq OR l.hash IS DISTINCT FROM r.hash)
            ORDER BY operation_id""",  # noqa: S608
        None if operations is None else list(operations),
    )
    return [
        HeadDifference(
            r["operation_id"],
            None if r["l_seq"] is None else (int(r["l_seq"]), r["l_hash"]),
            None if r["r_seq"] is None else (int(r["r_seq"]), r["r_hash"]),
        )
        for r in rows
    ]


async def live_positions(
    conn: asyncpg.Connection, group: str, topic: str, *, live: str = LEDGER_SCHEMA
) -> dict[int, int]:
    """Next offset to apply per partition, as the live aggregator has recorded it."""
    rows = await conn.fetch(
        f"""SELECT partition, last_offset FROM {ident(live)}.consumer_offsets
            WHERE consumer_group = $1 AND topic = $2""",  # noqa: S608
        group,
        topic,
    )
    return {r["partition"]: int(r["last_offset"]) + 1 for r in rows}
