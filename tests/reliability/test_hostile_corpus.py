"""The hostile corpus through the real ingest, broker, aggregator and PostgreSQL.

Every value of `hostile.py` is posted on its own (one request, one record), in order per
operation, with a clean event of the same operation after each field's values. Each value must
end as the contract promises: refused with a 4xx naming the field, or counted; every clean event
must be counted within seconds (nothing stalls behind a hostile value); the checker then proves
nothing was lost, duplicated or wrongly counted, `verify` is intact for every operation, and a
rebuild from the log equals the live ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.events import KINDS
from services.audit.rebuild import rebuild
from services.common.auth import Principal
from services.common.db import create_pool
from services.common.wire import Submission, encode_submission

from .checker import check
from .conftest import Cluster
from .hostile import (
    Case,
    clean_event,
    number_cases,
    structured_cases,
    text_cases,
    timestamp_cases,
)
from .oracle import Fates

AUDITOR = Principal(subject="reliability-auditor", role="auditor")
# A clean event sent after hostile ones must be counted within this long (2-core machine, seven
# engineers' loads: generous, but a stalled partition never gets there).
CLEAN_WITHIN_S = 20.0


async def _post(
    client: httpx.AsyncClient, url: str, token: str, body: bytes
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for _ in range(5):  # a 503 (broker busy) is retried with the same body, as a device would
        r = await client.post(f"{url}/v1/events", content=body, headers=headers)
        if r.status_code != 503:
            return r.status_code, r.json()
        await asyncio.sleep(1)
    return r.status_code, r.json()


def _field(case: Case) -> str:
    """The field a case attacks (its target without the value)."""
    return case.target.split(" = ")[0]


class Run:
    """Sends the cases of one operation in order and files every answer."""

    def __init__(self, url: str, fates: Fates) -> None:
        self.url = url
        self.fates = fates
        self.wrong: list[str] = []  # cases whose answer broke the promise
        self.answers: Counter[tuple[str, int]] = Counter()  # (class, status)
        self.clean_sent: dict[str, float] = {}  # event_id -> when it was acknowledged

    async def send(self, client: httpx.AsyncClient, token: str, case: Case) -> None:
        if case.tracked:
            self.fates.sent[case.event_id] = case.event()
        status, answer = await _post(client, self.url, token, case.body)
        self.answers[(case.klass, status)] += 1
        if status == 202:
            self.fates.ack(case.event())
        elif case.tracked:
            self.fates.refuse(case.event(), status)
        if case.fate == "counted" and status != 202:
            self.wrong.append(f"{case.target} [{case.klass}]: {status} {str(answer)[:200]}")
        elif case.fate == "refused":
            paths = [e.get("path") for e in answer.get("errors", [])]
            if status != case.status or (status == 422 and case.path not in paths):
                self.wrong.append(f"{case.target} [{case.klass}]: {status} {paths}")

    async def clean(self, client: httpx.AsyncClient, token: str, operation_id: str) -> None:
        event = clean_event(operation_id)
        self.fates.sent[event["event_id"]] = event
        status, answer = await _post(client, self.url, token, orjson.dumps(event))
        assert status == 202, answer
        self.fates.ack(event)
        self.clean_sent[event["event_id"]] = time.monotonic()

    async def operation(
        self, client: httpx.AsyncClient, operation_id: str, token: str, cases: list[Case]
    ) -> None:
        for i, case in enumerate(cases):
            await self.send(client, token, case)
            if i + 1 == len(cases) or _field(cases[i + 1]) != _field(case):
                await self.clean(client, token, operation_id)


async def _wait_counted(dsn: str, sent: dict[str, float]) -> dict[str, float]:
    """Seconds from acknowledgement to being in ledger.events, per clean event."""
    latency: dict[str, float] = {}
    deadline = time.monotonic() + CLEAN_WITHIN_S + 30
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        while len(latency) < len(sent) and time.monotonic() < deadline:
            waiting = [eid for eid in sent if eid not in latency]
            rows = await conn.fetch(
                "SELECT event_id::text AS id FROM ledger.events WHERE event_id = ANY($1::uuid[])",
                waiting,
            )
            now = time.monotonic()
            for r in rows:
                latency[r["id"]] = now - sent[r["id"]]
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    return latency


async def test_every_hostile_value_is_refused_or_counted_and_nothing_stalls(
    cluster: Cluster, record_result: Any
) -> None:
    started = time.monotonic()
    ingest = cluster.spawn("ingest")
    cluster.spawn("aggregator")
    tokens = cluster.operations(len(KINDS) + 1)
    ops = sorted(tokens)
    op_of_kind = dict(zip(KINDS, ops, strict=False))
    times_op = ops[len(KINDS)]
    now = datetime.now(UTC)
    cases = [
        *text_cases(op_of_kind.__getitem__, now),
        *number_cases(op_of_kind.__getitem__, now),
        *timestamp_cases(times_op, now),
        *structured_cases(op_of_kind.__getitem__, now),
    ]
    by_op: dict[str, list[Case]] = {}
    for case in cases:
        by_op.setdefault(case.operation_id, []).append(case)

    fates = Fates()
    run = Run(ingest.url, fates)
    limits = httpx.Limits(max_connections=len(by_op) * 2, max_keepalive_connections=len(by_op))
    async with httpx.AsyncClient(timeout=15, limits=limits) as client:
        await asyncio.gather(
            *(run.operation(client, op, tokens[op], cs) for op, cs in by_op.items())
        )
    sent_s = time.monotonic() - started

    latency = await _wait_counted(cluster.dsn, run.clean_sent)
    never = sorted(set(run.clean_sent) - set(latency))
    assert not never, f"{len(never)} clean events never counted (a stalled partition?)"
    slowest = max(latency.values())
    assert slowest <= CLEAN_WITHIN_S, f"a clean event took {slowest:.1f} s to be counted"
    assert not run.wrong, "\n".join(run.wrong[:40])

    report = await check(
        fates, dsn=cluster.dsn, bootstrap=cluster.bootstrap, topic=cluster.topic,
        groups=[cluster.group],
    )  # fmt: skip
    assert report.ok, report.explain()

    pool = await create_pool(cluster.dsn, max_size=4)
    try:
        rebuilt = await rebuild(
            pool, cluster.bootstrap, cluster.topic, principal=AUDITOR,
            consumer_group=cluster.group, only_seen=True,
        )  # fmt: skip
        stored = await pool.fetchval(
            "SELECT body->'location'->>'lon' FROM ledger.events WHERE event_id = $1::uuid",
            next(c.event_id for c in cases if c.target.endswith("location.lon = -0.0")),
        )
    finally:
        await pool.close()
    assert rebuilt.matches, rebuilt.to_dict()
    assert rebuilt.operations == len(by_op)
    assert stored == "0.0"  # -0.0 counted, stored (and hashed) as the one zero

    refused = Counter(case.klass for case in cases if case.fate == "refused")
    record_result(
        report,
        cases=len(cases),
        refused_by_class=dict(sorted(refused.items())),
        clean_events=len(run.clean_sent),
        clean_counted_within_s=round(slowest, 2),
        sending_s=round(sent_s, 1),
        rebuild_matches=rebuilt.matches,
    )


async def test_a_record_the_database_refuses_is_dead_lettered_and_others_keep_moving(
    cluster: Cluster,
) -> None:
    ingest = cluster.spawn("ingest")
    cluster.spawn("aggregator")
    tokens = cluster.operations(2)
    poisoned, other = sorted(tokens)
    # Written straight to the topic, past ingest: every event is valid, but the principal
    # stamped on it carries a NUL, which PostgreSQL refuses in its `principal` text column.
    record = encode_submission(
        Submission(poisoned, datetime.now(UTC).isoformat(), "pc\x00x", [clean_event(poisoned)])
    )
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all")
    await producer.start()
    try:
        meta = await asyncio.wait_for(
            producer.send_and_wait(cluster.topic, record, key=poisoned.encode()), 30
        )
    finally:
        await asyncio.wait_for(producer.stop(), 30)

    fates = Fates()
    run = Run(ingest.url, fates)
    async with httpx.AsyncClient(timeout=15) as client:
        for op in (other, poisoned, other):
            await run.clean(client, tokens[op], op)
    latency = await _wait_counted(cluster.dsn, run.clean_sent)
    assert set(latency) == set(run.clean_sent), "clean events stuck behind the refused record"

    consumer = AIOKafkaConsumer(
        f"{cluster.topic}.dlq", bootstrap_servers=cluster.bootstrap,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
    finally:
        await asyncio.wait_for(consumer.stop(), 30)
    dead = [m for msgs in batch.values() for m in msgs]
    assert [m.value for m in dead] == [record]
    headers = dict(dead[0].headers)
    assert headers["opsledger-source-partition"] == str(meta.partition).encode()
    assert headers["opsledger-source-offset"] == str(meta.offset).encode()
    assert headers["opsledger-reason"]  # the database's reason
