"""Ingest throughput and latency against the real broker, beside Kafka's own producer ceiling.

Starts `opsledger serve ingest` as a separate process on a free port, drives it with many
concurrent httpx clients (in their own processes, so the load generator does not share the
server's interpreter), then runs Kafka's ProducerPerformance for records of the same size on
the same broker. Run alone with ``python -m bench.bench_ingest``; ``run()`` returns the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import psutil
import uvloop

from bench.common import producer_perf
from schemas.examples import example_events
from schemas.parsing import event_to_dict, parse_event
from services.common.wire import Submission, encode_submission
from services.devtools.procs import ServiceProcess
from services.ingest.settings import IngestSettings
from services.stack.devissuer.tokens import dev_token

DURATION_S = 8.0
WARMUP_S = 1.5
OPERATIONS = 24  # spread over the partitions, as many operations would be
BATCH_SIZE = 500
CLIENT_PROCS = 2
SINGLE_CONCURRENCY = 48  # in flight per client process
BATCH_CONCURRENCY = 4
TARGETS = {"single": 3_000, "batch": 30_000}
WORKERS = int(os.environ.get("BENCH_INGEST_WORKERS", "1"))  # ingest server processes
# The load generator's HTTP client. httpx spends ~0.7 ms of CPU per request here (anyio
# cancel scopes, URL and header objects), aiohttp ~0.07 ms: with httpx the clients, not
# ingest, would use up the two cores. BENCH_INGEST_CLIENT=httpx measures with httpx.
CLIENT = os.environ.get("BENCH_INGEST_CLIENT", "aiohttp")


def _ops(run_id: str) -> list[str]:
    return [f"bench-{run_id}-{n:02d}" for n in range(OPERATIONS)]


_KINDS = ("warrant_executed", "arrest_made", "item_seized", "school_visited")
_TEMPLATES = [example_events(kind)[0] for kind in _KINDS]


def _event(op: str, n: int) -> dict[str, Any]:
    """A valid event for ``op`` (nested parts shared with the template: it is only serialised)."""
    return {
        **_TEMPLATES[n % len(_TEMPLATES)],
        "event_id": str(uuid.uuid4()),
        "operation_id": op,
        "occurred_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }


def _bodies(kind: str, run_id: str, worker: int, count: int) -> list[bytes]:
    """Request bodies prepared up front, so the clients spend their CPU on HTTP only."""
    ops = _ops(run_id)
    if kind == "single":
        return [orjson.dumps(_event(ops[(worker + n) % OPERATIONS], n)) for n in range(count)]
    return [
        orjson.dumps(
            {"events": [_event(ops[(worker + n) % OPERATIONS], i) for i in range(BATCH_SIZE)]}
        )
        for n in range(count)
    ]


Post = Callable[[bytes], Awaitable[int]]


@contextlib.asynccontextmanager
async def _poster(client: str, url: str, path: str, headers: dict[str, str]) -> AsyncIterator[Post]:
    """A function posting one body on its own connection and returning the status code."""
    if client == "httpx":
        async with httpx.AsyncClient(base_url=url, timeout=30) as session:

            async def post_httpx(body: bytes) -> int:
                return (await session.post(path, content=body, headers=headers)).status_code

            yield post_httpx
        return
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(url, connector=connector) as aio:

        async def post_aiohttp(body: bytes) -> int:
            async with aio.post(path, data=body, headers=headers) as response:
                await response.read()
                return response.status

        yield post_aiohttp


def _client(args: tuple[str, str, str, str, int, int, float]) -> tuple[int, list[float], int]:
    """One load-generator process: (requests done, latencies in s, failures) in the window."""
    url, kind, token, run_id, worker, concurrency, start_at = args
    pool = 64 if kind == "batch" else 4000
    bodies = _bodies(kind, run_id, worker, pool)
    path = "/v1/events" if kind == "single" else "/v1/events/batch"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    measure_from, stop_at = start_at + WARMUP_S, start_at + WARMUP_S + DURATION_S
    latencies: list[float] = []
    failures = 0

    async def worker(n: int) -> None:
        nonlocal failures
        # One connection per worker, like many field devices each with its own.
        async with _poster(CLIENT, url, path, headers) as post:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            while time.time() < stop_at:
                sent = time.perf_counter()
                status = await post(bodies[n % pool])
                took = time.perf_counter() - sent
                n += concurrency
                if time.time() >= measure_from:
                    if status == 202:
                        latencies.append(took)
                    else:
                        failures += 1

    async def main() -> None:
        await asyncio.gather(*(worker(i) for i in range(concurrency)))

    uvloop.install()
    asyncio.run(main())
    return len(latencies), latencies, failures


def _cpu_seconds(pid: int) -> float:
    """CPU time used so far by the ingest server and its worker processes."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _drive(url: str, kind: str, token: str, run_id: str, server_pid: int) -> dict[str, Any]:
    concurrency = SINGLE_CONCURRENCY if kind == "single" else BATCH_CONCURRENCY
    start_at = time.time() + 3.0  # time for the client processes to start and build bodies
    jobs = [(url, kind, token, run_id, w, concurrency, start_at) for w in range(CLIENT_PROCS)]
    cpu: list[float] = []

    def sample_server_cpu() -> None:
        for moment in (start_at + WARMUP_S, start_at + WARMUP_S + DURATION_S):
            time.sleep(max(0.0, moment - time.time()))
            cpu.append(_cpu_seconds(server_pid))

    sampler = threading.Thread(target=sample_server_cpu)
    sampler.start()
    with ProcessPoolExecutor(max_workers=CLIENT_PROCS) as pool:
        results = list(pool.map(_client, jobs))
    sampler.join()
    latencies = sorted(lat for _, lats, _ in results for lat in lats)
    per_request = 1 if kind == "single" else BATCH_SIZE
    events = len(latencies) * per_request

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

    return {
        "events_per_s": round(events / DURATION_S),
        "requests_per_s": round(len(latencies) / DURATION_S, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "failures": sum(f for _, _, f in results),
        # Load-independent cost: server CPU per accepted event (1e6 / this = events/s per core).
        "server_cpu_us_per_event": round((cpu[1] - cpu[0]) / events * 1e6, 1) if events else None,
        "events_per_request": per_request,
        "concurrency": concurrency * CLIENT_PROCS,
        "duration_s": DURATION_S,
        "server_workers": WORKERS,
        "client": CLIENT,
    }


def _record_size(count: int) -> int:
    """Bytes of one Kafka record holding ``count`` events (what ingest writes per request)."""
    events = [event_to_dict(parse_event(_event("bench-size-00", i))) for i in range(count)]
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    return len(encode_submission(Submission("bench-size-00", now, "bench", events)))


async def _topics(bootstrap: str, names: list[str], create: bool) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        if create:
            await admin.create_topics([NewTopic(n, 12, 1) for n in names])
        else:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def run() -> dict[str, Any]:
    """Single events and 500-event batches through ingest, and Kafka's producer ceiling."""
    settings = IngestSettings()
    bootstrap = settings.kafka_bootstrap_servers
    run_id = uuid.uuid4().hex[:6]
    topic, perf_topic = f"bench-ingest-{run_id}", f"bench-ingest-perf-{run_id}"
    env = {
        "OPSLEDGER_TOPIC": topic,
        "OPSLEDGER_DLQ_TOPIC": f"{topic}.dlq",
        "OPSLEDGER_LOG_LEVEL": "WARNING",
        "OPSLEDGER_INGEST_WORKERS": str(WORKERS),
    }
    token = dev_token(role="field", operations=_ops(run_id), ttl_s=3600)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as work:
        with ServiceProcess("ingest", env, Path(work), health_path="/readyz") as server:
            single = _drive(server.url, "single", token, run_id, server.pid)
            batch = _drive(server.url, "batch", token, run_id, server.pid)
    asyncio.run(_topics(bootstrap, [perf_topic], create=True))
    try:
        single_size, batch_size = _record_size(1), _record_size(BATCH_SIZE)
        perf_single = producer_perf(bootstrap, perf_topic, single_size, 300_000)
        perf_batch = producer_perf(bootstrap, perf_topic, batch_size, 600)
    finally:
        asyncio.run(_topics(bootstrap, [perf_topic, topic, f"{topic}.dlq"], create=False))
    single["ceiling_events_per_s"] = perf_single["records_per_s"]
    batch["ceiling_events_per_s"] = perf_batch["records_per_s"] * BATCH_SIZE
    for name, figures in (("single", single), ("batch", batch)):
        figures["ratio_to_ceiling"] = round(
            figures["events_per_s"] / figures["ceiling_events_per_s"], 3
        )
        figures["target_events_per_s"] = TARGETS[name]
        figures["meets_target"] = figures["events_per_s"] >= TARGETS[name]
    return {
        "ingest": {"single": single, "batch": batch},
        "ceilings": {
            "kafka_producer_perf": {"single_record": perf_single, "batch_record": perf_batch}
        },
    }


def main() -> None:
    result = run()
    for name, f in result["ingest"].items():
        print(
            f"ingest {name:6s}: server CPU {f['server_cpu_us_per_event']} µs/event; "
            f"ingest {name:6s}: {f['events_per_s']:>8,} events/s  p50 {f['p50_ms']:.1f} ms"
            f"  p99 {f['p99_ms']:.1f} ms  | Kafka producer ceiling {f['ceiling_events_per_s']:>10,}"
            f" events/s  ratio {f['ratio_to_ceiling']:.3f}  (target {f['target_events_per_s']:,}:"
            f" {'met' if f['meets_target'] else 'MISSED'}; failures {f['failures']})"
        )
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
