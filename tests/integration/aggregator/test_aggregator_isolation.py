"""A record the database refuses stops nothing but itself: it goes to the DLQ, the rest moves on."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from schemas.examples import example_events
from schemas.parsing import parse_event
from schemas.tally import fold

from .harness import AggregatorProcess, Target, metrics_of, produce, submission, wait_applied

pytestmark = pytest.mark.integration


def fresh_events(op: str, n: int, **fields: Any) -> list[dict[str, Any]]:
    base = [e for e in example_events() if e["type"] != "event_voided"]
    return [
        base[i % len(base)] | {"event_id": str(uuid.uuid4()), "operation_id": op} | fields
        for i in range(n)
    ]


@pytest.fixture
async def refused_officer(database_url: str, unique_id: str) -> AsyncIterator[str]:
    """An officer id that PostgreSQL refuses (a CHECK constraint on new rows) though the contract
    accepts it: a record the database refuses for a reason that will not go away."""
    officer = f"refused-{unique_id}"
    name = f"test_refuse_{unique_id}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            f"ALTER TABLE ledger.events ADD CONSTRAINT {name}"
            f" CHECK (officer_id <> '{officer}') NOT VALID"
        )
        yield officer
    finally:
        await conn.execute(f"ALTER TABLE ledger.events DROP CONSTRAINT IF EXISTS {name}")
        await conn.close()


async def dead_letters(target: Target, want: int, timeout_s: float = 30) -> list[Any]:
    consumer = AIOKafkaConsumer(
        target.dlq, bootstrap_servers=target.kafka, auto_offset_reset="earliest",
        enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            out += [m for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    return out


async def test_a_record_the_database_refuses_goes_alone_to_the_dlq_and_the_rest_is_counted(
    target: Target, tmp_path: Path, refused_officer: str
) -> None:
    target.partitions = 1  # one partition: the refused record sits between good ones
    good, other = f"good-{target.topic}", f"other-{target.topic}"
    before, after, others = fresh_events(good, 5), fresh_events(good, 7), fresh_events(other, 3)
    refused = fresh_events(other, 2)
    refused[1]["actor"] = {"officer_id": refused_officer, "unit": "Stronghold North"}
    records = [
        (good, submission(before)),
        (other, submission(refused)),  # offset 1: one of its two events is refused
        (good, submission(after)),
        (other, submission(others)),
    ]
    aggregator = AggregatorProcess(target, tmp_path)
    try:
        await aggregator.start()
        await produce(target, records)
        await wait_applied(target, len(records), timeout_s=60)
    finally:
        aggregator.stop()
    assert await metrics_of(target.database_url, good) == {
        k: v for k, v in fold(parse_event(e) for e in before + after).metrics.items() if v
    }
    assert await metrics_of(target.database_url, other) == {
        k: v for k, v in fold(parse_event(e) for e in others).metrics.items() if v
    }
    dead = await dead_letters(target, 1)
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert dead[0].value == records[1][1]
    assert headers["opsledger-source-partition"] == b"0"
    assert headers["opsledger-source-offset"] == b"1"
    assert b"check" in headers["opsledger-reason"].lower()
    assert b"23514" in headers["opsledger-reason"]
    # `opsledger rebuild` follows the same rule: it meets the refused record, isolates it, and
    # ends equal to the live ledger instead of stopping.
    from services.audit.rebuild import rebuild
    from services.common.auth import Principal
    from services.common.db import create_pool

    pool = await create_pool(target.database_url, max_size=4)
    try:
        report = await rebuild(
            pool, target.kafka, target.topic, principal=Principal("test", "auditor"),
            consumer_group=target.group, only_seen=True,
        )  # fmt: skip
    finally:
        await pool.close()
    assert (report.poison, report.records, report.matches) == (1, 4, True), report.to_dict()


async def test_a_nul_in_an_officer_id_stops_only_its_own_record(
    target: Target, tmp_path: Path
) -> None:
    target.partitions = 1
    good, bad = f"good-{target.topic}", f"nul-{target.topic}"
    nul = fresh_events(bad, 1, actor={"officer_id": "PC\u00001234", "unit": "Stronghold"})
    after = fresh_events(good, 4)
    records = [(bad, submission(nul)), (good, submission(after))]
    aggregator = AggregatorProcess(target, tmp_path)
    try:
        await aggregator.start()
        await produce(target, records)
        await wait_applied(target, len(records), timeout_s=60)
    finally:
        aggregator.stop()
    assert await metrics_of(target.database_url, good) == {
        k: v for k, v in fold(parse_event(e) for e in after).metrics.items() if v
    }
    assert await metrics_of(target.database_url, bad) == {}
    dead = await dead_letters(target, 1)
    assert [(dict(m.headers)["opsledger-source-offset"], m.value) for m in dead] == [
        (b"0", records[0][1])
    ]
    assert dict(dead[0].headers)["opsledger-reason"]  # the database's (or contract's) reason


def opsledger(target: Target, *args: str) -> Any:
    """Run `opsledger dlq ... --json` as an operator would; return its parsed output."""
    import json
    import os
    import subprocess
    import sys

    from services.stack.devissuer.tokens import dev_token

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": target.kafka,
        "DATABASE_URL": target.database_url,
        "OPSLEDGER_TOPIC": target.topic,
        "OPSLEDGER_TOKEN": dev_token("admin", subject="dlq-operator"),
    }
    done = subprocess.run(  # noqa: S603 - our own console script
        [sys.executable, "-m", "services.cli.main", "dlq", *args, "--json"],
        env=env, capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


async def test_an_operator_replays_a_dead_letter_once_after_the_fix_and_discards_another(
    target: Target, tmp_path: Path, database_url: str, unique_id: str
) -> None:
    target.partitions = 1
    op = f"dlq-{target.topic}"
    officer = f"refused-{unique_id}"
    constraint = f"test_refuse_{unique_id}"
    refused = fresh_events(op, 2, actor={"officer_id": officer, "unit": "Stronghold"})
    good = fresh_events(op, 3)
    records = [(op, submission(refused)), (op, b"\xff undecodable"), (op, submission(good))]
    conn = await asyncpg.connect(database_url)
    await conn.execute(
        f"ALTER TABLE ledger.events ADD CONSTRAINT {constraint}"
        f" CHECK (officer_id <> '{officer}') NOT VALID"
    )
    aggregator = AggregatorProcess(target, tmp_path)
    try:
        await aggregator.start()
        await produce(target, records)
        await wait_applied(target, len(records), timeout_s=60)
        listed = opsledger(target, "list")
        assert [(x["position"], x["status"]) for x in listed] == [("0:0", "dead"), ("0:1", "dead")]
        assert "23514" in listed[0]["reason"]
        deadline = time.monotonic() + 20
        while (await aggregator.readyz())[1].get("dlq_depth") != 2:
            assert time.monotonic() < deadline, await aggregator.readyz()
            await asyncio.sleep(0.5)
        assert await aggregator.metric("opsledger_aggregator_dlq_depth") == 2
        shown = opsledger(target, "show", "0:0")
        assert officer in shown["value"]
        # The fix: the database accepts the record now. Replay twice: applied once.
        await conn.execute(f"ALTER TABLE ledger.events DROP CONSTRAINT {constraint}")
        first = opsledger(target, "replay", "0:0")
        again = opsledger(target, "replay", "0:0")
        assert (first["sent_now"], first["replayed_to"]) == (True, "0:3")
        assert (again["sent_now"], again["status"]) == (False, "replayed")
        discarded = opsledger(target, "discard", "0:1", "--reason", "test bytes, not an event")
        assert (discarded["status"], discarded["note"]) == ("discarded", "test bytes, not an event")
        await wait_applied(target, len(records) + 1, timeout_s=60)
        deadline = time.monotonic() + 20
        while (await aggregator.readyz())[1].get("dlq_depth") != 0:
            assert time.monotonic() < deadline, await aggregator.readyz()
            await asyncio.sleep(0.5)
        assert opsledger(target, "list") == []
        assert [x["status"] for x in opsledger(target, "list", "--all")] == [
            "replayed", "discarded"
        ]  # fmt: skip
        actions = await conn.fetch(
            "SELECT action FROM audit.access_log WHERE params->>'topic' = $1 ORDER BY id",
            target.topic,
        )
        assert [r["action"] for r in actions] == [
            "dlq_list", "dlq_show", "dlq_replay", "dlq_replay", "dlq_discard", "dlq_list",
            "dlq_list",
        ]  # fmt: skip
    finally:
        aggregator.stop()
        await conn.execute(f"ALTER TABLE ledger.events DROP CONSTRAINT IF EXISTS {constraint}")
        await conn.close()
    assert await metrics_of(target.database_url, op) == {
        k: v for k, v in fold(parse_event(e) for e in refused + good).metrics.items() if v
    }
