"""Operations as records: the record, its status rule, the compacted topic and the table.

The record is published on the compacted topic (key = operation_id, the latest record wins)
so that a service needing only Kafka can learn an operation's status; ``ledger.operations``
holds the same record for queries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.kafka import client_kwargs
from services.common.settings import CommonSettings
from services.common.topics import ensure_topics

Status = Literal["planned", "active", "closed"]


class OperationError(Exception):
    """A request the status rule refuses (e.g. closing twice, creating an existing operation)."""


class UnknownOperation(OperationError):
    """The operation has no record (it was never created)."""


class OperationConflict(OperationError):
    """The request conflicts with the record: it exists already, or it is closed already."""


class OperationRecord(BaseModel):
    """One operation: what it is called, where, when it is planned, and whether it is closed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operation_id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=300)
    areas: tuple[str, ...] = ()
    planned_start: datetime
    planned_end: datetime
    status: Status = "planned"
    created_at: datetime
    created_by: str
    closed_at: datetime | None = None
    closed_by: str | None = None

    @model_validator(mode="after")
    def _window(self) -> OperationRecord:
        if self.planned_start.tzinfo is None or self.planned_end.tzinfo is None:
            raise ValueError("planned start and end need a UTC offset")
        if self.planned_end < self.planned_start:
            raise ValueError("planned end is before planned start")
        if (self.status == "closed") != (self.closed_at is not None):
            raise ValueError("a closed operation, and only it, has closed_at")
        return self

    def current(self, now: datetime) -> OperationRecord:
        """The record with its status as of ``now``: planned turns active at its planned start."""
        if self.status == "planned" and now >= self.planned_start:
            return self.model_copy(update={"status": "active"})
        return self

    def close(self, by: str, at: datetime) -> OperationRecord:
        """The closed record (a closed operation cannot be closed again)."""
        if self.status == "closed":
            raise OperationConflict(f"operation {self.operation_id!r} is already closed")
        return self.model_copy(update={"status": "closed", "closed_at": at, "closed_by": by})


def new_record(
    operation_id: str,
    title: str,
    areas: Sequence[str],
    planned_start: datetime,
    planned_end: datetime,
    *,
    by: str,
    now: datetime | None = None,
) -> OperationRecord:
    """A newly created operation (planned, or active if its planned start has passed)."""
    at = now or datetime.now(UTC)
    record = OperationRecord(
        operation_id=operation_id,
        title=title,
        areas=tuple(areas),
        planned_start=planned_start,
        planned_end=planned_end,
        created_at=at,
        created_by=by,
    )
    return record.current(at)


# ---- the compacted topic ------------------------------------------------------------------


async def publish(settings: CommonSettings, record: OperationRecord) -> None:
    """Append ``record`` to the compacted topic and wait for the broker's acknowledgement."""
    await ensure_topics(settings)
    bound = settings.kafka_timeout_s
    producer = AIOKafkaProducer(
        **client_kwargs(settings), acks="all", request_timeout_ms=int(bound * 1000)
    )
    try:
        async with asyncio.timeout(bound * 2):
            await producer.start()
            await producer.send_and_wait(
                settings.operations_topic,
                record.model_dump_json().encode(),
                key=record.operation_id.encode(),
            )
    finally:
        with contextlib.suppress(TimeoutError, KafkaError, OSError):
            async with asyncio.timeout(bound):
                await producer.stop()


# ---- the table ----------------------------------------------------------------------------

_COLUMNS = (
    "operation_id, title, areas, planned_start, planned_end, status, created_at, created_by,"
    " closed_at, closed_by"
)


def _record(row: asyncpg.Record) -> OperationRecord:
    return OperationRecord(**{**dict(row), "areas": tuple(row["areas"])})


async def store(conn: asyncpg.Connection, record: OperationRecord) -> None:
    """Write the record (the latest state of the operation) into ``ledger.operations``."""
    await conn.execute(
        f"""INSERT INTO ledger.operations ({_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (operation_id) DO UPDATE SET
                title = EXCLUDED.title, areas = EXCLUDED.areas,
                planned_start = EXCLUDED.planned_start, planned_end = EXCLUDED.planned_end,
                status = EXCLUDED.status, closed_at = EXCLUDED.closed_at,
                closed_by = EXCLUDED.closed_by""",  # noqa: S608 - constant column list
        record.operation_id, record.title, list(record.areas), record.planned_start,
        record.planned_end, record.status, record.created_at, record.created_by,
        record.closed_at, record.closed_by,
    )  # fmt: skip


async def get(conn: asyncpg.Connection, operation_id: str) -> OperationRecord | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM ledger.operations WHERE operation_id = $1",  # noqa: S608
        operation_id,
    )
    return None if row is None else _record(row)


async def list_all(conn: asyncpg.Connection) -> list[OperationRecord]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM ledger.operations ORDER BY planned_start, operation_id"  # noqa: S608
    )
    return [_record(r) for r in rows]
