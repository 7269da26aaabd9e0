"""A transient failure of one partition holds only that partition (issue 14 item 2, last clause).

Two operations whose records land on different partitions of the one aggregator. A separate
PostgreSQL session holds operation A's chain-head row locked in an open transaction (what an
operator's stray ``SELECT ... FOR UPDATE`` or a long maintenance statement does): every write
of A waits for that lock, and the aggregator's ``lock_timeout`` turns the wait into a transient
error. While A is held:

* B's events are counted within seconds (they do not wait behind A);
* none of A's events are counted, and the readiness detail names A's partition as held;
* more events of A sent meanwhile stay in Kafka (the partition is paused): the records the
  hold keeps in memory do not grow;

then the lock goes, and A's events are counted exactly once, in the order they were sent, the
chain verifies, and nothing went to the dead-letter queue (a transient failure never does).

The second test stops the aggregator (SIGTERM) while A is held: it must stop within 10 s, and
after a restart nothing is applied twice or skipped.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from services.devtools.procs import ServiceProcess

from .checker import check, topic_end_offsets
from .conftest import Cluster
from .hostile import clean_event
from .oracle import Fates

#: Partitions of a test topic (the product default, `topic_partitions`).
PARTITIONS = 12
#: B's events must be counted this soon after their acknowledgement while A is held (a 2-core
#: machine under four engineers' load: generous, but a whole-instance stall never gets there).
OTHERS_WITHIN_S = 10.0
#: How long A stays held after B is counted (several retries of A's batch).
HOLD_S = 4.0
#: A's events after the lock is released.
AFTER_RELEASE_S = 30.0
#: What the aggregator is given: a lock wait ends as a transient error after this long.
LOCK_TIMEOUT_MS = "500"
EVENTS_EACH = 3


def _two_operations(cluster: Cluster) -> tuple[tuple[str, str], tuple[str, str]]:
    """(operation, token) of two operations whose keys go to different partitions."""
    tokens = cluster.operations(8)
    partitioner = DefaultPartitioner()
    all_partitions = list(range(PARTITIONS))
    by_partition: dict[int, str] = {}
    for op in sorted(tokens):
        by_partition.setdefault(partitioner(op.encode(), all_partitions, all_partitions), op)
    a, b = list(by_partition.values())[:2]
    return (a, tokens[a]), (b, tokens[b])


async def _post(client: httpx.AsyncClient, url: str, token: str, event: dict[str, Any]) -> int:
    """Send one event (a 503 is retried as a device would); its partition."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for _ in range(10):
        r = await client.post(f"{url}/v1/events", content=orjson.dumps(event), headers=headers)
        if r.status_code != 503:
            break
        await asyncio.sleep(1)
    assert r.status_code == 202, r.text
    return int(r.json()["partition"])


async def _counted(conn: asyncpg.Connection, ids: list[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT event_id::text AS id FROM ledger.events WHERE event_id = ANY($1::uuid[])", ids
    )
    return {r["id"] for r in rows}


async def _wait_counted(conn: asyncpg.Connection, ids: list[str], within_s: float) -> float:
    """Seconds until every one of ``ids`` is in ledger.events; fails after ``within_s``."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if await _counted(conn, ids) == set(ids):
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    missing = set(ids) - await _counted(conn, ids)
    raise AssertionError(f"{len(missing)} of {len(ids)} events not counted after {within_s} s")


async def _order(conn: asyncpg.Connection, operation_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT event_id::text AS id FROM ledger.events WHERE operation_id = $1 ORDER BY seq",
        operation_id,
    )
    return [r["id"] for r in rows]


async def _dlq_records(bootstrap: str, topic: str) -> int:
    """Records on the dead-letter topic (0 when it was never created)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 30)
    try:
        exists = topic in await consumer.topics()
    finally:
        await asyncio.wait_for(consumer.stop(), 30)
    if not exists:
        return 0
    return sum((await topic_end_offsets(bootstrap, topic)).values())


class Held:
    """A separate session holding operation A's chain-head row in an open transaction."""

    def __init__(self, dsn: str, operation_id: str) -> None:
        self.dsn = dsn
        self.operation_id = operation_id
        self.conn: asyncpg.Connection | None = None
        self.tx: Any = None

    async def __aenter__(self) -> Held:
        self.conn = await asyncpg.connect(self.dsn, timeout=10)
        self.tx = self.conn.transaction()
        await self.tx.start()
        locked = await self.conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM ledger.chain_heads WHERE operation_id = $1"
            " FOR UPDATE) AS h",
            self.operation_id,
        )
        assert locked == 1, "operation A has no chain head to hold"
        return self

    async def release(self) -> None:
        if self.conn is not None:
            await self.tx.rollback()
            await self.conn.close()
            self.conn = None

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


async def _setup(
    cluster: Cluster,
) -> tuple[ServiceProcess, ServiceProcess, tuple[str, str], tuple[str, str], Fates]:
    ingest = cluster.spawn("ingest")
    aggregator = cluster.spawn(
        "aggregator",
        OPSLEDGER_AGGREGATOR_LOCK_TIMEOUT_MS=LOCK_TIMEOUT_MS,
        OPSLEDGER_AGGREGATOR_RETRY_MAX_S="1",
    )
    (a, token_a), (b, token_b) = _two_operations(cluster)
    fates = Fates()
    # One event each first: both operations get their chain head (the row held below).
    async with httpx.AsyncClient(timeout=15) as client:
        for op, token in ((a, token_a), (b, token_b)):
            event = clean_event(op)
            fates.sent[event["event_id"]] = event
            await _post(client, ingest.url, token, event)
            fates.ack(event)
    return ingest, aggregator, (a, token_a), (b, token_b), fates


async def _send_both(
    ingest: ServiceProcess, a: tuple[str, str], b: tuple[str, str], fates: Fates
) -> tuple[list[str], list[str], set[int]]:
    """EVENTS_EACH events of A and of B, interleaved; their ids in sending order, partitions."""
    sent: dict[str, list[str]] = {a[0]: [], b[0]: []}
    partitions: dict[str, set[int]] = {a[0]: set(), b[0]: set()}
    async with httpx.AsyncClient(timeout=15) as client:
        for _ in range(EVENTS_EACH):
            for op, token in (a, b):
                event = clean_event(op)
                fates.sent[event["event_id"]] = event
                partitions[op].add(await _post(client, ingest.url, token, event))
                fates.ack(event)
                sent[op].append(event["event_id"])
    assert len(partitions[a[0]]) == len(partitions[b[0]]) == 1
    assert partitions[a[0]] != partitions[b[0]], partitions
    return sent[a[0]], sent[b[0]], partitions[a[0]]


async def _send(ingest: ServiceProcess, op: tuple[str, str], fates: Fates, n: int) -> list[str]:
    """``n`` more events of one operation, in order; their ids."""
    ids = []
    async with httpx.AsyncClient(timeout=15) as client:
        for _ in range(n):
            event = clean_event(op[0])
            fates.sent[event["event_id"]] = event
            await _post(client, ingest.url, op[1], event)
            fates.ack(event)
            ids.append(event["event_id"])
    return ids


async def test_a_held_partition_waits_alone_and_applies_once_in_order_after(
    cluster: Cluster, record_result: Any
) -> None:
    ingest, aggregator, a, b, fates = await _setup(cluster)
    conn = await asyncpg.connect(cluster.dsn, timeout=10)
    try:
        await _wait_counted(conn, list(fates.acked), 60)
        before_a = await _order(conn, a[0])
        async with Held(cluster.dsn, a[0]) as held:
            a_ids, b_ids, (a_partition,) = await _send_both(ingest, a, b, fates)
            others_s = await _wait_counted(conn, b_ids, OTHERS_WITHIN_S)
            await asyncio.sleep(HOLD_S)
            assert not await _counted(conn, a_ids), "A's events applied through a held lock"
            async with httpx.AsyncClient(timeout=10) as client:
                ready = (await client.get(f"{aggregator.url}/readyz")).json()
                metrics_text = (await client.get(f"{aggregator.url}/metrics")).text
            held_detail = ready.get("held", {})
            assert str(a_partition) in held_detail, ready
            assert held_detail[str(a_partition)]["retries"] >= 1, ready
            assert f'opsledger_aggregator_partition_held{{partition="{a_partition}"}} 1.0' in (
                metrics_text
            )
            # The held partition is paused: A's later records stay in Kafka, not in memory.
            holding = held_detail[str(a_partition)]["records"]
            a_ids += await _send(ingest, a, fates, EVENTS_EACH)
            await asyncio.sleep(HOLD_S / 2)
            async with httpx.AsyncClient(timeout=10) as client:
                ready = (await client.get(f"{aggregator.url}/readyz")).json()
            assert ready["held"][str(a_partition)]["records"] == holding, ready
            assert not await _counted(conn, a_ids)
            await held.release()
            released = time.monotonic()
        after_s = await _wait_counted(conn, a_ids, AFTER_RELEASE_S)
        assert await _order(conn, a[0]) == before_a + a_ids  # once each, in the order sent
        dead = await conn.fetchval(
            "SELECT count(*) FROM dlq.dead_letters WHERE topic = $1", cluster.topic
        )
    finally:
        await conn.close()
    assert dead == 0, "a transient failure was dead-lettered"
    assert await _dlq_records(cluster.bootstrap, f"{cluster.topic}.dlq") == 0
    async with httpx.AsyncClient(timeout=10) as client:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready = (await client.get(f"{aggregator.url}/readyz")).json()
            if not ready.get("held"):
                break
            await asyncio.sleep(0.5)
    assert not ready.get("held"), ready
    report = await check(
        fates, dsn=cluster.dsn, bootstrap=cluster.bootstrap, topic=cluster.topic,
        groups=[cluster.group],
    )  # fmt: skip
    record_result(
        report,
        others_counted_within_s=round(others_s, 2),
        held_counted_after_release_s=round(after_s, 2),
        waited_after_release_s=round(time.monotonic() - released, 1),
    )
    assert report.ok, report.explain()


async def test_sigterm_while_a_partition_is_held_stops_quickly_and_restarts_exactly_once(
    cluster: Cluster, record_result: Any
) -> None:
    ingest, aggregator, a, b, fates = await _setup(cluster)
    conn = await asyncpg.connect(cluster.dsn, timeout=10)
    try:
        await _wait_counted(conn, list(fates.acked), 60)
        before_a = await _order(conn, a[0])
        async with Held(cluster.dsn, a[0]):
            a_ids, b_ids, _ = await _send_both(ingest, a, b, fates)
            await _wait_counted(conn, b_ids, OTHERS_WITHIN_S)
            await asyncio.sleep(HOLD_S / 2)
            started = time.monotonic()
            aggregator.stop(timeout_s=30)
            stop_s = time.monotonic() - started
        assert stop_s < 10, f"SIGTERM with a held partition took {stop_s:.1f} s"
        assert not await _counted(conn, a_ids)
        aggregator.start()
        after_s = await _wait_counted(conn, a_ids, AFTER_RELEASE_S + 30)
        assert await _order(conn, a[0]) == before_a + a_ids
        dead = await conn.fetchval(
            "SELECT count(*) FROM dlq.dead_letters WHERE topic = $1", cluster.topic
        )
    finally:
        await conn.close()
    assert dead == 0, "a transient failure was dead-lettered"
    report = await check(
        fates, dsn=cluster.dsn, bootstrap=cluster.bootstrap, topic=cluster.topic,
        groups=[cluster.group],
    )  # fmt: skip
    record_result(report, stop_s=round(stop_s, 2), counted_after_restart_s=round(after_s, 2))
    assert report.ok, report.explain()
