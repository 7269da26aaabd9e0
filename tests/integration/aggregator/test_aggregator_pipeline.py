"""The aggregator end to end on the real broker and PostgreSQL: exact totals whatever happens."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from schemas.examples import example_events
from schemas.parsing import parse_event
from schemas.tally import fold
from services.demo.data import REFERENCE, week_of_action

from .harness import (
    AggregatorProcess,
    Target,
    chain_problems,
    event_count,
    metrics_of,
    produce,
    submission,
    wait_applied,
    wait_in_transaction,
)

pytestmark = pytest.mark.integration


def nonzero(metrics: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in metrics.items() if v}


def fresh_events(op: str, n: int) -> list[dict[str, Any]]:
    """n valid, distinct, non-void events of ``op``."""
    base = [e for e in example_events() if e["type"] != "event_voided"]
    out = []
    for i in range(n):
        e = dict(base[i % len(base)])
        e.update({"event_id": str(uuid.uuid4()), "operation_id": op})
        out.append(e)
    return out


async def test_the_week_of_action_gives_exactly_the_published_tally(
    target: Target, aggregator: AggregatorProcess
) -> None:
    week = week_of_action(operation_id=f"woa-{target.topic}")
    records = [(week.operation_id, submission(s.events)) for s in week.sends]
    await aggregator.start()
    await produce(target, records)
    await wait_applied(target, len(records))
    assert await metrics_of(target.database_url, week.operation_id) == nonzero(REFERENCE)
    unique = len({e["event_id"] for s in week.sends for e in s.events})
    assert await event_count(target.database_url, week.operation_id) == unique
    assert await chain_problems(target.database_url, week.operation_id) == []
    assert await aggregator.metric("opsledger_aggregator_duplicates_total") == week.duplicates


async def test_the_same_events_three_times_shuffled_count_once(
    target: Target, aggregator: AggregatorProcess
) -> None:
    op = f"thrice-{target.topic}"
    events = fresh_events(op, 300)
    events.append(example_events("event_voided")[0] | {
        "event_id": str(uuid.uuid4()), "operation_id": op,
        "payload": {"voided_event_id": events[5]["event_id"], "reason": "twice"},
    })  # fmt: skip
    rng = random.Random(3)
    records = []
    for _ in range(3):
        shuffled = events[:]
        rng.shuffle(shuffled)
        while shuffled:
            size = rng.randint(1, 40)
            records.append((op, submission(shuffled[:size])))
            shuffled = shuffled[size:]
    await produce(target, records)
    await aggregator.start()
    await wait_applied(target, len(records))
    expected = nonzero(fold(parse_event(e) for e in events).metrics)
    assert await metrics_of(target.database_url, op) == expected
    assert await event_count(target.database_url, op) == len(events)
    assert await chain_problems(target.database_url, op) == []


async def test_killed_mid_batch_and_restarted_the_totals_are_exact(
    target: Target, aggregator: AggregatorProcess
) -> None:
    ops = [f"kill-{i}-{target.topic}" for i in range(6)]
    events = {op: fresh_events(op, 4000) for op in ops}
    records = [
        (op, submission(evs[i : i + 50])) for op, evs in events.items() for i in range(0, 4000, 50)
    ]
    await produce(target, records)
    await aggregator.start()
    applied = 0
    while applied < 2000:  # well into the run, far from its end
        applied = sum([await event_count(target.database_url, op) for op in ops])
    assert aggregator.proc is not None
    # Killed while a batch transaction has written rows and not committed.
    await wait_in_transaction(target.database_url, aggregator.proc.pid)
    aggregator.kill()
    applied = sum([await event_count(target.database_url, op) for op in ops])
    assert applied < 24000, "the run finished before the kill; the test proves nothing"
    await aggregator.start()
    await wait_applied(target, len(records))
    for op, evs in events.items():
        assert await metrics_of(target.database_url, op) == nonzero(
            fold(parse_event(e) for e in evs).metrics
        )
        assert await event_count(target.database_url, op) == len(evs)
        assert await chain_problems(target.database_url, op) == []


async def test_a_poison_record_goes_to_the_dlq_and_later_events_are_counted(
    target: Target, tmp_path: Path
) -> None:
    op = f"poison-{target.topic}"
    before, after = fresh_events(op, 3), fresh_events(op, 4)
    invalid = fresh_events(op, 1)[0] | {"payload": {"warrant_ref": 7}}
    records = [
        (op, submission(before)),
        (op, b"\xff not a submission"),
        (op, submission([invalid])),
        (op, submission(after)),
    ]
    await produce(target, records)
    aggregator = AggregatorProcess(target, tmp_path, OPSLEDGER_AGGREGATOR_STALL_AFTER_S="2")
    try:
        await aggregator.start()
        await wait_applied(target, len(records))
        aggregator.stop()
        # Restarted with nothing new to read, it stays ready: no lag is mistaken for a stall.
        await aggregator.start()
        await asyncio.sleep(4)
        assert await aggregator.readyz() == (200, {"status": "ready", "problems": [], "lag": {
            "0": 0, "1": 0, "2": 0}, "dlq_depth": 2})  # fmt: skip
        assert await aggregator.metric("opsledger_aggregator_dead_lettered_total") == 0
    finally:
        aggregator.stop()
    expected = nonzero(fold(parse_event(e) for e in before + after).metrics)
    assert await metrics_of(target.database_url, op) == expected
    consumer = AIOKafkaConsumer(
        target.dlq, bootstrap_servers=target.kafka, auto_offset_reset="earliest",
        enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
        dead = [m for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    assert [m.value for m in dead][:1] == [b"\xff not a submission"]
    headers = [dict(m.headers) for m in dead]
    assert len(dead) == 2
    assert [h["opsledger-source-offset"] for h in headers] == [b"1", b"2"]
    assert all(h["opsledger-source-topic"] == target.topic.encode() for h in headers)
    assert b"payload.warrant_ref" in headers[1]["opsledger-reason"]


async def test_a_void_before_its_target_and_a_conflicting_resend(
    target: Target, aggregator: AggregatorProcess
) -> None:
    op = f"voids-{target.topic}"
    phones, other = fresh_events(op, 2)
    phones |= {"type": "item_seized", "payload": {"item": "mobile_phone", "quantity": 5}}
    void = example_events("event_voided")[0] | {
        "event_id": str(uuid.uuid4()), "operation_id": op,
        "payload": {"voided_event_id": phones["event_id"], "reason": "wrong premises"},
    }  # fmt: skip
    changed = other | {"source": {"device_id": "tablet-999"}}  # same id, other content
    await aggregator.start()
    await produce(target, [(op, submission([void])), (op, submission([phones, other]))])
    await produce(target, [(op, submission([changed])), (op, submission([void]))])
    await wait_applied(target, 4)
    assert await metrics_of(target.database_url, op) == nonzero(fold([parse_event(other)]).metrics)
    assert await aggregator.metric("opsledger_aggregator_conflicts_total") == 1
    import asyncpg

    conn = await asyncpg.connect(target.database_url)
    try:
        conflict = await conn.fetchrow(
            "SELECT event_id::text AS id FROM ledger.conflicts WHERE operation_id = $1", op
        )
        applied = await conn.fetchval(
            "SELECT applied FROM ledger.voids WHERE target_event_id = $1::uuid",
            phones["event_id"],
        )
    finally:
        await conn.close()
    assert conflict is not None and conflict["id"] == other["event_id"]
    assert applied is True
    assert await chain_problems(target.database_url, op) == []
