"""Rebuild from a real Kafka topic equals the live projection to the unit, voids and
duplicates included; differences are named; --until replays to a point in time.

Each test owns its topic and operations, and compares only the operations of its topic
(the database is shared); none swaps the shared schema (see test_swap.py).
"""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from services.audit.bulk import BYTES_PER_EVENT
from services.audit.rebuild import TotalsDifference, rebuild
from services.audit.service import verify_operation
from services.common.auth import Principal
from services.common.wire import Submission, encode_submission
from services.ledger.shadow import (
    create_shadow,
    drop_schema,
    drop_secondary_indexes,
    finish_bulk_load,
    shadow_name,
)

from .conftest import T0, Live, forget, operation_events, produce, submissions
from .test_verify_db import cli

pytestmark = pytest.mark.integration
AUDITOR = Principal(subject="test-auditor", role="auditor")


def _stream(unique_id: str) -> tuple[list[str], list[tuple[str, bytes]]]:
    """Two operations' events with a retried submission, a conflict and a void before its target."""
    ops = [f"rebuild-a-{unique_id}", f"rebuild-b-{unique_id}"]
    keyed: list[tuple[str, bytes]] = []
    events = {op: operation_events(op) for op in ops}
    for op in ops:
        values = submissions(op, events[op])
        keyed += [(op, v) for v in values]
        keyed.append((op, values[1]))  # a producer retry: the same submission again
    # an event_id already recorded, with other content: a conflict, recorded and not counted
    changed = copy.deepcopy(events[ops[0]][0])
    changed["payload"]["warrant_ref"] = "W-ALTERED"
    keyed.append((ops[0], _sub(ops[0], [changed], minutes=30)))
    # a void that arrives before the event it voids
    target = copy.deepcopy(events[ops[1]][0])
    target["event_id"] = str(uuid.uuid4())
    void = copy.deepcopy(events[ops[1]][12])
    void["event_id"] = str(uuid.uuid4())
    void["payload"]["voided_event_id"] = target["event_id"]
    keyed.append((ops[1], _sub(ops[1], [void], minutes=31)))
    keyed.append((ops[1], _sub(ops[1], [target], minutes=32)))
    return ops, keyed


def _sub(op: str, events: list[dict], *, minutes: int) -> bytes:
    return encode_submission(
        Submission(op, (T0 + timedelta(minutes=minutes)).isoformat(), "field-officer-2", events)
    )


async def _live_stream(live: Live, kafka_bootstrap: str, topic: str, unique_id: str) -> list[str]:
    ops, keyed = _stream(unique_id)
    records = await produce(kafka_bootstrap, topic, keyed)
    half = len(records) // 2
    await live.apply(records[:half])  # two batches, as a live consumer would
    await live.apply(records[half:])
    return ops


@pytest.mark.parametrize("workers", [1, 2])
async def test_rebuild_equals_live_to_the_unit(
    pool: asyncpg.Pool,
    kafka_bootstrap: str,
    topic: str,
    unique_id: str,
    database_url: str,
    workers: int,
) -> None:
    live = Live(pool, topic, f"audit-test-{unique_id}")
    ops = await _live_stream(live, kafka_bootstrap, topic, unique_id)
    for op in ops:  # the live side is itself sound
        async with pool.acquire() as conn:
            assert (await verify_operation(conn, op)).ok
    report = await rebuild(
        pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group,
        only_seen=True, dsn=database_url, workers=workers,
    )  # fmt: skip
    assert report.matches, report.to_dict()
    assert report.operations == 2
    assert report.events == 13 + 13 + 2
    assert report.conflicts == 1
    assert report.duplicates == 3 + 3  # each op's retried submission of 3 events
    # the shadow is gone; the rebuild is in the access log
    assert not await pool.fetchval(
        "SELECT count(*) FROM pg_namespace WHERE nspname = $1", report.shadow
    )
    logged = await pool.fetchrow(
        "SELECT principal, params FROM audit.access_log WHERE action = 'rebuild'"
        " AND params->>'topic' = $1",
        topic,
    )
    assert logged is not None and logged["principal"] == "test-auditor"


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("where", ["up front", "mid-way"])
async def test_a_rebuild_past_its_memory_bound_equals_live_to_the_unit(
    pool: asyncpg.Pool,
    kafka_bootstrap: str,
    topic: str,
    unique_id: str,
    database_url: str,
    workers: int,
    where: str,
) -> None:
    """Past the bound the first pass looks ids up in the shadow instead of keeping them: the
    same ledger, voids, duplicates and conflicts included, and the report says so."""
    ops, keyed = _stream(unique_id)
    records = await produce(kafka_bootstrap, topic, keyed)
    live = Live(pool, topic, f"audit-test-{unique_id}")
    await live.apply(records)
    # Up front: fewer events than the log has records. Mid-way: as many as its records (the
    # log passes the check made before the load), fewer than its events (~3 per record).
    bound = 1 if where == "up front" else len(records)
    report = await rebuild(
        pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group,
        only_seen=True, dsn=database_url, workers=workers,
        memory_bytes=bound * BYTES_PER_EVENT, keep_shadow=True,
    )  # fmt: skip
    assert report.matches, report.to_dict()
    said = "more than the rebuild's memory bound" if where == "up front" else "reached its share"
    assert [n for n in report.notes if "memory bound" in n and said in n], report.notes
    assert report.operations == 2
    assert report.events == 13 + 13 + 2
    assert report.conflicts == 1
    assert report.duplicates == 3 + 3
    assert report.poison == 0
    try:
        for op in ops:  # the rebuilt ledger's chains, trees and totals verify
            async with pool.acquire() as conn:
                checked = await verify_operation(conn, op, schema=report.shadow)
                assert checked.ok, checked
    finally:
        async with pool.acquire() as conn:
            await drop_schema(conn, report.shadow)


async def test_tampered_projection_is_named_by_the_rebuild(
    pool: asyncpg.Pool, kafka_bootstrap: str, topic: str, unique_id: str
) -> None:
    live = Live(pool, topic, f"audit-test-{unique_id}")
    ops = await _live_stream(live, kafka_bootstrap, topic, unique_id)
    await pool.execute(
        "UPDATE ledger.totals SET value = value + 100 WHERE operation_id = $1"
        " AND metric = 'cash_seized_pence'",
        ops[0],
    )
    report = await rebuild(
        pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group, only_seen=True
    )
    assert not report.matches
    assert report.totals_differences == [
        TotalsDifference(
            ops[0], "cash_seized_pence", "", "Buckinghamshire", "Stronghold Thames Valley",
            "2026-11-19", 1_250_100, 1_250_000,
        )
    ]  # fmt: skip
    assert report.head_differences == []
    await forget(pool, ops)  # leave no drifted totals in the shared database


async def test_until_replays_what_was_known_then(
    pool: asyncpg.Pool, kafka_bootstrap: str, topic: str, unique_id: str
) -> None:
    live = Live(pool, topic, f"audit-test-{unique_id}")
    await _live_stream(live, kafka_bootstrap, topic, unique_id)
    until = T0 + timedelta(minutes=2, seconds=30)  # the first three submissions of each op
    report = await rebuild(
        pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group,
        only_seen=True, until=until,
    )  # fmt: skip
    assert report.matches, report.to_dict()  # against the live ledger's known_at view
    assert report.events == 9 + 9
    assert report.duplicates == 3 + 3


async def test_cli_rebuild_of_a_topic(
    pool: asyncpg.Pool, kafka_bootstrap: str, topic: str, unique_id: str, database_url: str
) -> None:
    live = Live(pool, topic, f"audit-test-{unique_id}")
    await _live_stream(live, kafka_bootstrap, topic, unique_id)
    done = await cli(
        "rebuild", "--topic", topic, "--only-seen",
        database_url=database_url,
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        OPSLEDGER_CONSUMER_GROUP=live.group,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rebuilt projection equals the live one (2 operations)" in done.stdout


async def test_until_between_a_void_and_its_late_target(
    pool: asyncpg.Pool, kafka_bootstrap: str, topic: str, unique_id: str
) -> None:
    """Known at 08:31:30 the void (08:31) was recorded but not its target (08:32): no effect."""
    live = Live(pool, topic, f"audit-test-{unique_id}")
    await _live_stream(live, kafka_bootstrap, topic, unique_id)
    report = await rebuild(
        pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group,
        only_seen=True, until=T0 + timedelta(minutes=31, seconds=30),
    )  # fmt: skip
    assert report.matches, report.to_dict()


async def _produce_to(
    bootstrap: str, topic: str, placed: list[tuple[int, str, bytes]]
) -> list[tuple[int, int, bytes]]:
    """Produce (partition, key, value) records to the partitions named; return their places."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        out = []
        for partition, key, value in placed:
            meta = await producer.send_and_wait(topic, value, key=key.encode(), partition=partition)
            out.append((meta.partition, meta.offset, value))
        return out
    finally:
        await producer.stop()


async def test_an_event_id_shared_by_two_workers_partitions_is_one_event_and_one_conflict(
    pool: asyncpg.Pool, kafka_bootstrap: str, topic: str, unique_id: str, database_url: str
) -> None:
    """Two workers each hold only their own partitions' ids: the same event_id sent to two
    operations in partitions of different workers is still one event and one conflict."""
    ops = [f"rebuild-x-{unique_id}", f"rebuild-y-{unique_id}"]
    events = {op: operation_events(op) for op in ops}
    shared = copy.deepcopy(events[ops[0]][1])  # a warrant of x, its id reused in y
    shared["operation_id"] = ops[1]
    events[ops[1]][1] = shared
    # 3 partitions, 2 workers: partitions 0 and 2 go to one, 1 to the other.
    placed = [(0, ops[0], v) for v in submissions(ops[0], events[ops[0]])]
    placed += [(1, ops[1], v) for v in submissions(ops[1], events[ops[1]])]
    records = await _produce_to(kafka_bootstrap, topic, placed)
    live = Live(pool, topic, f"audit-test-{unique_id}")
    await live.apply(records)
    report = await rebuild(
        pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group,
        only_seen=True, dsn=database_url, workers=2,
    )  # fmt: skip
    assert report.poison == 0
    assert report.conflicts == 1
    assert report.events == 13 + 12
    assert any("across partitions" in n for n in report.notes), report.notes
    # Which operation's copy came first is the order two partitions were read in, live and
    # rebuilt alike; when it is the same order, the ledgers are equal.
    winner = await pool.fetchval(
        "SELECT operation_id FROM ledger.events WHERE event_id = $1", uuid.UUID(shared["event_id"])
    )
    assert winner in ops
    await forget(pool, ops)


@pytest.mark.parametrize("bounded", [False, True])
async def test_a_poison_record_is_dead_lettered_by_the_rebuild_as_live_does(
    pool: asyncpg.Pool,
    kafka_bootstrap: str,
    topic: str,
    unique_id: str,
    database_url: str,
    bounded: bool,
) -> None:
    live = Live(pool, topic, f"audit-test-{unique_id}")
    op = f"rebuild-p-{unique_id}"
    values = submissions(op, operation_events(op))
    keyed = [(op, v) for v in values[:2]] + [(op, b'{"not": "a submission"}')]
    keyed += [(op, v) for v in values[2:]]
    records = await produce(kafka_bootstrap, topic, keyed)
    await live.apply(records)
    partition, offset, _ = records[2]
    reason = await pool.fetchval(
        'DELETE FROM dlq.dead_letters WHERE topic = $1 AND partition = $2 AND "offset" = $3'
        " RETURNING reason",
        topic, partition, offset,
    )  # fmt: skip
    assert reason  # live dead-lettered it; now only the rebuild can record it again
    report = await rebuild(
        pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group,
        only_seen=True, dsn=database_url, workers=2,
        memory_bytes=BYTES_PER_EVENT if bounded else None,
    )  # fmt: skip
    assert report.matches, report.to_dict()
    assert any("memory bound" in n for n in report.notes) == bounded, report.notes
    assert report.poison == 1
    assert report.events == 13
    again = await pool.fetch(
        'SELECT reason FROM dlq.dead_letters WHERE topic = $1 AND partition = $2 AND "offset" = $3',
        topic, partition, offset,
    )  # fmt: skip
    assert [r["reason"] for r in again] == [reason]


async def test_a_bulk_loaded_shadow_has_exactly_the_live_indexes(pool: asyncpg.Pool) -> None:
    """Same names, same definitions, nothing twice: a swap must bring live's indexes back."""
    shadow = shadow_name()
    indexes = (
        "SELECT tablename, indexname, regexp_replace(indexdef, ' ON \\S+?\\.', ' ON ')"
        " FROM pg_indexes WHERE schemaname = $1 ORDER BY 1, 2"
    )
    async with pool.acquire() as conn:
        await create_shadow(conn, shadow)
        try:
            await drop_secondary_indexes(conn, shadow, keep_keys=False)
            await finish_bulk_load(pool, shadow)
            assert [tuple(r) for r in await conn.fetch(indexes, shadow)] == [
                tuple(r) for r in await conn.fetch(indexes, "ledger")
            ]
        finally:
            await drop_schema(conn, shadow)
