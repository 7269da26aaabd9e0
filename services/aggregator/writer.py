"""The batch writer: one PostgreSQL transaction per batch of records, independent of faust.

Order inside the transaction (locks are always taken in this order, each set sorted, so two
writers never deadlock):

0. on the live schema, take the rebuild swap lock shared (`LEDGER_SWAP_LOCK`);
1. lock this consumer's offset rows of the batch's partitions; drop records at or below the
   stored ``last_offset`` (a redelivery after a crash or a rebalance);
2. lock the chain heads of the batch's operations (creating missing heads first);
3. read the events, contributions and voids the batch refers to;
4. plan in memory (`services.aggregator.plan`), then write every table with one ``unnest``
   statement each: events, contributions, voids, conflicts, totals, chain heads, offsets;
5. ``pg_notify`` each changed operation (delivered on commit).

Every effect of a record and the record's offset commit together or not at all, so applying
the same records again is harmless. The schema is a parameter so that `opsledger rebuild` can
replay the log into a shadow schema with this same code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from schemas.canonical import GENESIS_HASH
from schemas.tally import Contribution
from services.aggregator.plan import Head, Known, Plan, VoidRow, plan_batch
from services.aggregator.records import Poison, PreparedBatch, RawRecord, prepare
from services.common.db import LEDGER_SCHEMA, LEDGER_SWAP_LOCK, TOTALS_CHANNEL

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def quote_schema(name: str) -> str:
    """The schema name, checked to be a plain lower-case identifier, quoted for SQL."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"invalid schema name {name!r}: expected [a-z_][a-z0-9_]*")
    return f'"{name}"'


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
    ) -> None:
        self.pool = pool
        # Writes to the live schema hold the swap lock shared, so `rebuild --swap` waits for
        # the batch in flight; the rebuild's own shadow writer must not take it.
        self.swap_lock = schema == LEDGER_SCHEMA if swap_lock is None else swap_lock
        self.topic = topic
        self.group = consumer_group
        self.schema = schema
        self.notify = notify
        self._sql = _statements(quote_schema(schema))

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
        """Apply a prepared batch in one transaction; poison records only advance the offset."""
        last = batch.last_offsets
        result = BatchResult(poison=list(batch.poison), last_offsets=dict(last))
        if not last:
            return result
        partitions = sorted(last)
        sql = self._sql
        async with self.pool.acquire() as conn, conn.transaction():
            if self.swap_lock:
                await conn.execute(sql["swap_lock"], LEDGER_SWAP_LOCK)
            await conn.execute(sql["offsets_init"], self.group, self.topic, partitions)
            stored = {
                r["partition"]: r["last_offset"]
                for r in await conn.fetch(sql["offsets_lock"], self.group, self.topic, partitions)
            }
            records = [r for r in batch.records if r.offset > stored.get(r.partition, -1)]
            result.skipped_records = len(batch.records) - len(records)
            result.poison = [p for p in batch.poison if p.offset > stored.get(p.partition, -1)]
            plan = Plan()
            if records:
                plan = await self._plan(conn, records)
                await self._write_plan(conn, plan)
            hw = highwater or {}
            await conn.execute(
                sql["offsets_update"],
                self.group,
                self.topic,
                partitions,
                [last[p] for p in partitions],
                [hw.get(p) for p in partitions],
                [plan.last_event_at.get(p) for p in partitions],
            )
            if self.notify and plan.operations_changed:
                await conn.execute(sql["notify"], TOTALS_CHANNEL, plan.operations_changed)
        result.applied = len(plan.events)
        result.duplicates = plan.duplicates
        result.conflicts = len(plan.conflicts)
        result.operations = plan.operations_changed
        return result

    async def _plan(self, conn: asyncpg.Connection, records: Sequence[Any]) -> Plan:
        sql = self._sql
        operations = sorted({r.operation_id for r in records})
        await conn.execute(sql["heads_init"], operations, GENESIS_HASH)
        heads = {
            r["operation_id"]: Head(r["seq"], r["hash"])
            for r in await conn.fetch(sql["heads_lock"], operations)
        }
        ids: set[UUID] = set()
        for record in records:
            for e in record.events:
                ids.add(e.event_id)
                if e.void_target is not None:
                    ids.add(e.void_target)
        id_list = list(ids)
        known = {
            r["event_id"]: Known(
                r["content_hash"],
                r["operation_id"],
                r["type"],
                None
                if r["metric"] is None
                else Contribution(
                    r["metric"], r["detail"], r["delta"], r["area"], r["unit"], r["day"]
                ),
                r["occurred_at"],
            )
            for r in await conn.fetch(sql["known"], id_list)
        }
        voids = {
            r["target_event_id"]: VoidRow(r["void_event_id"], r["operation_id"], r["applied"])
            for r in await conn.fetch(sql["voids"], id_list)
        }
        return plan_batch(records, heads, known, voids)

    async def _write_plan(self, conn: asyncpg.Connection, plan: Plan) -> None:
        sql = self._sql
        if plan.events:
            cols: list[list[Any]] = [[] for _ in range(18)]
            for ce in plan.events:
                e = ce.event
                row = (
                    e.event_id, e.operation_id, ce.seq, e.type, e.schema_version,
                    e.occurred_at, e.recorded_at, e.principal, e.officer_id, e.unit, e.area,
                    e.body_json.decode(), e.content_hash, ce.prev_hash, ce.hash,
                    e.partition, e.offset, e.index,
                )  # fmt: skip
                for col, value in zip(cols, row, strict=True):
                    col.append(value)
            await conn.execute(sql["events"], *cols)
        if plan.contributions:
            rows = plan.contributions
            await conn.execute(
                sql["contributions"],
                [r.event_id for r in rows],
                [r.operation_id for r in rows],
                [r.c.metric for r in rows],
                [r.c.detail for r in rows],
                [r.c.area for r in rows],
                [r.c.unit for r in rows],
                [r.c.day for r in rows],
                [r.c.delta for r in rows],
                [r.occurred_at for r in rows],
                [r.recorded_at for r in rows],
            )
        if plan.new_voids:
            targets = list(plan.new_voids)
            await conn.execute(
                sql["voids_insert"],
                targets,
                [plan.new_voids[t][0] for t in targets],
                [plan.new_voids[t][1] for t in targets],
                [plan.new_voids[t][2] for t in targets],
            )
        if plan.applied_held_voids:
            await conn.execute(sql["voids_apply"], plan.applied_held_voids)
        if plan.conflicts:
            cs = plan.conflicts
            await conn.execute(
                sql["conflicts"],
                [c.event.event_id for c in cs],
                [c.event.operation_id for c in cs],
                [c.stored_content_hash for c in cs],
                [c.event.content_hash for c in cs],
                [c.event.body_json.decode() for c in cs],
                self.topic,
                [c.event.partition for c in cs],
                [c.event.offset for c in cs],
                [c.event.index for c in cs],
            )
        if plan.totals:
            keys = sorted(plan.totals)  # a stable order keeps row locks deadlock-free
            await conn.execute(
                sql["totals"],
                *([k[i] for k in keys] for i in range(6)),
                [plan.totals[k] for k in keys],
            )
        if plan.heads:
            ops = sorted(plan.heads)
            await conn.execute(
                sql["heads_update"],
                ops,
                [plan.heads[o].seq for o in ops],
                [plan.heads[o].hash for o in ops],
            )


def _statements(schema: str) -> dict[str, str]:
    """Every statement of the writer, for ``schema`` (already validated and quoted)."""
    # Placeholders are filled by replace(), not formatting: the only substituted text is the
    # identifier `quote_schema` validated; every value travels as a bind parameter.
    return {name: sql.replace("{s}", schema) for name, sql in _SQL.items()}


_SQL = {
    "swap_lock": "SELECT pg_advisory_xact_lock_shared($1)",
    "positions": "SELECT partition, last_offset FROM {s}.consumer_offsets"
    " WHERE consumer_group = $1 AND topic = $2",
    "offsets_init": "INSERT INTO {s}.consumer_offsets"
    " (consumer_group, topic, partition, last_offset)"
    " SELECT $1, $2, p, -1 FROM unnest($3::int[]) AS p ON CONFLICT DO NOTHING",
    "offsets_lock": "SELECT partition, last_offset FROM {s}.consumer_offsets"
    " WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3::int[])"
    " ORDER BY partition FOR UPDATE",
    "offsets_update": "UPDATE {s}.consumer_offsets AS o SET"
    " last_offset = GREATEST(o.last_offset, x.last_offset),"
    " highwater = COALESCE(x.highwater, o.highwater),"
    " last_event_at = GREATEST(o.last_event_at, x.last_event_at), updated_at = now()"
    " FROM unnest($3::int[], $4::bigint[], $5::bigint[], $6::timestamptz[])"
    " AS x(partition, last_offset, highwater, last_event_at)"
    " WHERE o.consumer_group = $1 AND o.topic = $2 AND o.partition = x.partition",
    "heads_init": "INSERT INTO {s}.chain_heads (operation_id, seq, hash)"
    " SELECT op, 0, $2 FROM unnest($1::text[]) AS op ORDER BY op ON CONFLICT DO NOTHING",
    "heads_lock": "SELECT operation_id, seq, hash FROM {s}.chain_heads"
    " WHERE operation_id = ANY($1::text[]) ORDER BY operation_id FOR UPDATE",
    "known": "SELECT e.event_id, e.content_hash, e.operation_id, e.type, e.occurred_at,"
    " c.metric, c.detail, c.area, c.unit, c.day, c.delta"
    " FROM {s}.events AS e LEFT JOIN {s}.contributions AS c ON c.event_id = e.event_id"
    " WHERE e.event_id = ANY($1::uuid[])",
    "voids": "SELECT target_event_id, void_event_id, operation_id, applied FROM {s}.voids"
    " WHERE target_event_id = ANY($1::uuid[])",
    "events": "INSERT INTO {s}.events (event_id, operation_id, seq, type, schema_version,"
    " occurred_at, recorded_at, principal, officer_id, unit, area, body, content_hash,"
    " prev_hash, hash, kafka_partition, kafka_offset, kafka_index)"
    " SELECT i, o, sq, t, v, oa, ra, p, off, u, a, b::jsonb, ch, ph, h, kp, ko, ki"
    " FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::int[],"
    " $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[], $10::text[],"
    " $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::int[],"
    " $17::bigint[], $18::int[])"
    " AS x(i, o, sq, t, v, oa, ra, p, off, u, a, b, ch, ph, h, kp, ko, ki)",
    "contributions": "INSERT INTO {s}.contributions (event_id, operation_id, metric,"
    " detail, area, unit, day, delta, occurred_at, recorded_at)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],"
    " $6::text[], $7::date[], $8::bigint[], $9::timestamptz[], $10::timestamptz[])",
    "voids_insert": "INSERT INTO {s}.voids (target_event_id, void_event_id, operation_id,"
    " applied) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bool[])",
    "voids_apply": "UPDATE {s}.voids SET applied = true WHERE target_event_id = ANY($1::uuid[])",
    "conflicts": "INSERT INTO {s}.conflicts (event_id, operation_id, stored_content_hash,"
    " content_hash, body, kafka_topic, kafka_partition, kafka_offset, kafka_index)"
    " SELECT i, o, sh, ch, b::jsonb, $6, kp, ko, ki FROM unnest($1::uuid[], $2::text[],"
    " $3::text[], $4::text[], $5::text[], $7::int[], $8::bigint[], $9::int[])"
    " AS x(i, o, sh, ch, b, kp, ko, ki) ON CONFLICT DO NOTHING",
    "totals": "INSERT INTO {s}.totals AS t (operation_id, metric, detail, area, unit, day,"
    " value) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
    " $5::text[], $6::date[], $7::bigint[])"
    " ON CONFLICT (operation_id, metric, detail, area, unit, day)"
    " DO UPDATE SET value = t.value + EXCLUDED.value",
    "heads_update": "UPDATE {s}.chain_heads AS h SET seq = x.seq, hash = x.hash,"
    " updated_at = now() FROM unnest($1::text[], $2::bigint[], $3::text[])"
    " AS x(op, seq, hash) WHERE h.operation_id = x.op",
    "notify": "SELECT pg_notify($1, op) FROM unnest($2::text[]) AS op",
}
