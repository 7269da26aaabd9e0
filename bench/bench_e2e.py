"""End to end: HTTP ingest -> Kafka -> aggregator -> PostgreSQL -> query, on this one machine.

Figures (each run starts its own ingest, aggregator(s) and query on a private topic and group):

* ``batch``: client processes send 500-event batches as fast as the server answers for
  DURATION_S; the figure is accepted events / seconds from the first send until the totals API
  shows, for every operation, exactly the fold of what was accepted.
* ``single``: the same with one event per request.
* ``latency_ms``: a steady offered load (open loop) on some operations, plus probe events (one
  warrant each) on a probe operation watched through its SSE stream: time from each probe's 202
  to the stream showing its count; p50, p99, max.
* ``batch_2_aggregators``: ``batch`` again with two aggregator processes sharing 12 partitions.
* ``rss_mb`` of each throughput run: every service's resident memory at the start of the load,
  at its end and its peak (sampled every 0.5 s).
* ceilings: Kafka's ProducerPerformance and ConsumerPerformance for records of the same size.

Run alone with ``python -m bench.bench_e2e``; ``OPSLEDGER_BENCH_QUICK=1`` shortens every window.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import psutil

from bench.common import (
    QUICK,
    Pipeline,
    consumer_perf,
    create_topic,
    delete_topics,
    new_run_id,
    percentile,
    pipeline,
    producer_perf,
    say,
)
from bench.e2e_load import (
    Bodies,
    Job,
    Outcome,
    expected_metrics,
    run_job,
    template_deltas,
    templates,
)
from schemas.parsing import event_to_dict, parse_event
from services.common.settings import CommonSettings
from services.common.wire import Submission, encode_submission
from services.stack.devissuer.tokens import dev_token

BATCH = 500
RSS_SAMPLE_S = 0.5
OPERATIONS = 24
CLIENT_PROCS = 2
_env = os.environ.get
# Requests in flight per client process (closed loop); see docs/performance.md for why 32.
BATCH_CONCURRENCY = int(_env("OPSLEDGER_BENCH_E2E_BATCH_CONCURRENCY", "6"))
SINGLE_CONCURRENCY = int(_env("OPSLEDGER_BENCH_E2E_SINGLE_CONCURRENCY", "32"))
PROBE_RATE = float(os.environ.get("OPSLEDGER_BENCH_E2E_PROBE_RATE", "20"))  # in the offered load
LATENCY_BATCH = 50  # background load comes as 50-event batches
OFFERED = (1_000, 5_000)
DURATION_S = float(_env("OPSLEDGER_BENCH_E2E_S", "10" if QUICK else "60"))
SINGLE_S = float(_env("OPSLEDGER_BENCH_E2E_SINGLE_S", "8" if QUICK else "30"))
LATENCY_S = float(_env("OPSLEDGER_BENCH_E2E_LATENCY_S", "8" if QUICK else "20"))
SCALE_S = float(_env("OPSLEDGER_BENCH_E2E_SCALE_S", "10" if QUICK else "30"))
PERF_BATCH_RECORDS = 300 if QUICK else 1_000
PERF_SINGLE_RECORDS = 100_000 if QUICK else 300_000
TARGETS = {"batch": 15_000, "single": 2_500, "latency_p99_ms_at_1000": 100.0}
# The stream coalesces bursts of commits (default 0.02 s between messages); the bench measures
# when a change becomes visible, so it turns coalescing off. See docs/performance.md.
QUERY_ENV = {"OPSLEDGER_QUERY_STREAM_MIN_INTERVAL_S": "0"}


# -- helpers -----------------------------------------------------------------------------------


def _tokens(settings: CommonSettings, ops: list[str]) -> tuple[str, str]:
    field = dev_token(role="field", operations=ops, ttl_s=7200, subject="bench")
    reader = dev_token(role="supervisor", operations=ops, ttl_s=7200, subject="bench")
    return field, reader


async def _totals(client: httpx.AsyncClient, op: str) -> dict[str, int] | None:
    r = await client.get(f"/v1/operations/{op}/totals")
    if r.status_code == 404:
        return None
    r.raise_for_status()
    metrics: dict[str, int] = r.json()["metrics"]
    return metrics


def _matches(got: dict[str, int] | None, want: dict[str, int]) -> bool:
    if got is None:
        return not want
    return all(got.get(m, 0) == want.get(m, 0) for m in set(got) | set(want))


async def _wait_exact(
    p: Pipeline, token: str, expected: dict[str, dict[str, int]], timeout_s: float
) -> tuple[float | None, dict[str, Any]]:
    """Poll the totals API until every operation equals its expected totals: (time, mismatches)."""
    headers = {"Authorization": f"Bearer {token}"}
    last: dict[str, Any] = {}
    deadline = time.time() + timeout_s
    async with httpx.AsyncClient(base_url=p.query_url, headers=headers, timeout=10) as client:
        # One operation at a time: while one is behind, polling the others would only load
        # the query service (and the machine the figure is measured on).
        for op in sorted(expected):
            while not _matches(got := await _totals(client, op), expected[op]):
                last[op] = {"got": got, "want": expected[op]}
                if time.time() > deadline:
                    return None, last
                await asyncio.sleep(0.05)
        exact_at = time.time()
        # Nothing may arrive after exactness (a double count would): check once more.
        await asyncio.sleep(1.0)
        wrong = {}
        for op in sorted(expected):
            got = await _totals(client, op)
            if not _matches(got, expected[op]):
                wrong[op] = {"got": got, "want": expected[op]}
    return (None if wrong else exact_at), wrong


async def _warm(
    p: Pipeline, ops: list[str], field: str, reader: str, counts: dict[str, list[int]]
) -> None:
    """One event per operation through the pipeline, waited for: every part is live and joined."""
    tmpls = templates()
    bodies = Bodies(ops, tmpls)
    headers = {"Authorization": f"Bearer {field}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=p.ingest_url, headers=headers, timeout=30) as client:
        for n, op in enumerate(ops):
            r = await client.post("/v1/events", content=bodies.event(n, 0))
            if r.status_code != 202:
                raise RuntimeError(f"warm-up event refused: {r.status_code} {r.text}")
            counts[op][0] += 1
    deltas = template_deltas(tmpls)
    exact, wrong = await _wait_exact(p, reader, expected_metrics(counts, deltas), 120)
    if exact is None:
        raise RuntimeError(f"warm-up events not visible within 120 s: {wrong}")


async def _applied_records(dsn: str, p: Pipeline) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT coalesce(sum(last_offset + 1), 0) FROM ledger.consumer_offsets"
                " WHERE consumer_group = $1 AND topic = $2",
                p.group,
                p.topic,
            )
        )
    finally:
        await conn.close()


async def _sample(dsn: str, p: Pipeline, futures: list[Future[Outcome]]) -> list[tuple[float, int]]:
    """(time, records applied) once a second while the load processes run."""
    samples = []
    while True:
        samples.append((time.time(), await _applied_records(dsn, p)))
        if all(f.done() for f in futures):
            return samples
        await asyncio.sleep(1.0)


def _processes(p: Pipeline) -> dict[str, list[psutil.Process]]:
    """The processes whose CPU time the bench accounts for, by part."""
    from services.stack import pid_of

    out: dict[str, list[psutil.Process]] = {}
    for proc in p.procs:
        out.setdefault(proc.label.split("-")[0], []).append(psutil.Process(proc.pid))
    # The whole broker (one JVM), shared with anyone else using the stack at the same time.
    # PostgreSQL is counted by this run's own backends instead (`postgres_ours`): its process
    # tree changes as other clients connect and leave.
    pid = pid_of("kafka")
    if pid is not None:
        out["kafka_all"] = [psutil.Process(pid)]
    return out


async def _pg_backends(dsn: str, p: Pipeline) -> list[psutil.Process]:
    """The PostgreSQL backends serving this run's services (matched by their client ports)."""
    ports: set[int] = set()
    for proc in p.procs:
        try:
            conns = psutil.Process(proc.pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        ports.update(c.laddr.port for c in conns if c.raddr and c.raddr.port == _pg_port(dsn))
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])", list(ports)
        )
    finally:
        await conn.close()
    out = []
    for row in rows:
        try:
            out.append(psutil.Process(row["pid"]))
        except psutil.Error:
            continue
    return out


async def _pg_auxiliary(dsn: str) -> list[psutil.Process]:
    """PostgreSQL's own processes (WAL writer, checkpointer, I/O workers, autovacuum, ...).

    They work for whichever backends write; on the private stack a bench runs on, that is
    this run's, so their CPU is part of what an event costs.
    """
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'"
        )
    finally:
        await conn.close()
    out = []
    for row in rows:
        with contextlib.suppress(psutil.Error):
            out.append(psutil.Process(row["pid"]))
    return out


def _pg_port(dsn: str) -> int:
    from urllib.parse import urlsplit

    return urlsplit(dsn).port or 5432


def _cpu_seconds(procs: dict[str, list[psutil.Process]]) -> dict[str, float]:
    out = {}
    for part, ps in procs.items():
        total = 0.0
        for proc in ps:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                continue
        out[part] = total
    return out


class CpuMeter:
    """CPU seconds each part of the pipeline spends between ``start`` and ``stop``."""

    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self.dsn = p.settings.database_url

    def start(self) -> None:
        self.procs = _processes(self.p)
        self.procs["postgres_ours"] = asyncio.run(_pg_backends(self.dsn, self.p))
        self.procs["postgres_aux"] = asyncio.run(_pg_auxiliary(self.dsn))
        self.before = _cpu_seconds(self.procs)
        self.everyone_before = _every_process()
        self.machine_before = psutil.cpu_times()
        self.rss = RssMeter({proc.label: proc.pid for proc in self.p.procs})
        self.rss.start()

    def stop(self) -> dict[str, float]:
        """CPU seconds per part since ``start`` (processes started meanwhile counted from 0)."""
        for part, found in (
            ("postgres_ours", _pg_backends(self.dsn, self.p)),
            ("postgres_aux", _pg_auxiliary(self.dsn)),
        ):
            known = {proc.pid for proc in self.procs[part]}
            self.procs[part] += [proc for proc in asyncio.run(found) if proc.pid not in known]
        after = _cpu_seconds(self.procs)
        m0, m1 = self.machine_before, psutil.cpu_times()
        busy = {k: after[k] - self.before.get(k, 0.0) for k in after}
        busy["machine"] = (sum(m1) - m1.idle - m1.iowait) - (sum(m0) - m0.idle - m0.iowait)
        # Where the box's busy time went by kind (kernel softirq is nobody's process time;
        # steal is time the hypervisor gave to another guest): seconds, like the parts.
        for kind in ("user", "system", "softirq", "irq", "steal", "iowait"):
            if hasattr(m1, kind):
                busy[f"machine_{kind}"] = getattr(m1, kind) - getattr(m0, kind)
        self.others = _top_others(self.everyone_before, _every_process(), self.procs)
        self.rss.stop()
        return busy


def _every_process() -> dict[tuple[int, float], tuple[str, float]]:
    """(pid, start time) -> (command, CPU seconds so far) of every process on the box."""
    out = {}
    for proc in psutil.process_iter(["pid", "create_time", "cmdline", "name", "cpu_times"]):
        info = proc.info
        times = info.get("cpu_times")
        if times is None:
            continue
        command = " ".join(info.get("cmdline") or []) or info.get("name") or "?"
        out[(info["pid"], info["create_time"])] = (command[:120], times.user + times.system)
    return out


def _top_others(
    before: dict[tuple[int, float], tuple[str, float]],
    after: dict[tuple[int, float], tuple[str, float]],
    ours: dict[str, list[psutil.Process]],
    top: int = 6,
) -> list[tuple[str, float]]:
    """The processes outside the measured parts that used the most CPU meanwhile (seconds):
    names what ``other_processes_cores`` was (processes that ended meanwhile are not seen)."""
    mine = {p.pid for ps in ours.values() for p in ps}
    spent = [
        (command, cpu - before.get(key, (command, 0.0))[1])
        for key, (command, cpu) in after.items()
        if key[0] not in mine
    ]
    spent.sort(key=lambda item: -item[1])
    return [(command, round(cpu, 2)) for command, cpu in spent[:top] if cpu > 0]


class RssMeter:
    """Resident memory of each service process, sampled every RSS_SAMPLE_S in a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, int] = {}
        self.last: dict[str, int] = {}
        self.first: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        procs = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(psutil.Error):
                procs[name] = psutil.Process(pid)
        while not self._stop.is_set():
            for name, proc in procs.items():
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                self.first.setdefault(name, rss)
                self.last[name] = rss
                self.peak[name] = max(rss, self.peak.get(name, 0))
            self._stop.wait(RSS_SAMPLE_S)

    def figures(self) -> dict[str, dict[str, float]]:
        """Per service (as started: ingest, aggregator-0, query, ...): MB at the start of the
        load, at its end (totals exact) and the peak."""
        mb = 1 << 20
        return {
            name: {
                "start_mb": round(self.first[name] / mb, 1),
                "end_mb": round(self.last[name] / mb, 1),
                "peak_mb": round(self.peak[name] / mb, 1),
            }
            for name in sorted(self.peak)
        }


# -- throughput ----------------------------------------------------------------------------------


def throughput(
    p: Pipeline, kind: str, duration_s: float, tag: str, operations: int = OPERATIONS
) -> dict[str, Any]:
    """Closed-loop load for ``duration_s``; events/s until the totals are exact."""
    settings = p.settings
    ops = [f"bench-e2e-{p.run_id}-{tag}-{n:02d}" for n in range(operations)]
    field, reader = _tokens(settings, ops)
    tmpls = templates()
    deltas = template_deltas(tmpls)
    counts = {op: [0] * len(tmpls) for op in ops}
    asyncio.run(_warm(p, ops, field, reader, counts))
    records_before = asyncio.run(_applied_records(settings.database_url, p))
    batch = BATCH if kind == "batch" else 1
    concurrency = BATCH_CONCURRENCY if kind == "batch" else SINGLE_CONCURRENCY
    start_at = time.time() + 2.0
    jobs = [
        Job(p.ingest_url, field, ops, tmpls, w, batch, concurrency, start_at, duration_s)
        for w in range(CLIENT_PROCS)
    ]
    meter = CpuMeter(p)
    say(f"e2e {tag}: {CLIENT_PROCS}x{concurrency} clients, {batch}/request, {duration_s} s")
    with ProcessPoolExecutor(CLIENT_PROCS) as pool:
        futures = [pool.submit(run_job, job) for job in jobs]
        time.sleep(max(0.0, start_at - time.time()))
        meter.start()
        samples = asyncio.run(_sample(settings.database_url, p, futures))
        outcomes = [f.result() for f in futures]
    sent_until = max(o.last_ack for o in outcomes)
    for o in outcomes:
        for op, per in o.counts.items():
            counts[op] = [a + b for a, b in zip(counts[op], per, strict=True)]
    accepted = sum(sum(c) for c in counts.values()) - len(ops)  # the warm-up events excluded
    expected = expected_metrics(counts, deltas)
    exact_at, wrong = asyncio.run(_wait_exact(p, reader, expected, timeout_s=600))
    busy = meter.stop()  # includes the 1 s re-check after exactness: a little idle time
    busy["clients"] = sum(o.cpu_s for o in outcomes)
    window = sent_until - start_at
    latencies = sorted(x for o in outcomes for x in o.latencies_ms)
    applied = [(t - start_at, (n - records_before) * batch) for t, n in samples]
    # the applied rate in the window, after a short ramp (time from 3 s to the window's end)
    ramp = [s for s in applied if s[0] >= min(3.0, duration_s / 3)]
    in_window = (
        (ramp[-1][1] - ramp[0][1]) / (ramp[-1][0] - ramp[0][0])
        if len(ramp) > 1 and ramp[-1][0] > ramp[0][0]
        else None
    )
    seconds = (exact_at - start_at) if exact_at else None
    span = seconds or (time.time() - start_at)
    result: dict[str, Any] = {
        "events_per_s": round(accepted / seconds) if seconds else None,
        "exact": exact_at is not None,
        "events": accepted,
        "events_per_request": batch,
        "clients": CLIENT_PROCS * concurrency,
        "aggregators": p.aggregators,
        "operations": operations,
        "send_window_s": round(window, 2),
        "seconds_to_exact": round(seconds, 2) if seconds else None,
        "drain_after_window_s": round(exact_at - sent_until, 2) if exact_at else None,
        "accepted_per_s": round(accepted / window),
        "applied_per_s_in_window": round(in_window) if in_window else None,
        "request_p50_ms": round(percentile(latencies, 0.5), 1),
        "request_p99_ms": round(percentile(latencies, 0.99), 1),
        "failed_requests": sum(o.failures for o in outcomes),
        "statuses": {
            str(k): sum(o.statuses.get(k, 0) for o in outcomes)
            for k in sorted({k for o in outcomes for k in o.statuses})
        },  # fmt: skip
        # from the first send until the totals were exact (the drain included)
        "cpu_cores_busy": {k: round(v / span, 3) for k, v in sorted(busy.items())},
        # resident memory of each service while it carried this load (sampled every 0.5 s)
        "rss_mb": meter.rss.figures(),
        "cpu_us_per_event": {
            k: round(v / max(accepted, 1) * 1e6, 1) for k, v in sorted(busy.items())
        },  # fmt: skip
    }
    # What the box's cores could carry at this CPU cost per event, were every part busy all the
    # time (the shared servers' whole CPU counted, so a little pessimistic).
    parts = ("ingest", "aggregator", "query", "clients", "postgres_ours", "kafka_all")
    per_event = sum(busy.get(k, 0.0) for k in parts) / max(accepted, 1)
    if per_event > 0:
        result["cpu_ceiling_events_per_s"] = round((os.cpu_count() or 1) / per_event)
    # CPU the rest of the box used meanwhile (other people's tests on a shared machine): noise
    ours = sum(busy.get(k, 0.0) for k in parts) - busy.get("kafka_all", 0.0)
    result["other_processes_cores"] = round((busy.get("machine", 0.0) - ours) / span, 2)
    result["other_processes_top"] = meter.others
    # The same ceiling on the cores the rest of the box left to this run (on a shared box the
    # plain ceiling assumes all of them, which the run could never have had).
    elsewhere = busy.get("machine", 0.0) - ours - busy.get("kafka_all", 0.0)
    left = (os.cpu_count() or 1) - elsewhere / span
    if per_event > 0 and left > 0:
        result["cpu_left_ceiling_events_per_s"] = round(left / per_event)
    if wrong:
        result["mismatches"] = dict(list(wrong.items())[:3])
    say(
        f"e2e {tag}: {result['events_per_s']} events/s to exact totals (accepted"
        f" {result['accepted_per_s']}/s, drain {result['drain_after_window_s']} s)"
    )
    return result


# -- latency --------------------------------------------------------------------------------------


class _Watch:
    """One SSE stream of the probe operation: (arrival time, warrants count) per message."""

    def __init__(self, url: str, reader: str) -> None:
        self.url, self.reader = url, reader
        self.seen: list[tuple[float, int]] = []
        self.first, self.done = asyncio.Event(), asyncio.Event()
        self.want = 1 << 62  # the count at which every acknowledged probe is visible

    async def run(self, client: httpx.AsyncClient) -> None:
        auth = {"Authorization": f"Bearer {self.reader}"}
        async with client.stream("GET", self.url, headers=auth) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    now = time.perf_counter()
                    doc = orjson.loads(line[5:])
                    self.seen.append((now, int(doc["metrics"].get("warrants_executed", 0))))
                    self.first.set()
                    self.check()

    def check(self) -> None:
        if self.seen and self.seen[-1][1] >= self.want:
            self.done.set()

    def latencies(self, base: int, acks: list[float]) -> dict[str, Any]:
        """Per probe: first message showing it minus its 202; p50, p99, max in ms."""
        latencies, lost, early, i = [], 0, 0, 0
        for n, acked in enumerate(acks, start=1):
            while i < len(self.seen) and self.seen[i][1] < base + n:
                i += 1
            if i == len(self.seen):
                lost = len(acks) - n + 1
                break
            delta = self.seen[i][0] - acked
            early += delta < 0  # shown before the 202 reached the client
            latencies.append(max(0.0, delta) * 1000)
        latencies.sort()
        return {
            "p50": round(percentile(latencies, 0.5), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "max": round(latencies[-1], 1) if latencies else None,
            "not_seen": lost,
            "seen_before_202": early,
            "stream_messages": len(self.seen),
        }


async def _probe(
    p: Pipeline, probe_op: str, field: str, reader: str, start_at: float, duration_s: float
) -> dict[str, Any]:
    """Probe events on their own operation, sequential; watch its SSE stream(s) for each one."""
    bodies = Bodies([probe_op], templates())  # template 0 is a warrant: +1 warrants_executed
    path = f"/v1/operations/{probe_op}/stream"
    watches = {"visible": _Watch(p.query_url + path, reader)}
    if p.dashboard_url:
        watches["dashboard_default"] = _Watch(p.dashboard_url + path, reader)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client:
        tasks = [asyncio.create_task(w.run(client)) for w in watches.values()]
        for w in watches.values():
            await asyncio.wait_for(w.first.wait(), 30)
        base = watches["visible"].seen[-1][1]
        acks: list[float] = []
        failures = 0
        headers = {"Authorization": f"Bearer {field}", "Content-Type": "application/json"}
        await asyncio.sleep(max(0.0, start_at - time.time()))
        k = 0
        while (at := start_at + k / PROBE_RATE) < start_at + duration_s:
            await asyncio.sleep(max(0.0, at - time.time()))
            r = await client.post(f"{p.ingest_url}/v1/events", content=bodies.event(0, 0),
                                  headers=headers)  # fmt: skip
            if r.status_code == 202:
                acks.append(time.perf_counter())
            else:
                failures += 1  # a refused probe adds nothing: later probes still count in order
            k += 1
        for w in watches.values():
            w.want = base + len(acks)
            w.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(w.done.wait(), 30)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await task
    result = {"probes": len(acks), "probe_failures": failures,
              **watches["visible"].latencies(base, acks)}  # fmt: skip
    if "dashboard_default" in watches:
        result["dashboard_default_stream"] = watches["dashboard_default"].latencies(base, acks)
    return result


def latency(p: Pipeline, offered: int, duration_s: float) -> dict[str, Any]:
    """Accept-to-visible latency at ``offered`` events/s (background batches plus probes)."""
    settings = p.settings
    load_ops = [f"bench-e2e-{p.run_id}-lat{offered}-{n:02d}" for n in range(6)]
    probe_op = f"bench-e2e-{p.run_id}-probe{offered}"
    field, reader = _tokens(settings, [*load_ops, probe_op])
    tmpls = templates()
    counts = {op: [0] * len(tmpls) for op in [*load_ops, probe_op]}
    asyncio.run(_warm(p, [*load_ops, probe_op], field, reader, counts))
    start_at = time.time() + 2.0
    job = Job(p.ingest_url, field, load_ops, tmpls, 0, LATENCY_BATCH, 0, start_at, duration_s,
              rate_per_s=offered - PROBE_RATE)  # fmt: skip
    say(f"e2e latency at {offered} events/s for {duration_s} s")
    with ProcessPoolExecutor(1) as pool:
        background = pool.submit(run_job, job)
        probe = asyncio.run(_probe(p, probe_op, field, reader, start_at, duration_s))
        bg = background.result()
    accepted = sum(sum(c) for c in bg.counts.values())
    bg_lat = sorted(bg.latencies_ms)
    result = {
        "offered_per_s": offered,
        **probe,
        "probe_per_s": PROBE_RATE,
        "background_accepted_per_s": round(accepted / duration_s),
        "background_batch": LATENCY_BATCH,
        "background_request_p99_ms": round(percentile(bg_lat, 0.99), 1),
        "background_failures": bg.failures,
        "window_s": duration_s,
    }
    say(f"e2e latency at {offered}/s: p50 {result['p50']} ms, p99 {result['p99']} ms,"
        f" max {result['max']} ms")  # fmt: skip
    return result


# -- ceilings -------------------------------------------------------------------------------------


def _record_size(count: int) -> int:
    """Bytes of the Kafka record ingest writes for ``count`` events of one operation."""
    tmpls = templates()
    bodies = Bodies(["bench-size-00"], tmpls)
    events = [event_to_dict(parse_event(bodies.event(0, i % len(tmpls)))) for i in range(count)]
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    return len(encode_submission(Submission("bench-size-00", now, "bench", events)))


def ceilings(settings: CommonSettings) -> dict[str, Any]:
    """Kafka's own producer and consumer, same broker, same record sizes as the e2e runs."""
    bootstrap = settings.kafka_bootstrap_servers
    run_id = new_run_id()
    sizes = {"e2e_batch_record": (_record_size(BATCH), PERF_BATCH_RECORDS, BATCH),
             "e2e_single_record": (_record_size(1), PERF_SINGLE_RECORDS, 1)}  # fmt: skip
    producer: dict[str, Any] = {}
    consumer: dict[str, Any] = {}
    for name, (size, records, events) in sizes.items():
        topic = f"bench-e2e-perf-{name.split('_')[1]}-{run_id}"
        create_topic(bootstrap, topic)
        try:
            say(f"ceiling: ProducerPerformance {records} records of {size} bytes")
            producer[name] = producer_perf(bootstrap, topic, size, records)
            say(f"ceiling: ConsumerPerformance {records} records of {size} bytes")
            consumer[name] = consumer_perf(bootstrap, topic, records, size)
        finally:
            delete_topics(bootstrap, [topic])
        for figures in (producer[name], consumer[name]):
            figures["events_per_record"] = events
            figures["events_per_s"] = figures["records_per_s"] * events
    return {"kafka_producer_perf": producer, "kafka_consumer_perf": consumer}


# -- the whole e2e bench -----------------------------------------------------------------------


def run() -> dict[str, Any]:
    """Ceilings, then throughput (batch, single), latency, and the 2-aggregator batch run."""
    settings = CommonSettings()
    ceiling = ceilings(settings)
    run_id = new_run_id()
    out: dict[str, Any] = {}
    with pipeline(settings, run_id, query_env=QUERY_ENV, dashboard=True) as p:
        out["batch"] = throughput(p, "batch", DURATION_S, "batch")
        out["single"] = throughput(p, "single", SINGLE_S, "single")
        lat = [latency(p, rate, LATENCY_S) for rate in OFFERED]
    with pipeline(settings, new_run_id(), aggregators=2, query_env=QUERY_ENV) as p2:
        out["batch_2_aggregators"] = throughput(p2, "batch", SCALE_S, "batch2")
    out["latency_ms"] = lat[0]
    out["latency_ms_at_5000"] = lat[1]
    out["targets"] = TARGETS
    out["meets"] = {
        "batch": (out["batch"]["events_per_s"] or 0) >= TARGETS["batch"],
        "single": (out["single"]["events_per_s"] or 0) >= TARGETS["single"],
        "latency_p99_at_1000": lat[0]["p99"] <= TARGETS["latency_p99_ms_at_1000"]
        and not lat[0]["not_seen"],
    }
    return {"e2e": out, "ceilings": ceiling}


def main() -> None:
    from bench.common import ensure_stack

    ensure_stack()
    print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
