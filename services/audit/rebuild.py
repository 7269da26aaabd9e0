"""Rebuild the projection from the log into a shadow schema, compare it with the live one, swap.

The shadow is written with the ledger's rule and rows (`plan_batch`, `BatchWriter.write_rows`),
the code that built the live tables. The first pass is a bulk load (`bulk_load`): worker
processes each own a share of the partitions and write with a `BulkWriter`, which keeps in
memory what live looks up, into tables without indexes; totals, rollups and every index are
built once at the end. The catch-up after it writes as live does (`BatchWriter`). The topic
is read with a plain aiokafka consumer: every partition assigned, no group, no commits, from
the beginning up to the end offsets seen at start (or, with ``until``, only submissions
recorded by then).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from services.audit.bulk import BYTES_PER_EVENT, BulkWriter, IdsAcrossPartitions, MemoryBound
from services.audit.compare import (
    HeadDifference,
    TotalsDifference,
    compare_heads,
    compare_totals,
    live_positions,
    shadow_operations,
)
from services.audit.parallel import first_pass
from services.audit.replay import Kafka, LogReplayer, Progress
from services.common import access_log
from services.common.auth import Principal
from services.common.db import LEDGER_SCHEMA
from services.ledger.schema import ident
from services.ledger.shadow import (
    UNLOGGED,
    create_shadow,
    drop_schema,
    drop_secondary_indexes,
    finish_bulk_load,
    losses,
    refuse_losses,
    shadow_name,
    swap_in,
)
from services.ledger.writer import BatchWriter

__all__ = ["HeadDifference", "RebuildReport", "TotalsDifference", "rebuild"]

log = logging.getLogger("opsledger.rebuild")


@dataclass
class RebuildReport:
    """What a rebuild read, wrote and found."""

    shadow: str
    topic: str
    until: datetime | None = None
    records: int = 0
    events: int = 0
    duplicates: int = 0
    conflicts: int = 0
    poison: int = 0
    seconds: float = 0.0
    operations: int = 0
    totals_differences: list[TotalsDifference] = field(default_factory=list)
    head_differences: list[HeadDifference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    swapped: bool = False
    replaced_schema: str | None = None
    after_load: dict[str, float] = field(default_factory=dict)  # seconds of each step

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def matches(self) -> bool:
        return not (self.totals_differences or self.head_differences)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shadow": self.shadow,
            "topic": self.topic,
            "until": self.until.isoformat() if self.until else None,
            "records": self.records,
            "events": self.events,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "poison": self.poison,
            "seconds": round(self.seconds, 3),
            "after_load_seconds": self.after_load,
            "events_per_s": round(self.events_per_s, 1),
            "operations_compared": self.operations,
            "matches": self.matches,
            "totals_differences": [_d(d) for d in self.totals_differences],
            "head_differences": [_d(d) for d in self.head_differences],
            "notes": self.notes,
            "swapped": self.swapped,
            "replaced_schema": self.replaced_schema,
        }


#: What the progress bar says while totals, rollups and indexes are built.
AFTER_LOAD = "building rollups, totals and indexes"


async def bulk_load(
    pool: asyncpg.Pool,
    replayer: LogReplayer,
    targets: dict[int, int],
    *,
    dsn: str | None,
    shadow: str,
    group: str,
    workers: int,
    unlogged: bool = UNLOGGED,
    memory_bytes: int | None = None,
    notes: list[str] | None = None,
) -> dict[str, float]:
    """The first pass into the fresh ``shadow``, then totals, rollups and indexes after it.

    The pass writes with `BulkWriter`s (one per worker, what live looks up kept in memory)
    into tables without any index; `finish_bulk_load` derives totals and rollups and builds
    every index. The pass is replayed the way live writes instead, looking every id up in the
    shadow (its keys kept during the load), whose memory does not grow with the log:
    * up front, when ``memory_bytes`` cannot hold the fold state (`BYTES_PER_EVENT`) of as many
      events as the log has records to replay;
    * after a bulk attempt, when a worker would pass its share of ``memory_bytes``
      (`MemoryBound`), or the keys built after the load are violated (the same event id in
      partitions of different workers: `IdsAcrossPartitions`); the shadow is made again.
    Why, if so, is appended to ``notes``. Later batches (catching up) write as live does
    through ``replayer.writer``. Returns the seconds of each step after the load.
    """
    notes = [] if notes is None else notes
    starts = dict(replayer.positions)
    records = sum(max(0, t - starts.get(p, 0)) for p, t in targets.items())
    max_events = None if memory_bytes is None else memory_bytes // BYTES_PER_EVENT
    if memory_bytes is not None and max_events is not None and records > max_events:
        notes.append(
            f"the log's {records} records are more than the rebuild's memory bound holds"
            f" ({memory_bytes / 2**20:g} MB, about {max_events} events): replayed with lookups"
            " (as live writes)"
        )
        async with pool.acquire() as conn:
            await drop_secondary_indexes(conn, shadow, keep_keys=True, unlogged=unlogged)
        return await _with_lookups(
            pool, replayer, targets, dsn=dsn, shadow=shadow, group=group, workers=workers
        )
    live_writer = replayer.writer
    async with pool.acquire() as conn:
        await drop_secondary_indexes(conn, shadow, keep_keys=False, unlogged=unlogged)
    replayer.writer = BulkWriter(
        pool, topic=replayer.topic, consumer_group=group, schema=shadow, max_events=max_events
    )
    try:
        await first_pass(
            replayer, targets, dsn=dsn, shadow=shadow, group=group, workers=workers, bulk=True,
            max_events=max_events,
        )  # fmt: skip
        replayer.progress.phase(AFTER_LOAD)
        return await finish_bulk_load(pool, shadow)
    except MemoryBound as exc:
        log.warning("rebuild memory bound reached (%s): replaying with lookups", exc)
        notes.append(
            f"a worker reached its share of the rebuild's memory bound"
            f" ({(memory_bytes or 0) / 2**20:g} MB): the first pass was replayed again with"
            " lookups (as live writes)"
        )
    except (IdsAcrossPartitions, asyncpg.UniqueViolationError) as exc:
        log.warning("event ids shared across partitions (%s): replaying with lookups", exc)
        notes.append(
            "event ids shared across partitions of different workers: the first pass was"
            " replayed again with lookups (as live writes)"
        )
    finally:
        replayer.writer = live_writer
    async with pool.acquire() as conn:
        await drop_schema(conn, shadow)
        await create_shadow(conn, shadow)
        await drop_secondary_indexes(conn, shadow, keep_keys=True, unlogged=unlogged)
    replayer.positions.update(starts)
    replayer.counts = type(replayer.counts)()
    replayer.progress.phase("replaying again")
    return await _with_lookups(
        pool, replayer, targets, dsn=dsn, shadow=shadow, group=group, workers=workers
    )


async def _with_lookups(
    pool: asyncpg.Pool,
    replayer: LogReplayer,
    targets: dict[int, int],
    *,
    dsn: str | None,
    shadow: str,
    group: str,
    workers: int,
) -> dict[str, float]:
    """The first pass as live writes (``replayer.writer``, keys kept), then `finish_bulk_load`."""
    live_writer = replayer.writer
    live_writer.derived = False
    try:
        await first_pass(replayer, targets, dsn=dsn, shadow=shadow, group=group, workers=workers)
    finally:
        live_writer.derived = True
    replayer.progress.phase(AFTER_LOAD)
    return await finish_bulk_load(pool, shadow)


def _d(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


#: How long a comparison waits for a lagging live aggregator to reach the rebuilt offsets.
ALIGN_WAIT_S = 5.0


async def rebuild(
    pool: asyncpg.Pool,
    kafka: Kafka,
    topic: str,
    *,
    principal: Principal,
    consumer_group: str,
    until: datetime | None = None,
    only_seen: bool = False,
    swap: bool = False,
    keep_shadow: bool = False,
    progress: Progress | None = None,
    dsn: str | None = None,
    workers: int = 1,
    force: frozenset[str] = frozenset(),
    memory_bytes: int | None = None,
) -> RebuildReport:
    """Replay ``topic`` into a new shadow schema, compare with the live projection, maybe swap.

    ``consumer_group`` is the live aggregator's: the shadow records its offsets under that
    name (so a swapped-in ledger resumes where the log was read to) and the comparison aligns
    with the live offsets. ``only_seen`` limits the comparison to operations found in the
    topic (a database shared by several topics); otherwise a live operation missing from the
    log is a difference too. A swap is refused (`SwapRefused`) when the rebuilt ledger lacks an
    operation, an event or chain positions the live one has, unless ``force`` names each such
    operation; the replaced ledger is kept until `drop_previous`. ``memory_bytes`` bounds what
    the first pass's workers keep in memory (None: unbounded; `bulk_load`).
    """
    if swap and until is not None:
        raise ValueError("--swap replaces the live projection with the whole log; not with --until")
    shadow = shadow_name()
    report = RebuildReport(shadow=shadow, topic=topic, until=until)
    params = {
        "topic": topic,
        "until": until,
        "swap": swap,
        "shadow": shadow,
        "only_seen": only_seen,
        "force": sorted(force),
    }
    await access_log.record(pool, principal, "rebuild", None, params)
    async with pool.acquire() as conn:
        await create_shadow(conn, shadow)
    writer = BatchWriter(
        pool, topic=topic, consumer_group=consumer_group, schema=shadow, notify=False
    )
    replayer = LogReplayer(kafka, topic, writer, until=until, progress=progress)
    try:
        await replayer.start()
        started = time.monotonic()
        targets = await replayer.end_offsets()
        report.after_load = await bulk_load(
            pool, replayer, targets, dsn=dsn, shadow=shadow, group=consumer_group,
            workers=workers, memory_bytes=memory_bytes, notes=report.notes,
        )  # fmt: skip
        report.seconds = time.monotonic() - started
        replayer.progress.phase("catching up and comparing with the live ledger")
        if swap:
            await _compare_and_swap(pool, replayer, report, consumer_group, only_seen, force)
        else:
            await _compare(pool, replayer, report, consumer_group, only_seen)
    finally:
        await replayer.stop()
        c = replayer.counts
        report.records, report.events, report.poison = c.records, c.events, c.poison
        report.duplicates, report.conflicts = c.duplicates, c.conflicts
        if not report.swapped and not keep_shadow:
            async with pool.acquire() as conn:
                await drop_schema(conn, shadow)
    return report


async def _differences(conn: asyncpg.Connection, report: RebuildReport, only_seen: bool) -> None:
    operations = await shadow_operations(conn, report.shadow) if only_seen else None
    report.operations = len(
        operations
        if operations is not None
        else await conn.fetch(
            f"""SELECT operation_id FROM {LEDGER_SCHEMA}.chain_heads
                UNION SELECT operation_id FROM {ident(report.shadow)}.chain_heads"""  # noqa: S608
        )
    )
    report.totals_differences = await compare_totals(
        conn, report.shadow, operations, known_at=report.until
    )
    if report.until is None:  # a point-in-time replay cannot end on the live heads
        report.head_differences = await compare_heads(conn, report.shadow, operations)


async def _compare(
    pool: asyncpg.Pool,
    replayer: LogReplayer,
    report: RebuildReport,
    group: str,
    only_seen: bool,
) -> None:
    """Compare in one snapshot taken when live and shadow stand at the same offsets."""
    deadline = time.monotonic() + ALIGN_WAIT_S
    while True:
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            live = await live_positions(conn, group, report.topic)
            ahead = {p: o for p, o in live.items() if o > replayer.positions.get(p, 0)}
            behind = sorted(p for p, o in live.items() if o < replayer.positions.get(p, 0))
            if (
                report.until is not None
                or not ahead
                and (not behind or time.monotonic() > deadline)
            ):
                if behind and report.until is None:
                    report.notes.append(
                        f"the live aggregator is behind the log on partitions {behind}:"
                        " differences in their operations may be lag, not corruption"
                    )
                await _differences(conn, report, only_seen)
                return
        if ahead:  # live applied records produced after the replay started: read them too
            await replayer.read_to({**replayer.positions, **ahead})
        else:
            await asyncio.sleep(0.2)


async def _compare_and_swap(
    pool: asyncpg.Pool,
    replayer: LogReplayer,
    report: RebuildReport,
    group: str,
    only_seen: bool,
    force: frozenset[str],
) -> None:
    """Catch up, then under the swap locks: catch up the last tail, compare, refuse a loss, swap."""
    await replayer.read_to(await replayer.end_offsets())  # keeps the locked tail short
    async with pool.acquire() as conn:

        async def locked_tail() -> None:
            await replayer.read_to(await replayer.end_offsets())
            live = await live_positions(conn, group, report.topic)
            behind = sorted(p for p, o in live.items() if o < replayer.positions.get(p, 0))
            if behind:
                report.notes.append(
                    f"the live aggregator was behind the log on partitions {behind};"
                    " the swapped-in ledger includes those records"
                )
            await _differences(conn, report, only_seen)
            refuse_losses(await losses(conn, report.shadow), set(force))

        report.replaced_schema = await swap_in(conn, report.shadow, locked_tail)
        report.swapped = True
