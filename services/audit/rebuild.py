"""Rebuild the projection from the log into a shadow schema, compare it with the live one, swap.

The shadow is written by the live aggregator's own `BatchWriter` (schema parameter), so a
rebuild exercises exactly the code that built the live tables. The topic is read with a plain
aiokafka consumer: every partition assigned, no group, no commits, from the beginning up to the
end offsets seen at start (or, with ``until``, only submissions recorded by then).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.aggregator.records import PreparedBatch, prepare
from services.aggregator.writer import BatchWriter
from services.audit import access_log
from services.audit.parallel import replay_in_processes
from services.audit.repository import ident
from services.common.auth import Principal
from services.common.db import LEDGER_SCHEMA, LEDGER_SWAP_LOCK
from services.common.kafka import client_kwargs
from services.common.settings import CommonSettings

#: Records handed to the writer per transaction, and the bytes that also close a batch.
BATCH_RECORDS = 1000
BATCH_BYTES = 4 << 20


class Progress(Protocol):
    """Told how far the replay is; the CLI draws a progress bar, the benchmark nothing."""

    def started(self, total_records: int) -> None: ...

    def advanced(self, records: int, events: int) -> None: ...


class _Silent:
    def started(self, total_records: int) -> None:
        pass

    def advanced(self, records: int, events: int) -> None:
        pass


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
            "events_per_s": round(self.events_per_s, 1),
            "operations_compared": self.operations,
            "matches": self.matches,
            "totals_differences": [_d(d) for d in self.totals_differences],
            "head_differences": [_d(d) for d in self.head_differences],
            "notes": self.notes,
            "swapped": self.swapped,
            "replaced_schema": self.replaced_schema,
        }


def _d(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def shadow_name(now: datetime | None = None) -> str:
    """A fresh shadow schema name, ``ledger_rebuild_<utc timestamp>``."""
    now = now or datetime.now(UTC)
    return f"ledger_rebuild_{now:%Y%m%d%H%M%S}_{now.microsecond:06d}"


# ---- shadow schema ----------------------------------------------------------------------


async def create_shadow(conn: asyncpg.Connection, shadow: str, live: str = LEDGER_SCHEMA) -> None:
    """A schema with every table of ``live`` (columns, keys, indexes), empty, and own sequences."""
    s, lv = ident(shadow), ident(live)
    tables = [
        r["tablename"]
        for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", live
        )
    ]
    if not tables:
        raise RuntimeError(f"schema {live!r} has no tables: run `opsledger migrate` first")
    async with conn.transaction():
        await conn.execute(f"CREATE SCHEMA {s}")
        for t in tables:
            await conn.execute(f"CREATE TABLE {s}.{ident(t)} (LIKE {lv}.{ident(t)} INCLUDING ALL)")
        # LIKE copies a serial column's default, which still points at the live sequence; a
        # swapped-in table must own its sequence or dropping the old schema would take it away.
        serials = await conn.fetch(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = $1 AND column_default LIKE 'nextval(%'""",
            shadow,
        )
        for r in serials:
            table, column = ident(r["table_name"]), ident(r["column_name"])
            seq = ident(f"{table}_{column}_seq")
            await conn.execute(f"CREATE SEQUENCE {s}.{seq} OWNED BY {s}.{table}.{column}")
            await conn.execute(
                f"ALTER TABLE {s}.{table} ALTER COLUMN {column}"
                f" SET DEFAULT nextval('{s}.{seq}'::regclass)"
            )
        await copy_privileges(conn, live, shadow)


_GRANTS = """
    SELECT c.relname AS name, a.privilege_type AS privilege,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
               AS grantee
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'S') AND a.grantee <> c.relowner
    UNION ALL
    SELECT NULL, a.privilege_type,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
    FROM pg_namespace n, aclexplode(n.nspacl) a
    WHERE n.nspname = $1 AND a.grantee <> n.nspowner
"""


async def copy_privileges(conn: asyncpg.Connection, source: str, target: str) -> None:
    """Give ``target``'s schema, tables and sequences exactly the grants ``source``'s have.

    A swapped-in ledger must keep what the deployment granted and revoked table by table
    (e.g. no UPDATE on events for the aggregator), not only what default privileges give.
    """
    s = ident(target)

    def on(name: str | None, kind: str) -> str:
        return f"SCHEMA {s}" if name is None else f"{kind} {s}.{ident(name)}"

    kinds = {
        r["relname"]: "SEQUENCE" if r["relkind"] == "S" else "TABLE"
        for r in await conn.fetch(
            """SELECT c.relname, c.relkind FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1""",
            target,
        )
    }
    for r in await conn.fetch(_GRANTS, target):  # what default privileges gave the new objects
        kind = kinds.get(r["name"], "TABLE") if r["name"] else "SCHEMA"
        await conn.execute(f"REVOKE ALL ON {on(r['name'], kind)} FROM {r['grantee']}")
    for r in await conn.fetch(_GRANTS, source):
        if r["name"] is not None and r["name"] not in kinds:
            continue  # an object the shadow does not have (none today)
        kind = kinds.get(r["name"], "TABLE") if r["name"] else "SCHEMA"
        privilege = r["privilege"]
        await conn.execute(f"GRANT {privilege} ON {on(r['name'], kind)} TO {r['grantee']}")


async def drop_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Drop a shadow or replaced schema and everything in it."""
    if schema == LEDGER_SCHEMA:
        raise ValueError("refusing to drop the live ledger schema")
    await conn.execute(f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE")


# ---- reading the log --------------------------------------------------------------------


#: Where Kafka is: a bootstrap string, or settings (TLS/SASL included, see common/kafka.py).
#: Both pickle, so the rebuild's worker processes receive it as it is.
Kafka = str | CommonSettings


def kafka_options(kafka: Kafka) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client."""
    return {"bootstrap_servers": kafka} if isinstance(kafka, str) else client_kwargs(kafka)


async def topic_partitions(kafka: Kafka, topic: str, *, wait_s: float = 10.0) -> list[int]:
    """The topic's partition numbers; raise LookupError if it does not exist."""
    admin = AIOKafkaAdminClient(**kafka_options(kafka))
    await admin.start()
    try:
        deadline = time.monotonic() + wait_s
        while True:
            (described,) = await admin.describe_topics([topic])
            partitions = sorted(p["partition"] for p in described.get("partitions", []))
            if described.get("error_code", 0) == 0 and partitions:
                return partitions
            if time.monotonic() > deadline:  # a just-created topic takes a moment to appear
                raise LookupError(f"topic {topic!r} does not exist")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


@dataclass
class _Counts:
    records: int = 0
    events: int = 0
    duplicates: int = 0
    conflicts: int = 0
    poison: int = 0


async def _put(queue: asyncio.Queue[Any], item: Any, consumer: asyncio.Task[None]) -> None:
    """Queue ``item``, unless the consumer of the queue has died (then raise its error)."""
    put = asyncio.ensure_future(queue.put(item))
    await asyncio.wait({put, consumer}, return_when=asyncio.FIRST_COMPLETED)
    if not put.done():
        put.cancel()
        consumer.result()  # raises the writer's error
        raise RuntimeError("the writer stopped")


class LogReplayer:
    """Reads one topic with a group-less consumer and applies it through a `BatchWriter`."""

    def __init__(
        self,
        kafka: Kafka,
        topic: str,
        writer: BatchWriter,
        *,
        until: datetime | None = None,
        progress: Progress | None = None,
        partitions: Sequence[int] | None = None,
    ) -> None:
        self.topic = topic
        self._only = None if partitions is None else set(partitions)
        self.kafka = kafka
        self.writer = writer
        self.until = until
        self.progress = progress or _Silent()
        self.counts = _Counts()
        self._consumer = AIOKafkaConsumer(
            **kafka_options(kafka),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=32 << 20,
            max_partition_fetch_bytes=8 << 20,
        )
        self._tps: list[TopicPartition] = []
        self.positions: dict[int, int] = {}  # partition -> next offset to read

    async def start(self) -> None:
        partitions = await topic_partitions(self.kafka, self.topic)
        if self._only is not None:
            partitions = [p for p in partitions if p in self._only]
        await self._consumer.start()
        self._tps = [TopicPartition(self.topic, p) for p in partitions]
        self._consumer.assign(self._tps)
        begin = await self._consumer.beginning_offsets(self._tps)
        self.positions = {tp.partition: begin[tp] for tp in self._tps}

    async def stop(self) -> None:
        await self._consumer.stop()

    async def end_offsets(self) -> dict[int, int]:
        """The current end (next offset to be written) of every partition."""
        ends = await self._consumer.end_offsets(self._tps)
        return {tp.partition: ends[tp] for tp in self._tps}

    async def read_to(self, targets: Mapping[int, int]) -> None:
        """Apply every record from the current positions up to (excluding) ``targets``."""
        todo = {
            tp for tp in self._tps if self.positions[tp.partition] < targets.get(tp.partition, 0)
        }
        self.progress.started(sum(max(0, targets.get(p, 0) - o) for p, o in self.positions.items()))
        for tp in self._tps:
            self._consumer.seek(tp, self.positions[tp.partition])
        # Decoding (CPU, here) overlaps the previous batch's transaction (in PostgreSQL).
        queue: asyncio.Queue[tuple[int, PreparedBatch] | None] = asyncio.Queue(maxsize=2)
        writing = asyncio.create_task(self._write_from(queue))
        try:
            pending: list[tuple[int, int, bytes | None]] = []
            size = 0
            while todo:
                if writing.done():  # the writer failed: stop reading, raise its error
                    break
                fetched = await self._consumer.getmany(*todo, timeout_ms=500, max_records=5000)
                for tp, messages in fetched.items():
                    end = targets[tp.partition]
                    for m in messages:
                        if m.offset >= end:
                            break
                        pending.append((tp.partition, m.offset, m.value))
                        size += len(m.value or b"")
                        self.positions[tp.partition] = m.offset + 1
                        if len(pending) >= BATCH_RECORDS or size >= BATCH_BYTES:
                            await _put(
                                queue, (len(pending), self._in_time(prepare(pending))), writing
                            )
                            pending, size = [], 0
                    # Offsets can skip (compaction, transaction markers): trust the position.
                    position = await self._consumer.position(tp)
                    if position >= end or self.positions[tp.partition] >= end:
                        self.positions[tp.partition] = max(
                            self.positions[tp.partition], min(position, end)
                        )
                        todo.discard(tp)
            if pending:
                await _put(queue, (len(pending), self._in_time(prepare(pending))), writing)
        finally:
            if not writing.done():
                await queue.put(None)
            await writing

    async def _write_from(self, queue: asyncio.Queue[tuple[int, PreparedBatch] | None]) -> None:
        while (item := await queue.get()) is not None:
            n_records, batch = item
            result = await self.writer.write(batch)
            c = self.counts
            c.records += n_records
            c.events += result.applied
            c.duplicates += result.duplicates
            c.conflicts += result.conflicts
            c.poison += len(result.poison)
            self.progress.advanced(n_records, result.applied + result.duplicates)

    def _in_time(self, batch: PreparedBatch) -> PreparedBatch:
        if self.until is None:
            return batch
        until = self.until
        kept = [r for r in batch.records if r.events[0].recorded_at <= until]
        return PreparedBatch(records=kept, poison=batch.poison)


# ---- comparing with the live projection ---------------------------------------------------


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


# ---- swapping ---------------------------------------------------------------------------


async def swap_in(
    conn: asyncpg.Connection,
    shadow: str,
    catch_up: Callable[[], Awaitable[None]],
) -> str:
    """Make ``shadow`` the live ledger in one transaction; return the replaced schema's name.

    Readers keep reading throughout (a rename takes no lock on the tables). Live batches are
    held off by the swap lock and by an EXCLUSIVE lock on consumer_offsets, which every batch
    writes; ``catch_up`` runs while they wait, so nothing applied live is missing after the swap.
    """
    s = ident(shadow)
    old = ident(f"ledger_old_{datetime.now(UTC):%Y%m%d%H%M%S}")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LEDGER_SWAP_LOCK)
        await conn.execute(f"LOCK TABLE {LEDGER_SCHEMA}.consumer_offsets IN EXCLUSIVE MODE")
        await catch_up()
        # Triggers are not copied by LIKE: carry every user trigger over by its definition.
        triggers = [
            r["def"]
            for r in await conn.fetch(
                """SELECT pg_get_triggerdef(t.oid) AS def FROM pg_trigger t
                   JOIN pg_class c ON c.oid = t.tgrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = $1 AND NOT t.tgisinternal""",
                LEDGER_SCHEMA,
            )
        ]
        await conn.execute(f"ALTER SCHEMA {LEDGER_SCHEMA} RENAME TO {old}")
        await conn.execute(f"ALTER SCHEMA {s} RENAME TO {LEDGER_SCHEMA}")
        for definition in triggers:  # "... ON ledger.events ..." now names the new table
            await conn.execute(definition)
    return old


# ---- the whole rebuild ------------------------------------------------------------------

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
) -> RebuildReport:
    """Replay ``topic`` into a new shadow schema, compare with the live projection, maybe swap.

    ``consumer_group`` is the live aggregator's: the shadow records its offsets under that
    name (so a swapped-in ledger resumes where the log was read to) and the comparison aligns
    with the live offsets. ``only_seen`` limits the comparison to operations found in the
    topic (a database shared by several topics); otherwise a live operation missing from the
    log is a difference too.
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
        await first_pass(
            replayer, targets, dsn=dsn, shadow=shadow, group=consumer_group, workers=workers
        )
        report.seconds = time.monotonic() - started
        if swap:
            await _compare_and_swap(pool, replayer, report, consumer_group, only_seen)
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


async def first_pass(
    replayer: LogReplayer,
    targets: dict[int, int],
    *,
    dsn: str | None,
    shadow: str,
    group: str,
    workers: int,
) -> None:
    """Replay up to ``targets``: in this process, or split over ``workers`` processes."""
    if workers <= 1 or dsn is None:
        await replayer.read_to(targets)
        return
    starts = dict(replayer.positions)
    replayer.progress.started(sum(max(0, targets[p] - starts.get(p, 0)) for p in targets))
    counts = await replay_in_processes(
        dsn=dsn, kafka=replayer.kafka, topic=replayer.topic, schema=shadow, group=group,
        starts=starts, targets=targets, until=replayer.until, workers=workers,
        progress=replayer.progress,
    )  # fmt: skip
    for p, target in targets.items():
        replayer.positions[p] = max(replayer.positions.get(p, 0), target)
    c = replayer.counts
    c.records += counts.get("records", 0)
    c.events += counts.get("events", 0)
    c.duplicates += counts.get("duplicates", 0)
    c.conflicts += counts.get("conflicts", 0)
    c.poison += counts.get("poison", 0)


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
) -> None:
    """Catch up, then under the swap locks: catch up the last tail, compare, swap."""
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

        report.replaced_schema = await swap_in(conn, report.shadow, locked_tail)
        report.swapped = True
        await drop_schema(conn, report.replaced_schema)
