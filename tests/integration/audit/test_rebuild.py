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

from services.audit.rebuild import TotalsDifference, rebuild
from services.audit.service import verify_operation
from services.common.auth import Principal
from services.common.wire import Submission, encode_submission

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
