"""Rebuild throughput: the log replayed into a shadow schema, beside a bulk load's ceiling.

Produces N events (submissions of EVENTS_PER_SUBMISSION, keyed over OPERATIONS operations) to a
topic of its own, then in the same run: (1) a bare aiokafka consumer reads the whole topic
(reading alone: decoding nothing, writing nothing); (2) the ceiling, ``pg_bulk_load``
(`bench.pg_ceiling.bulk_load`): the same kind of rows, computed beforehand, COPY'd into a fresh
shadow without indexes, then totals, rollups and indexes built; (3) the rebuild's first pass
and after-load steps (`services.audit.rebuild.bulk_load`, as `opsledger rebuild` runs them)
into a fresh shadow schema. The shadow schema and the topic are dropped afterwards; the live
ledger is not touched.

Run alone with ``python -m bench.bench_rebuild``; ``run()`` returns the figures. Knobs:
``OPSLEDGER_BENCH_REBUILD_EVENTS`` (N, default 1,000,000), ``..._REBUILD_BULK_SAMPLE`` (events
of the ceiling, default 200,000), ``..._REBUILD_WORKERS`` (the rebuild's worker processes,
default `DEFAULT_WORKERS`), ``..._REBUILD_UNLOGGED`` ("1": load both unlogged).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import pg_ceiling
from schemas.examples import example_events
from services.audit.rebuild import AFTER_LOAD, bulk_load
from services.audit.replay import DEFAULT_WORKERS, LogReplayer
from services.common import access_log
from services.common.auth import Principal
from services.common.db import create_pool
from services.common.settings import CommonSettings
from services.common.wire import Submission, encode_submission
from services.ledger.shadow import UNLOGGED, create_shadow, drop_schema, shadow_name
from services.ledger.writer import BatchWriter

EVENTS = int(os.environ.get("OPSLEDGER_BENCH_REBUILD_EVENTS", "1000000"))
WORKERS = int(os.environ.get("OPSLEDGER_BENCH_REBUILD_WORKERS", str(DEFAULT_WORKERS)))
EVENTS_PER_SUBMISSION = 50
OPERATIONS = 24
PARTITIONS = 12
TARGET_EVENTS_PER_S = 40_000  # 1M events in <= 25 s
TARGET_RATIO = 0.8
#: Events of the bulk-load ceiling (its rows are held in memory while they are written).
BULK_SAMPLE = int(os.environ.get("OPSLEDGER_BENCH_REBUILD_BULK_SAMPLE", "200000"))
#: Load the shadow's big tables unlogged (both the ceiling and the rebuild): "1" or "0".
UNLOGGED_LOAD = os.environ.get("OPSLEDGER_BENCH_REBUILD_UNLOGGED", "1" if UNLOGGED else "0") == "1"


def workers_for_bulk() -> int:
    """COPY streams of the ceiling: one per core."""
    return max(1, os.cpu_count() or 1)


def _submissions(run_id: str, total: int) -> list[tuple[bytes, bytes]]:
    """(key, value) records: the sample kinds (no voids) with fresh ids, spread over operations."""
    kinds = [e for e in example_events() if e["type"] != "event_voided"]
    start = datetime(2026, 11, 23, 8, tzinfo=UTC)
    out = []
    n = 0
    while n < total:
        op = f"bench-rebuild-{run_id}-{len(out) % OPERATIONS:02d}"
        events = []
        for i in range(min(EVENTS_PER_SUBMISSION, total - n)):
            e = dict(kinds[(n + i) % len(kinds)])
            e["event_id"] = str(uuid.uuid4())
            e["operation_id"] = op
            events.append(e)
        recorded = (start + timedelta(milliseconds=len(out))).isoformat()
        out.append((op.encode(), encode_submission(Submission(op, recorded, "bench", events))))
        n += len(events)
    return out


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20,
        max_request_size=8 << 20, compression_type=None,
    )  # fmt: skip
    await producer.start()
    t0 = time.perf_counter()
    try:
        for at in range(0, len(records), 2000):
            futures = [await producer.send(topic, v, key=k) for k, v in records[at : at + 2000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - t0


def _cpu_seconds() -> float:
    """CPU used by this process and its finished children (the rebuild's worker processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def _bare_consumer(bootstrap: str, topic: str) -> tuple[int, float]:
    """Records read from the beginning to the end offsets by a group-less consumer, and seconds."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        fetch_max_bytes=32 << 20, max_partition_fetch_bytes=8 << 20,
    )  # fmt: skip
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        t0 = time.perf_counter()
        todo, records = {tp for tp in tps if ends[tp] > 0}, 0
        while todo:
            fetched = await consumer.getmany(*todo, timeout_ms=500, max_records=5000)
            for tp, messages in fetched.items():
                records += len(messages)
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    todo.discard(tp)
        return records, time.perf_counter() - t0
    finally:
        await consumer.stop()


async def _postmaster(pool: Any) -> psutil.Process | None:
    """The PostgreSQL server's main process, if it runs on this machine and we may read it."""
    try:
        data_dir = await pool.fetchval("SHOW data_directory")
        pid = int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
        return psutil.Process(pid)
    except (OSError, ValueError, IndexError, psutil.Error, asyncpg.PostgresError):
        return None


def _pg_cpu_seconds(postmaster: psutil.Process | None) -> float | None:
    """CPU of the whole server: the postmaster, its live children and the backends it reaped
    (their time is in its children's counters). Only our stack's server: a private one."""
    if postmaster is None:
        return None
    try:
        t = postmaster.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in postmaster.children():
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.Error:
                continue  # exited meanwhile: now in the postmaster's children counters
        return total
    except psutil.Error:
        return None


class _Phases:
    """Progress for the bench: when the replay ended, and the CPU spent by then."""

    def __init__(self, postmaster: psutil.Process | None) -> None:
        self.postmaster = postmaster
        self.at: dict[str, tuple[float, float, float | None]] = {}

    def mark(self, name: str) -> None:
        self.at[name] = (time.perf_counter(), _cpu_seconds(), _pg_cpu_seconds(self.postmaster))

    def started(self, total_records: int) -> None:
        pass

    def advanced(self, records: int, events: int) -> None:
        pass

    def phase(self, name: str) -> None:
        self.mark(name)

    def split(self, first: str, second: str, events: int) -> dict[str, Any]:
        """Seconds, Python and PostgreSQL CPU µs/event between two marks."""
        (t0, c0, p0), (t1, c1, p1) = self.at[first], self.at[second]
        return {
            "seconds": round(t1 - t0, 2),
            "python_cpu_us_per_event": round((c1 - c0) / events * 1e6, 1),
            "postgres_cpu_us_per_event": (
                None if p0 is None or p1 is None else round((p1 - p0) / events * 1e6, 1)
            ),
        }


async def _peak_workers_rss(peak: list[float]) -> None:
    """Sample the resident memory of this process's children (the rebuild's workers) until
    cancelled; ``peak[0]`` holds the largest sum seen, in MB."""
    me = psutil.Process()
    while True:
        total = 0
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        peak[0] = max(peak[0], total / 2**20)
        await asyncio.sleep(0.5)


async def _run(events: int, workers: int) -> dict[str, Any]:
    settings = CommonSettings()
    bootstrap = settings.kafka_bootstrap_servers
    run_id = uuid.uuid4().hex[:8]
    topic = f"bench-rebuild-{run_id}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    pool = await create_pool(settings.database_url, max_size=6)
    shadow = shadow_name()
    try:
        records = _submissions(run_id, events)
        produce_s = await _produce(bootstrap, topic, records)
        del records
        ceiling_records, ceiling_s = await _bare_consumer(bootstrap, topic)
        # The bulk-load ceiling on rows of its own (other ids, same shapes), before the rebuild.
        sample = [v for _, v in _submissions(f"{run_id}b", min(events, BULK_SAMPLE))]
        plans = pg_ceiling.plans(sample, 20)
        del sample
        postmaster = await _postmaster(pool)
        bulk_pg0, bulk_py0 = _pg_cpu_seconds(postmaster), time.process_time()
        bulk = await pg_ceiling.bulk_load(
            settings.database_url, plans, streams=workers_for_bulk(), unlogged=UNLOGGED_LOAD
        )
        bulk_pg1 = _pg_cpu_seconds(postmaster)
        py_us = (time.process_time() - bulk_py0) / bulk["events"] * 1e6
        bulk["python_cpu_us_per_event"] = round(py_us, 1)
        if bulk_pg0 is not None and bulk_pg1 is not None:
            pg_us = (bulk_pg1 - bulk_pg0) / bulk["events"] * 1e6
            bulk["postgres_cpu_us_per_event"] = round(pg_us, 1)
        del plans
        principal = Principal(subject=f"bench:{getpass.getuser()}", role="auditor")
        await access_log.record(pool, principal, "rebuild", None, {"topic": topic, "bench": True})
        async with pool.acquire() as conn:
            await create_shadow(conn, shadow)
        writer = BatchWriter(
            pool, topic=topic, consumer_group="bench-rebuild", schema=shadow, notify=False
        )
        phases = _Phases(postmaster)
        replayer = LogReplayer(settings, topic, writer, progress=phases)
        await replayer.start()
        try:
            cpu0 = _cpu_seconds()
            t0 = time.perf_counter()
            phases.mark("start")
            peak = [0.0]
            sampler = asyncio.create_task(_peak_workers_rss(peak))
            try:
                after_load = await bulk_load(
                    pool, replayer, await replayer.end_offsets(), dsn=settings.database_url,
                    shadow=shadow, group="bench-rebuild", workers=workers,
                    unlogged=UNLOGGED_LOAD,
                )  # fmt: skip
            finally:
                sampler.cancel()
            phases.mark("end")
            rebuild_s = time.perf_counter() - t0
            python_cpu_s = _cpu_seconds() - cpu0
        finally:
            await replayer.stop()
        applied = replayer.counts.events
        rows = await pool.fetchval(f"SELECT count(*) FROM {shadow}.events")  # noqa: S608
        if rows != events or applied != events:
            raise RuntimeError(f"rebuild applied {applied} events ({rows} rows), expected {events}")
    finally:
        async with pool.acquire() as conn:
            await drop_schema(conn, shadow)
        await pool.close()
        await admin.delete_topics([topic])
        await admin.close()
    rate = events / rebuild_s
    ceiling = ceiling_records * EVENTS_PER_SUBMISSION / ceiling_s
    return {
        "ceiling": "pg_bulk_load",
        "ceiling_events_per_s": bulk["events_per_s"],
        "ratio": round(rate / bulk["events_per_s"], 3),
        "pg_bulk_load": bulk,
        "events": events,
        "events_per_submission": EVENTS_PER_SUBMISSION,
        "workers": workers,
        "unlogged": UNLOGGED_LOAD,
        "records": ceiling_records,
        "seconds": round(rebuild_s, 2),
        "after_load_seconds": after_load,
        "events_per_s": round(rate),
        "ceiling_bare_consumer_events_per_s": round(ceiling),
        "ratio_to_bare_consumer": round(rate / ceiling, 3),
        "produce_seconds": round(produce_s, 2),
        # CPU of the replaying processes (PostgreSQL's is on top): against wall time, it
        # shows how much of the machine the rebuild actually got.
        "python_cpu_us_per_event": round(python_cpu_s / events * 1e6, 1),
        # Where the time and the CPU went: the replay (workers: decoding, planning, COPY) and
        # the steps after it (PostgreSQL alone: rollups, totals, indexes).
        "first_pass": phases.split("start", AFTER_LOAD, events),
        "after_load": phases.split(AFTER_LOAD, "end", events),
        "workers_peak_rss_mb": round(peak[0], 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "target_events_per_s": TARGET_EVENTS_PER_S,
        "target_ratio": TARGET_RATIO,
        "meets_target": rate >= TARGET_EVENTS_PER_S and rate / bulk["events_per_s"] >= TARGET_RATIO,
    }


def run(events: int = EVENTS, workers: int = WORKERS) -> dict[str, Any]:
    """Rebuild N events from Kafka into a shadow schema; events/s beside the bare consumer."""
    return asyncio.run(_run(events, workers))


def main() -> None:
    r = run()
    for part in ("first_pass", "after_load"):
        print(f"{part}: {r[part]}")
    print(f"after-load steps (s): {r['after_load_seconds']}")
    print(f"ceiling: {r['pg_bulk_load']}")
    print(
        f"rebuild of {r['events']:,} events ({r['records']:,} records of"
        f" {r['events_per_submission']}, {r['workers']} worker(s)):"
        f" {r['seconds']} s, {r['events_per_s']:,} events/s; bulk-load ceiling"
        f" {r['ceiling_events_per_s']:,} events/s, ratio {r['ratio']}; bare aiokafka consumer"
        f" {r['ceiling_bare_consumer_events_per_s']:,} events/s;"
        f" target {r['target_events_per_s']:,}: {'met' if r['meets_target'] else 'NOT met'};"
        f" {r['python_cpu_us_per_event']} µs Python CPU per event, load {r['load_average_1m']};"
        f" workers' peak memory {r['workers_peak_rss_mb']} MB"
    )


if __name__ == "__main__":
    main()
