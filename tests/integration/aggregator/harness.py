"""Test harness: the aggregator as a real process, records onto a private topic, ledger reads."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from schemas.canonical import GENESIS_HASH, chain_digest
from services.common.settings import CommonSettings
from services.common.topics import ensure_topics
from services.common.wire import Submission, encode_submission
from services.devtools.procs import ServiceProcess

RECORDED_AT = "2026-11-23T09:00:00+00:00"


@dataclass
class Target:
    """Where one test's aggregator reads and writes: private topic, group and database."""

    kafka: str
    database_url: str
    topic: str
    group: str
    partitions: int = 3

    @property
    def dlq(self) -> str:
        return f"{self.topic}.dlq"

    def settings(self) -> CommonSettings:
        return CommonSettings(
            kafka_bootstrap_servers=self.kafka,
            database_url=self.database_url,
            topic=self.topic,
            dlq_topic=self.dlq,
            topic_partitions=self.partitions,
        )


class AggregatorProcess:
    """`opsledger serve aggregator` in a subprocess, configured only through the environment."""

    def __init__(self, target: Target, data_dir: Path, **extra_env: str) -> None:
        self.target = target
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": target.kafka,
            "DATABASE_URL": target.database_url,
            "OPSLEDGER_TOPIC": target.topic,
            "OPSLEDGER_DLQ_TOPIC": target.dlq,
            "OPSLEDGER_TOPIC_PARTITIONS": str(target.partitions),
            "OPSLEDGER_CONSUMER_GROUP": target.group,
            "OPSLEDGER_AGGREGATOR_DATA_DIR": str(data_dir / "faust"),
            "OPSLEDGER_AGGREGATOR_RETRY_MAX_S": "1",
            **extra_env,
        }
        self.service = ServiceProcess("aggregator", env, data_dir, health_path="/readyz")
        self.url = self.service.url

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.service.proc

    async def start(self, timeout_s: float = 60) -> None:
        self.service.start(wait=False)
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if not self.service.alive():
                    raise AssertionError(f"aggregator exited:\n{self.tail()}")
                try:
                    if (await client.get(f"{self.url}/readyz", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"aggregator not ready in {timeout_s} s:\n{self.tail()}")

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"{self.url}/readyz", timeout=2)
            return r.status_code, r.json()

    async def metric(self, name: str) -> float:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{self.url}/metrics", timeout=2)).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"metric {name} not exposed")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.service.stop()

    def tail(self, lines: int = 40) -> str:
        return self.service.tail(lines)


def submission(events: Sequence[dict[str, Any]], principal: str = "pc-test") -> bytes:
    return encode_submission(
        Submission(events[0]["operation_id"], RECORDED_AT, principal, list(events))
    )


async def produce(target: Target, values: Iterable[tuple[str, bytes]]) -> int:
    """Produce (key, value) records in order; return how many. The topics are created first."""
    await ensure_topics(target.settings(), timeout_s=20)
    producer = AIOKafkaProducer(
        bootstrap_servers=target.kafka, acks="all", enable_idempotence=True, linger_ms=5,
        max_batch_size=1 << 20, max_request_size=4 << 20,
    )  # fmt: skip
    await producer.start()
    try:
        futures = [await producer.send(target.topic, v, key=k.encode()) for k, v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures)


async def metrics_of(db: str, operation_id: str) -> dict[str, int]:
    """Headline totals of one operation, straight from ledger.totals."""
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch(
            "SELECT metric, sum(value)::bigint AS v FROM ledger.totals"
            " WHERE operation_id = $1 GROUP BY metric",
            operation_id,
        )
    finally:
        await conn.close()
    return {r["metric"]: r["v"] for r in rows if r["v"]}


async def applied_offsets(db: str, target: Target) -> dict[int, int]:
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch(
            "SELECT partition, last_offset FROM ledger.consumer_offsets"
            " WHERE consumer_group = $1 AND topic = $2",
            target.group,
            target.topic,
        )
    finally:
        await conn.close()
    return {r["partition"]: r["last_offset"] for r in rows}


async def wait_applied(target: Target, records: int, timeout_s: float = 90) -> None:
    """Wait until the consumer's stored offsets cover ``records`` records in total."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        offsets = await applied_offsets(target.database_url, target)
        seen = sum(o + 1 for o in offsets.values())
        if seen >= records:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"only {seen} of {records} records applied after {timeout_s} s")


async def event_count(db: str, operation_id: str) -> int:
    conn = await asyncpg.connect(db)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM ledger.events WHERE operation_id = $1", operation_id
        )
        return n
    finally:
        await conn.close()


async def chain_problems(db: str, operation_id: str) -> list[str]:
    """Recompute the operation's hash chain from the stored bodies; describe any break."""
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch(
            "SELECT seq, body::text AS body, prev_hash, hash FROM ledger.events"
            " WHERE operation_id = $1"
            " ORDER BY seq",
            operation_id,
        )
        head = await conn.fetchrow(
            "SELECT seq, hash FROM ledger.chain_heads WHERE operation_id = $1", operation_id
        )
    finally:
        await conn.close()
    problems, prev = [], GENESIS_HASH
    for expected_seq, row in enumerate(rows, start=1):
        if row["seq"] != expected_seq:
            problems.append(f"seq {row['seq']} where {expected_seq} was expected")
        # Over the stored text itself: it is the bytes that were hashed.
        if row["prev_hash"] != prev or row["hash"] != chain_digest(row["body"].encode(), prev):
            problems.append(f"hash mismatch at seq {row['seq']}")
        prev = row["hash"]
    if rows and (head is None or (head["seq"], head["hash"]) != (len(rows), prev)):
        problems.append(f"chain head {head} does not match the last event")
    return problems


async def wait_in_transaction(db: str, pid: int, timeout_s: float = 60) -> None:
    """Return while one of process ``pid``'s PostgreSQL sessions is inside a transaction."""
    import psutil  # type: ignore[import-untyped]

    conn = await asyncpg.connect(db)
    try:
        server_port = int(await conn.fetchval("SELECT inet_server_port()"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ports = [
                c.laddr.port
                for c in psutil.Process(pid).net_connections(kind="tcp")
                if c.raddr and c.raddr.port == server_port
            ]
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY($1::int[])"
                " AND xact_start IS NOT NULL AND backend_xid IS NOT NULL",
                ports,
            )
            if busy:
                return
        raise AssertionError(f"process {pid} opened no write transaction in {timeout_s} s")
    finally:
        await conn.close()
