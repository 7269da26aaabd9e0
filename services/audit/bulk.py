"""The rebuild's first pass: the ledger's writer for one process that owns its partitions.

Live, a batch cannot know what other writers did since its last one, so it asks the database:
it locks its offsets and chain heads, looks up every id it carries and reads each operation's
Merkle frontier, and the tables need their keys for those lookups. A rebuild worker replaying
its own partitions into a fresh shadow is the only writer of them (an operation's records all
sit in one partition), so it keeps those answers in memory: chain heads, the fold state of the
events it wrote (`schemas.tally.FoldState`, the same rule), the tree frontiers and its offsets.
Each batch is then planned by the same `plan_batch` and written by the same `write_rows`, plus
the tree nodes by COPY, in one transaction, with no lookup; the tables can load without any
index (`services.ledger.shadow.drop_secondary_indexes`) and get them once at the end.

Memory is updated only after a batch commits, so a batch retried after a failure (or bisected
around a refused record by `services.ledger.apply`) is planned from the state it first saw.

What one worker cannot see is another worker's partitions: the same ``event_id`` used in two
operations in different partitions. Live, the second is a conflict; here both are written, and
the shadow's primary key, built after the load, refuses it (`IdsAcrossPartitions`): the
rebuild then replays again with lookups (`services.audit.rebuild`).

What a worker keeps grows with the events it writes (`BYTES_PER_EVENT` each, measured), so a
writer can be given ``max_events``: a batch that would take it past that stops the pass
(`MemoryBound`) before anything of it is written, and the rebuild replays with lookups, whose
memory does not grow with the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from sys import intern
from uuid import UUID

import asyncpg

from schemas.canonical import GENESIS_HASH
from schemas.tally import Contribution, Fact, FoldState
from services.ledger import late
from services.ledger.plan import ChainedEvent, Head, Plan, plan_batch
from services.ledger.records import PreparedBatch, PreparedRecord
from services.ledger.writer import BatchResult, BatchWriter
from services.tlog import merkle
from services.tlog.tree import NODE_COLUMNS

Frontier = tuple[int, list[bytes]]  # (tree size, hashes of merkle.frontier_keys(size))
NodeRow = tuple[str, int, int, bytes]


#: What one event's fold state costs a worker, in bytes: workers' peak resident memory over
#: the events they wrote (docs/performance.md, "The rebuild's memory"); rounded up.
BYTES_PER_EVENT = 800


class ReplayWithLookups(BaseException):
    """The bulk pass cannot go on: replay with lookups (as live writes).

    A `BaseException`, like a cancellation: it says nothing about the batch that met it, so
    `services.ledger.apply` must not classify it and bisect the batch around it.
    """


class IdsAcrossPartitions(ReplayWithLookups):
    """The same event id sits in partitions of different workers: replay with lookups."""


class MemoryBound(ReplayWithLookups):
    """A worker would keep more events than its share of the memory bound: replay with lookups."""


class BulkWriter(BatchWriter):
    """A `BatchWriter` for a rebuild worker that alone writes its partitions of a fresh shadow.

    Same rule, same rows, same transaction per batch as `BatchWriter.write`; what live reads
    from the database (offsets, chain heads, the fold state of the batch's ids, the tree's
    frontier) comes from what this writer committed before. Totals and rollups are left out
    (derived after the load).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        topic: str,
        consumer_group: str,
        schema: str,
        max_events: int | None = None,
    ) -> None:
        super().__init__(
            pool, topic=topic, consumer_group=consumer_group, schema=schema, notify=False,
            swap_lock=False, derived=False,
        )  # fmt: skip
        self.stored: dict[int, int] = {}  # partition -> last committed offset
        self.heads: dict[str, Head] = {}
        self.state = FoldState()
        self.frontiers: dict[str, Frontier] = {}
        self._claimed: set[int] = set()
        self.max_events = max_events  # None: unbounded
        self._shared: dict[Contribution, Contribution] = {}

    async def write(
        self, batch: PreparedBatch, *, highwater: Mapping[int, int] | None = None
    ) -> BatchResult:
        last = batch.last_offsets
        result = BatchResult(poison=list(batch.poison), last_offsets=dict(last))
        if not last:
            return result
        stored = self.stored
        records = [r for r in batch.records if r.offset > stored.get(r.partition, -1)]
        result.skipped_records = len(batch.records) - len(records)
        result.poison = [p for p in batch.poison if p.offset > stored.get(p.partition, -1)]
        if self.max_events is not None:
            kept = len(self.state.events) + sum(len(r.events) for r in records)
            if kept > self.max_events:  # checked before the batch: memory never passes it
                raise MemoryBound(
                    f"{kept} events would be kept in memory, above this worker's bound of"
                    f" {self.max_events}"
                )
        state = self._state_for(records)
        operations = sorted({r.operation_id for r in records})
        try:
            plan, heads, frontiers, unclaimed = await self._write(
                batch, records, result, state, operations, highwater
            )
        except asyncpg.UniqueViolationError as exc:  # only another worker's rows can clash
            raise IdsAcrossPartitions(f"{exc} ({exc.detail or ''})") from exc
        # Committed: what later batches must see.
        self._claimed.update(unclaimed)
        for p, o in batch.last_offsets.items():
            self.stored[p] = max(o, self.stored.get(p, -1))
        self.heads.update(heads)
        self.heads.update(plan.heads)
        self.frontiers.update(frontiers)
        self._keep(state.events)
        self.state.held.update(state.held)
        self.state.cancelled.update(state.cancelled)
        result.applied = len(plan.events)
        result.duplicates = plan.duplicates
        result.conflicts = len(plan.conflicts)
        result.operations = plan.operations_changed
        return result

    async def _write(
        self,
        batch: PreparedBatch,
        records: list[PreparedRecord],
        result: BatchResult,
        state: FoldState,
        operations: list[str],
        highwater: Mapping[int, int] | None,
    ) -> tuple[Plan, dict[str, Head], dict[str, Frontier], list[int]]:
        """The batch's transaction; memory is left as it was."""
        last = batch.last_offsets
        partitions = sorted(last)
        async with self.pool.acquire() as conn, conn.transaction():
            # No wait for the WAL flush at each commit: a shadow is of no use until swapped
            # in, and the swap's own commit flushes the WAL, this batch's records included.
            await conn.execute("SET LOCAL synchronous_commit TO OFF")
            unclaimed = [p for p in partitions if p not in self._claimed]
            if unclaimed:  # the offsets rows `write_rows` moves (once per partition)
                await self._claim_offsets(conn, unclaimed)
            heads = {o: self.heads[o] for o in operations if o in self.heads}
            new = [o for o in operations if o not in heads]
            if new:  # the chain heads rows `write_rows` moves (once per operation)
                for r in await conn.fetch(self._sql["claim_heads"], new, GENESIS_HASH):
                    heads[r["operation_id"]] = Head(r["seq"], r["hash"])
            plan = Plan()
            if records:
                closures = await late.closures(conn, operations)
                plan = plan_batch(records, heads, state, closures)
            await self._write_batch(conn, plan, last, highwater, result.poison)
            await late.record(conn, plan.late, self.schema)
            nodes, frontiers = self._grow(plan.events)
            if nodes:
                await conn.copy_records_to_table(
                    "merkle_nodes", schema_name=self.schema, columns=NODE_COLUMNS, records=nodes
                )
        return plan, heads, frontiers, unclaimed

    def _keep(self, facts: Mapping[UUID, Fact]) -> None:
        """Remember a committed batch's facts, compactly: each event kept decodes its own
        operation id, type and contribution (area, unit, detail strings, day), which thousands
        of events share; the kept `Fact` points at one copy of each (equal values, the same
        decisions). Facts already kept are left as they are."""
        known, shared = self.state.events, self._shared
        for i, f in facts.items():
            if known.get(i) is f:
                continue
            c = f.contribution
            if c is not None:
                c = shared.setdefault(c, c)
            known[i] = Fact(
                i, intern(f.operation_id), intern(f.type), c, f.void_target, f.occurred_at,
                f.recorded_at, f.content_hash,
            )  # fmt: skip

    def _state_for(self, records: Sequence[PreparedRecord]) -> FoldState:
        """The fold state of the ids ``records`` carry, as the writer's ``lookup`` would read it
        (copies: planning changes them, and a batch that fails must leave memory as it was)."""
        known, held, cancelled = self.state.events, self.state.held, self.state.cancelled
        out = FoldState()
        for record in records:
            for e in record.events:
                for i in (e.event_id, e.void_target):
                    if i is None:
                        continue
                    if (f := known.get(i)) is not None:
                        out.events[i] = f
                    if (h := held.get(i)) is not None:
                        out.held[i] = list(h)
                    if (c := cancelled.get(i)) is not None:
                        out.cancelled[i] = c
        return out

    def _grow(self, chained: Iterable[ChainedEvent]) -> tuple[list[NodeRow], dict[str, Frontier]]:
        """The tree nodes a batch's events complete (`merkle.append`, as `tree.grow` does),
        from the frontiers in memory; and the new frontiers."""
        by_op: dict[str, list[bytes]] = {}
        for c in chained:
            by_op.setdefault(c.event.operation_id, []).append(c.event.body_json)
        rows: list[NodeRow] = []
        frontiers: dict[str, Frontier] = {}
        for op, leaves in by_op.items():
            size, frontier = self.frontiers.get(op, (0, []))
            growth = merkle.append(size, frontier, leaves)
            frontiers[op] = (growth.size, [h for _, _, h in growth.frontier])
            rows += [(op, lvl, idx, h) for lvl, idx, h in growth.nodes]
        return rows, frontiers
