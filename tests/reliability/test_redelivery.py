"""Full redelivery of the log: the totals do not move.

Two ways to make the aggregator see every record again:

* its consumer group's Kafka offsets reset to the beginning (what an operator does with
  ``kafka-consumer-groups --reset-offsets --to-earliest``): the offsets kept in PostgreSQL with
  the rows say every record is applied already;
* a brand-new consumer group on the same ledger (no stored offsets at all): every event goes
  through the writer again and must be recognised by its event_id.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from .checker import check, topic_end_offsets, wait_applied
from .conftest import Cluster
from .oracle import Oracle, devices_for


async def _totals(dsn: str, operations: list[str]) -> dict[tuple[object, ...], int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT operation_id, metric, detail, area, unit, day, value FROM ledger.totals"
            " WHERE operation_id = ANY($1::text[]) AND value <> 0",
            operations,
        )
        events = await conn.fetchval(
            "SELECT count(*) FROM ledger.events WHERE operation_id = ANY($1::text[])", operations
        )
    finally:
        await conn.close()
    return {tuple(r.values())[:-1]: r["value"] for r in rows} | {("events",): events}


async def _reset_to_earliest(bootstrap: str, topic: str, group: str) -> None:
    ends = await topic_end_offsets(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in ends]
        consumer.assign(tps)
        await consumer.commit({tp: 0 for tp in tps})
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def _wait_committed_to_end(bootstrap: str, topic: str, group: str, timeout_s: float) -> None:
    ends = await topic_end_offsets(bootstrap, topic)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        have = await _committed(bootstrap, topic, group)
        if all(have.get(p, -1) >= end for p, end in ends.items() if end > 0):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{group} did not re-consume {topic}: committed {have}, ends {ends}")


async def test_full_redelivery_leaves_totals_unchanged(cluster: Cluster, record_result) -> None:
    ingest = cluster.spawn("ingest")
    aggregator = cluster.spawn("aggregator")
    ops = cluster.operations(2)
    fates = await Oracle([ingest.url]).run(devices_for(ops, 3), events=300)
    first = await check(
        fates, dsn=cluster.dsn, bootstrap=cluster.bootstrap, topic=cluster.topic,
        groups=[cluster.group],
    )  # fmt: skip
    assert first.ok, first.explain()
    before = await _totals(cluster.dsn, sorted(ops))

    # 1. The group's Kafka offsets reset to the beginning, the aggregator restarted.
    aggregator.stop()  # a clean leave, so the group is empty and its offsets can be changed
    await _reset_to_earliest(cluster.bootstrap, cluster.topic, cluster.group)
    assert set((await _committed(cluster.bootstrap, cluster.topic, cluster.group)).values()) == {0}
    aggregator.start()
    await _wait_committed_to_end(cluster.bootstrap, cluster.topic, cluster.group, 120)
    after_reset = await _totals(cluster.dsn, sorted(ops))
    aggregator.stop()

    # 2. A new consumer group: every record re-applied through the writer, deduplicated by id.
    fresh = f"{cluster.group}-fresh"
    replay = cluster.spawn("aggregator", OPSLEDGER_CONSUMER_GROUP=fresh)
    await wait_applied(cluster.dsn, cluster.bootstrap, cluster.topic, fresh, 180)
    after_replay = await _totals(cluster.dsn, sorted(ops))
    replay.stop()

    final = await check(
        fates, dsn=cluster.dsn, bootstrap=cluster.bootstrap, topic=cluster.topic,
        groups=[cluster.group, fresh],
    )  # fmt: skip
    record_result(final, rows_compared=len(before) - 1)
    assert after_reset == before
    assert after_replay == before
    assert final.ok, final.explain()
