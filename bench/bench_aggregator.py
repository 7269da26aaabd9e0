"""Aggregator throughput: a pre-loaded topic drained into the ledger, beside a bare-write ceiling.

In one run, on a private database (created, migrated and dropped here) and private topics:

1. ``submissions_100``: N events pre-loaded as submissions of 100; the real aggregator process
   (``opsledger serve aggregator``) drains them. Timed from its first committed batch to the
   last offset applied (start-up and group join excluded).
2. ``submissions_1``: M events as submissions of 1, the same way.
3. ``ceiling`` (``pg_write``): the writer's rows for 1,000 events per transaction written
   by binary COPY, unnest and composite-row arrays, taking turns, from rows computed
   beforehand (`bench.pg_ceiling`): what PostgreSQL alone costs, no Kafka, no decoding, no
   hashing; the best method is the ceiling.

Run alone with ``python -m bench.bench_aggregator``; ``run()`` returns the figures. Sizes:
``OPSLEDGER_BENCH_AGG_EVENTS`` (default 200000) and ``OPSLEDGER_BENCH_AGG_SINGLE_EVENTS``
(default 40000).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import psutil  # type: ignore[import-untyped]
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import pg_ceiling
from bench.common import PROFILE_DIR
from schemas.examples import example_events
from services.common.migrate import upgrade
from services.common.settings import CommonSettings
from services.common.wire import Submission, encode_submission
from services.devtools.procs import ServiceProcess

EVENTS = int(os.environ.get("OPSLEDGER_BENCH_AGG_EVENTS", "200000"))
SINGLE_EVENTS = int(os.environ.get("OPSLEDGER_BENCH_AGG_SINGLE_EVENTS", "40000"))
OPERATIONS = 24
PARTITIONS = 12
TARGETS = {"submissions_100": 20_000, "submissions_1": 3_000}
TARGET_RATIO = 0.9  # issue 17: submissions of 100 at >= 0.9 of the pg_write ceiling


def _records(run_id: str, total: int, per: int, tag: str) -> list[tuple[bytes, bytes]]:
    """(key, value) submissions of ``per`` events (no voids), spread over OPERATIONS."""
    kinds = [e for e in example_events() if e["type"] != "event_voided"]
    out: list[tuple[bytes, bytes]] = []
    n = 0
    while n < total:
        op = f"bench-agg-{tag}-{run_id}-{len(out) % OPERATIONS:02d}"
        events = []
        for i in range(min(per, total - n)):
            e = dict(kinds[(n + i) % len(kinds)])
            e["event_id"] = str(uuid.uuid4())
            e["operation_id"] = op
            events.append(e)
        sub = Submission(op, "2026-11-23T08:00:00+00:00", "bench", events)
        out.append((op.encode(), encode_submission(sub)))
        n += len(events)
    return out


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def _delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    await _create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20,
        max_request_size=8 << 20,
    )  # fmt: skip
    await producer.start()
    try:
        for at in range(0, len(records), 5000):
            futures = [await producer.send(topic, v, key=k) for k, v in records[at : at + 5000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _drain(
    settings: CommonSettings, dsn: str, topic: str, records: int, events: int, work: Path, ops: str
) -> dict[str, Any]:
    """Run the aggregator on ``topic`` until every record is applied; time the draining."""
    group = f"bench-{topic}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": dsn,
        "OPSLEDGER_TOPIC": topic,
        "OPSLEDGER_DLQ_TOPIC": f"{topic}.dlq",
        "OPSLEDGER_CONSUMER_GROUP": group,
        "OPSLEDGER_AGGREGATOR_DATA_DIR": str(work / "faust"),
        "OPSLEDGER_LOG_LEVEL": "WARNING",
    }
    python_args: list[str] = []
    if PROFILE_DIR:  # under pyinstrument: one session file per drained topic
        os.makedirs(PROFILE_DIR, exist_ok=True)  # noqa: PTH103
        out = Path(PROFILE_DIR) / f"aggregator-{topic}.pyisession"
        python_args = ["-m", "pyinstrument", "-r", "pyisession", "-o", str(out), "-m"]
    aggregator = ServiceProcess("aggregator", env, work, python_args=python_args)
    aggregator.start(wait=False)  # the applied offsets below say when it works
    conn = await asyncpg.connect(dsn)
    try:
        sql = (
            "SELECT coalesce(sum(last_offset + 1), 0) FROM ledger.consumer_offsets"
            " WHERE consumer_group = $1 AND topic = $2"
        )
        started = None
        cpu_start = 0.0
        child = psutil.Process(aggregator.pid)
        deadline = time.monotonic() + 900
        while True:
            done = await conn.fetchval(sql, group, topic)
            now = time.perf_counter()
            if started is None and done > 0:
                started = now
                cpu_start = sum(child.cpu_times()[:2])
            if done >= records:
                break
            if not aggregator.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"aggregator stopped or timed out; see {aggregator.log}")
            await asyncio.sleep(0.05)
        assert started is not None
        seconds = max(now - started, 1e-6)
        cpu = sum(child.cpu_times()[:2]) - cpu_start
        applied = await conn.fetchval(
            "SELECT count(*) FROM ledger.events WHERE operation_id LIKE $1", ops + "%"
        )
    finally:
        await conn.close()
        aggregator.stop(signal.SIGINT if PROFILE_DIR else signal.SIGTERM, timeout_s=60)
    return {
        "events": events,
        "records": records,
        "applied": applied,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds),
        "records_per_s": round(records / seconds),
        # CPU of the aggregator process per event: steadier than rates on a shared machine.
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
    }


async def _ceiling(dsn: str, run_id: str, total: int) -> dict[str, Any]:
    """The same rows written the fastest ways known (bench.pg_ceiling), 1,000 events per
    transaction, methods taking turns; the best is the ceiling."""

    def records(method: str) -> list[bytes]:
        return [v for _, v in _records(f"{run_id}{method}", total, 100, f"ceiling-{method}")]

    return await pg_ceiling.measure(dsn, pg_ceiling.by_method(records, 10))


async def _run() -> dict[str, Any]:
    settings = CommonSettings()
    run_id = uuid.uuid4().hex[:8]
    db_name = f"opsledger_bench_agg_{run_id}"
    admin = await asyncpg.connect(settings.database_url)
    await admin.execute(f'CREATE DATABASE "{db_name}"')
    dsn = settings.database_url.rsplit("/", 1)[0] + f"/{db_name}"
    work = Path(tempfile.mkdtemp(prefix="bench-agg-"))
    topics = [f"bench-agg-100-{run_id}", f"bench-agg-1-{run_id}"]
    try:
        await asyncio.to_thread(upgrade, dsn)
        many = _records(run_id, EVENTS, 100, "100")
        single = _records(run_id, SINGLE_EVENTS, 1, "1")
        await _produce(settings.kafka_bootstrap_servers, topics[0], many)
        await _produce(settings.kafka_bootstrap_servers, topics[1], single)
        s100 = await _drain(
            settings, dsn, topics[0], len(many), EVENTS, work, f"bench-agg-100-{run_id}-"
        )
        s1 = await _drain(
            settings, dsn, topics[1], len(single), SINGLE_EVENTS, work, f"bench-agg-1-{run_id}-"
        )
        ceiling = await _ceiling(dsn, run_id, min(EVENTS, 40_000))
    finally:
        await _delete_topics(settings.kafka_bootstrap_servers, topics)
        await admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(work, ignore_errors=True)
    for name, figures in (("submissions_100", s100), ("submissions_1", s1)):
        figures["ceiling_events_per_s"] = ceiling["events_per_s"]
        figures["ratio"] = round(figures["events_per_s"] / ceiling["events_per_s"], 3)
        figures["target_events_per_s"] = TARGETS[name]
        figures["meets_target"] = figures["events_per_s"] >= TARGETS[name] and (
            name != "submissions_100" or figures["ratio"] >= TARGET_RATIO
        )
    return {
        "aggregator": {"submissions_100": s100, "submissions_1": s1},
        "ceilings": {"pg_write": ceiling},
    }


def run() -> dict[str, Any]:
    """Pre-load, drain and time; return the figures (see the module docstring)."""
    return asyncio.run(_run())


def main() -> None:
    result = run()
    ceiling = result["ceilings"]["pg_write"]
    methods = ", ".join(f"{m} {ceiling[m]['events_per_s']:,}" for m in pg_ceiling.METHODS)
    print(f"pg_write ceiling ({methods} events/s): best {ceiling['best']}")
    for name, f in result["aggregator"].items():
        print(
            f"{name}: {f['events']:,} events in {f['seconds']} s = {f['events_per_s']:,} events/s,"
            f" {f['records_per_s']:,} records/s, {f['cpu_us_per_event']} µs CPU/event;"
            f" ratio {f['ratio']} to the ceiling;"
            f" target {f['target_events_per_s']:,} -> {'met' if f['meets_target'] else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
