"""The dead-letter table (``dlq.dead_letters``): one row per record the ledger could not apply.

The writer inserts the rows of a batch's poison in the batch's own transaction, so a dead letter
is recorded exactly when the offset moves past its record; the source position is the key, so a
redelivery or a rebuild that meets the same record again changes nothing. Operators resolve a
dead letter once: ``replayed`` (re-published to the log, see `services.aggregator.dlq`) or
``discarded`` (with a note); the row stays, so the log's hole is explained forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from services.ledger.records import Poison

#: Open dead letters (not yet replayed or discarded) count towards the DLQ depth.
OPEN: Final = "dead"
REPLAYED: Final = "replayed"
DISCARDED: Final = "discarded"
MAX_REASON_CHARS: Final = 4000

INSERT: Final = """
    INSERT INTO dlq.dead_letters (topic, partition, "offset", reason, value)
    SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::text[], $5::bytea[])
    ON CONFLICT (topic, partition, "offset") DO NOTHING
"""


def stored_reason(reason: str) -> str:
    """A reason PostgreSQL can store: the database's own message may quote the refused text."""
    text = reason.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode()
    return text[:MAX_REASON_CHARS]


def insert_args(topic: str, poison: Sequence[Poison]) -> list[object]:
    """Arguments of `INSERT` for a batch's poison."""
    return [
        topic,
        [p.partition for p in poison],
        [p.offset for p in poison],
        [stored_reason(p.reason) for p in poison],
        [p.value for p in poison],
    ]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One row of ``dlq.dead_letters``."""

    topic: str
    partition: int
    offset: int
    reason: str
    value: bytes | None
    dead_at: datetime
    status: str
    resolved_at: datetime | None
    resolved_by: str | None
    note: str | None
    replay_partition: int | None
    replay_offset: int | None

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"


_COLUMNS = """topic, partition, "offset", reason, value, dead_at, status, resolved_at,
              resolved_by, note, replay_partition, replay_offset"""


def _row(r: asyncpg.Record) -> DeadLetter:
    return DeadLetter(*(r[i] for i in range(len(r))))


async def listing(
    conn: asyncpg.Connection | asyncpg.Pool,
    topic: str,
    *,
    status: str | None = OPEN,
    limit: int = 100,
) -> list[DeadLetter]:
    """Dead letters of ``topic`` in log order (``status`` None: every status)."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM dlq.dead_letters
            WHERE topic = $1 AND ($2::text IS NULL OR status = $2)
            ORDER BY partition, "offset" LIMIT $3""",  # noqa: S608 - fixed column list
        topic,
        status,
        limit,
    )
    return [_row(r) for r in rows]


async def get(
    conn: asyncpg.Connection | asyncpg.Pool, topic: str, partition: int, offset: int
) -> DeadLetter | None:
    """The dead letter at one source position, or None."""
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM dlq.dead_letters
            WHERE topic = $1 AND partition = $2 AND "offset" = $3""",  # noqa: S608
        topic,
        partition,
        offset,
    )
    return None if row is None else _row(row)


async def lock_open(
    conn: asyncpg.Connection, topic: str, partition: int, offset: int
) -> DeadLetter | None:
    """The dead letter at a position, row-locked until the transaction ends (replay, discard)."""
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM dlq.dead_letters
            WHERE topic = $1 AND partition = $2 AND "offset" = $3 FOR UPDATE""",  # noqa: S608
        topic,
        partition,
        offset,
    )
    return None if row is None else _row(row)


async def resolve(
    conn: asyncpg.Connection,
    letter: DeadLetter,
    status: str,
    by: str,
    *,
    note: str | None = None,
    replayed_to: tuple[int, int] | None = None,
) -> None:
    """Mark an open dead letter replayed or discarded (inside the caller's transaction)."""
    await conn.execute(
        """UPDATE dlq.dead_letters SET status = $4, resolved_at = now(), resolved_by = $5,
               note = $6, replay_partition = $7, replay_offset = $8
           WHERE topic = $1 AND partition = $2 AND "offset" = $3 AND status = 'dead'""",
        letter.topic,
        letter.partition,
        letter.offset,
        status,
        by,
        note,
        *(replayed_to or (None, None)),
    )


async def depth(conn: asyncpg.Connection | asyncpg.Pool, topic: str) -> int:
    """Open dead letters of ``topic``."""
    n = await conn.fetchval(
        "SELECT count(*) FROM dlq.dead_letters WHERE topic = $1 AND status = 'dead'", topic
    )
    return int(n)
