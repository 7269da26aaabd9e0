"""The batch writer: one PostgreSQL transaction per batch of records, independent of faust.

Order inside the transaction (locks are always taken in this order, each set sorted, so two
writers never deadlock); the SQL is in `services.ledger.sql`:

0. on the live schema, take the rebuild swap lock shared (`LEDGER_SWAP_LOCK`);
1. lock this consumer's offset rows of the batch's partitions; drop records at or below the
   stored ``last_offset`` (a redelivery after a crash or a rebalance);
2. lock the chain heads of the batch's operations (creating missing heads first);
3. read the events, contributions and voids the batch refers to;
4. plan in memory (`services.ledger.plan`, which asks `schemas.tally` what each event does),
   then write every row in `write_rows`: events and contributions by binary COPY, then one
   statement for the contributions' rollups, voids, conflicts, totals, chain heads, offsets,
   and ``pg_notify`` of each changed operation (delivered on commit);
5. record the batch's poison in ``dlq.dead_letters`` (exactly when the offset moves past it);
6. grow each operation's Merkle tree by the new events (`services.tlog.tree.grow`: its
   frontier read and its new nodes written, two more round trips).

Every effect of a record and the record's offset commit together or not at all, so applying
the same records again is harmless. The schema is a parameter so that `opsledger rebuild` can
replay the log into a shadow schema with this same code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

import asyncpg

from schemas.canonical import GENESIS_HASH
from services.common.db import LEDGER_SCHEMA, TOTALS_CHANNEL, JsonText
from services.ledger import dead_letters, late, sql
from services.ledger.plan import Head, Plan, fold_state, plan_batch
from services.ledger.records import (
    Poison,
    PreparedBatch,
    PreparedRecord,
    RawRecord,
    prepare,
)
from services.ledger.schema import LEDGER_SWAP_LOCK, ident
from services.ledger.sql import statements
from services.tlog import tree


@dataclass(slots=True)
class BatchResult:
    """What one batch did: counts for metrics, and where each partition now stands."""

    applied: int = 0  # new events appended to the ledger
    duplicates: int = 0  # same event_id, same content: no-op
    conflicts: int = 0  # same event_id, other content: recorded, not counted
    skipped_records: int = 0  # at or below the stored offset: already applied
    poison: list[Poison] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)  # operations whose totals changed
    last_offsets: dict[int, int] = field(default_factory=dict)  # partition -> last applied


class BatchWriter:
    """Apply batches of submissions to the ledger tables of one schema for one consumer group."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        topic: str,
        consumer_group: str,
        schema: str = LEDGER_SCHEMA,
        notify: bool = True,
        swap_lock: bool | None = None,
        derived: bool = True,
    ) -> None:
        self.pool = pool
        self.topic = topic
        self.group = consumer_group
        self.schema = schema
        self.notify = notify
        # Writes to the live schema hold the swap lock shared, so `rebuild --swap` waits for
        # the batch in flight; the rebuild's own shadow writer must not take it.
        self.swap_lock = schema == LEDGER_SCHEMA if swap_lock is None else swap_lock
        self._sql = statements(f'"{ident(schema)}"')
        # False while a rebuild bulk-loads a shadow: totals and rollups are derived after the
        # load (services.ledger.shadow.finish_bulk_load), not upserted batch by batch.
        self.derived = derived

    async def positions(self) -> dict[int, int]:
        """Last applied offset per partition for this group and topic."""
        rows = await self.pool.fetch(self._sql["positions"], self.group, self.topic)
        return {r["partition"]: r["last_offset"] for r in rows}

    async def apply_records(
        self,
        records: Iterable[RawRecord | tuple[int, int, bytes | None]],
        *,
        highwater: Mapping[int, int] | None = None,
    ) -> BatchResult:
        """Decode and apply (partition, offset, value) records in one transaction."""
        return await self.write(prepare(records), highwater=highwater)

    async def write(
        self, batch: PreparedBatch, *, highwater: Mapping[int, int] | None = None
    ) -> BatchResult:
        """Apply a prepared batch in one transaction; poison only advances the offset and is
        recorded in ``dlq.dead_letters``."""
        last = batch.last_offsets
        result = BatchResult(poison=list(batch.poison), last_offsets=dict(last))
        if not last:
            return result
        partitions = sorted(last)
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await self._claim_offsets(conn, partitions)
            records = [r for r in batch.records if r.offset > stored.get(r.partition, -1)]
            result.skipped_records = len(batch.records) - len(records)
            result.poison = [p for p in batch.poison if p.offset > stored.get(p.partition, -1)]
            plan = await self._plan(conn, records) if records else Plan()
            await self._write_batch(conn, plan, last, highwater, result.poison)
            await late.record(conn, plan.late, self.schema)
            await tree.grow(conn, plan.events, self.schema)
        result.applied = len(plan.events)
        result.duplicates = plan.duplicates
        result.conflicts = len(plan.conflicts)
        result.operations = plan.operations_changed
        return result

    async def _write_batch(
        self,
        conn: asyncpg.Connection,
        plan: Plan,
        last: Mapping[int, int],
        highwater: Mapping[int, int] | None,
        poison: Sequence[Poison],
    ) -> None:
        """A planned batch's rows and its partitions' offsets, then its refused records: in the
        caller's transaction, so the dead letters are recorded exactly when the offset moves
        past them (shared by the live writer and the rebuild's bulk writer)."""
        partitions = sorted(last)
        hw = highwater or {}
        offsets = (
            partitions,
            [last[p] for p in partitions],
            [hw.get(p) for p in partitions],
            [plan.last_event_at.get(p) for p in partitions],
        )
        await self.write_rows(conn, plan, offsets)
        if poison:
            await conn.execute(dead_letters.INSERT, *dead_letters.insert_args(self.topic, poison))

    async def _claim_offsets(
        self, conn: asyncpg.Connection, partitions: list[int]
    ) -> dict[int, int]:
        args: list[Any] = [self.group, self.topic, partitions]
        name = "claim_offsets"
        if self.swap_lock:
            name = "claim_offsets_locked"
            args.append(LEDGER_SWAP_LOCK)
        return {r["partition"]: r["last_offset"] for r in await conn.fetch(self._sql[name], *args)}

    async def _plan(self, conn: asyncpg.Connection, records: Sequence[PreparedRecord]) -> Plan:
        operations = sorted({r.operation_id for r in records})
        heads = {
            r["operation_id"]: Head(r["seq"], r["hash"])
            for r in await conn.fetch(self._sql["claim_heads"], operations, GENESIS_HASH)
        }
        ids: set[UUID] = set()
        for record in records:
            for e in record.events:
                ids.add(e.event_id)
                if e.void_target is not None:
                    ids.add(e.void_target)
        state = fold_state(await conn.fetch(self._sql["lookup"], list(ids)))
        return plan_batch(records, heads, state, await late.closures(conn, operations))

    async def write_rows(
        self, conn: asyncpg.Connection, plan: Plan, offsets: tuple[list[Any], ...]
    ) -> None:
        """Every row of a planned batch, inside its transaction: the one place a batch writes.

        Events and contributions by binary COPY into their tables, then one statement for the
        rest (`sql.APPLY_ORDER`), which adds the contributions to the rollups.
        """
        if plan.events:
            await conn.copy_records_to_table(
                "events", schema_name=self.schema, columns=_EVENT_NAMES,
                records=[
                    (
                        ce.event.event_id, ce.event.operation_id, ce.seq, ce.event.type,
                        ce.event.schema_version, ce.event.occurred_at, ce.event.recorded_at,
                        ce.event.principal, ce.event.officer_id, ce.event.unit, ce.event.area,
                        JsonText(ce.event.body_json.decode()), ce.event.content_hash,
                        ce.prev_hash, ce.hash, ce.event.partition, ce.event.offset,
                        ce.event.index,
                    )
                    for ce in plan.events
                ],
            )  # fmt: skip
        if plan.contributions:
            await conn.copy_records_to_table(
                "contributions", schema_name=self.schema, columns=_CONTRIBUTION_NAMES,
                records=[
                    (r.event_id, r.operation_id, r.c.metric, r.c.detail, r.c.area, r.c.unit,
                     r.c.day, r.c.delta, r.occurred_at, r.recorded_at)
                    for r in plan.contributions
                ],
            )  # fmt: skip
        statement = "apply" if self.derived else "apply_bulk"
        await conn.execute(self._sql[statement], *self._apply_args(plan, offsets))

    def _apply_args(self, plan: Plan, offsets: tuple[list[Any], ...]) -> list[Any]:
        """The arguments of the `apply` statement, in `sql.APPLY_ORDER`."""
        voids = [
            (v.void_event_id, v.target_event_id, v.operation_id, v.applied)
            for v in plan.new_voids.values()
        ]
        conflicts = [
            (c.event.event_id, c.event.operation_id, c.stored_content_hash, c.event.content_hash,
             c.event.body_json.decode(), self.topic, c.event.partition, c.event.offset,
             c.event.index)
            for c in plan.conflicts
        ]  # fmt: skip
        keys = sorted(plan.totals) if self.derived else []  # sorted: row locks deadlock-free
        totals = [(*k, plan.totals[k]) for k in keys]
        ops = sorted(plan.heads)
        heads = [(o, plan.heads[o].seq, plan.heads[o].hash) for o in ops]
        return [
            *_columns(voids, len(sql.VOID_COLUMNS)),
            plan.applied_held_voids,
            *_columns(conflicts, len(sql.CONFLICT_COLUMNS)),
            *_columns(totals, len(sql.TOTALS_COLUMNS)),
            *_columns(heads, len(sql.HEAD_COLUMNS)),
            self.group,
            self.topic,
            *offsets,
            TOTALS_CHANNEL,
            plan.operations_changed if self.notify else [],
            [r.event_id for r in plan.contributions] if self.derived else [],
        ]


_EVENT_NAMES: Final = [name for name, _ in sql.EVENT_COLUMNS]
_CONTRIBUTION_NAMES: Final = [name for name, _ in sql.CONTRIBUTION_COLUMNS]


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to one list per column (``unnest`` arrays); ``width`` empty lists when no rows."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(col) for col in zip(*rows, strict=True)]
