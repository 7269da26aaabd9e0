"""Load generators for the end-to-end bench, each run in a process of its own.

Bodies are built from pre-serialised event templates: only the ``event_id`` is new per event,
so a client spends its CPU on HTTP, not on JSON. Each client counts, per operation and per
template, the events the server accepted, which is all the bench needs to compute the exact
totals the ledger must end with (the fold of what was accepted).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from schemas.examples import example_events
from schemas.parsing import parse_event
from schemas.tally import contribution

KINDS = ("warrant_executed", "arrest_made", "item_seized", "school_visited")


def templates() -> list[dict[str, Any]]:
    """Event templates (no voids): every kind that adds to the tally, occurred now."""
    occurred = datetime.now(UTC).replace(microsecond=0).isoformat()
    out = []
    for event in example_events():
        if event["type"] == "event_voided":
            continue
        out.append({**event, "occurred_at": occurred})
    return out


def template_deltas(tmpls: list[dict[str, Any]]) -> list[dict[str, int]]:
    """Each template's effect on the headline metrics."""
    out = []
    for t in tmpls:
        c = contribution(parse_event({**t, "event_id": str(uuid.uuid4())}))
        out.append({} if c is None else {c.metric: c.delta})
    return out


def expected_metrics(
    counts: dict[str, list[int]], deltas: list[dict[str, int]]
) -> dict[str, dict[str, int]]:
    """Per operation, the headline totals its accepted events must fold to."""
    out: dict[str, dict[str, int]] = {}
    for op, per_template in counts.items():
        metrics: dict[str, int] = {}
        for n, d in zip(per_template, deltas, strict=True):
            for metric, delta in d.items():
                metrics[metric] = metrics.get(metric, 0) + n * delta
        out[op] = {k: v for k, v in metrics.items() if v}
    return out


class Bodies:
    """Request bodies for a set of operations: one event, or a batch of ``size`` events."""

    def __init__(self, ops: list[str], tmpls: list[dict[str, Any]]) -> None:
        self.ops = ops
        self.t = len(tmpls)
        # A random v4 UUID per instance, its last 12 hex digits a counter: unique event ids
        # at a fraction of uuid4()'s cost (the clients share the machine with the pipeline).
        self._prefix = str(uuid.uuid4())[:24].encode()
        self._n = 0
        # '"operation_id":...}' per (op, template): the event without its leading event_id
        self._rest = [
            [orjson.dumps({**{k: v for k, v in tm.items() if k != "event_id"},
                           "operation_id": op})[1:] for tm in tmpls]
            for op in ops
        ]  # fmt: skip

    def _id(self) -> bytes:
        self._n += 1
        return b"%s%012x" % (self._prefix, self._n)

    def event(self, op: int, template: int) -> bytes:
        """One event of operation ``op`` (index) from ``template``, with a fresh event_id."""
        return b'{"event_id":"%s",%s' % (self._id(), self._rest[op][template])

    def batch(self, op: int, size: int) -> bytes:
        """A batch body of ``size`` events of operation ``op``, templates in rotation."""
        rest = self._rest[op]
        t = self.t
        parts = [b'{"event_id":"%s",%s' % (self._id(), rest[i % t]) for i in range(size)]
        return b'{"events":[' + b",".join(parts) + b"]}"


@dataclass
class Job:
    """What one load-generating process does."""

    url: str
    token: str
    ops: list[str]
    tmpls: list[dict[str, Any]]
    worker: int
    batch_size: int  # 1: POST /v1/events; more: POST /v1/events/batch
    concurrency: int  # requests in flight (closed loop); ignored when rate is set
    start_at: float  # wall clock (time.time) at which every process starts sending
    duration_s: float
    rate_per_s: float = 0.0  # events/s offered, open loop (0: closed loop, as fast as possible)


@dataclass
class Outcome:
    """What one process achieved: accepted events per op and template, and its timings."""

    counts: dict[str, list[int]] = field(default_factory=dict)
    requests: int = 0
    failures: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    last_ack: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # this load process's own CPU time while sending


def run_job(job: Job) -> Outcome:
    """Entry point of a load process: send until the window ends, then report."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    started = time.process_time()
    out = asyncio.run(_run(job))
    out.cpu_s = time.process_time() - started
    return out


Post = Callable[[bytes], Awaitable[tuple[int, bytes]]]


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs bodies to one path.

    A tenth of aiohttp's CPU per request: the load clients share the two cores with the
    pipeline they measure, so every microsecond they spend is one the pipeline does not get.
    """

    def __init__(self, url: str, path: str, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """Send one request, read the whole answer: (status, body)."""
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        writer.write(b"%s%d\r\n\r\n%s" % (self.head, len(body), body))
        status = int((await reader.readline()).split(b" ", 2)[1])
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise RuntimeError("chunked answers are not expected from the services")
        answer = await reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, answer

    async def close(self) -> None:
        """Close the connection (a later post opens a new one)."""
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def _run(job: Job) -> Outcome:
    import aiohttp

    bodies = Bodies(job.ops, job.tmpls)
    out = Outcome(counts={op: [0] * len(job.tmpls) for op in job.ops})
    single = job.batch_size == 1
    path = "/v1/events" if single else "/v1/events/batch"
    per_batch = [0] * bodies.t
    for i in range(job.batch_size):
        per_batch[i % bodies.t] += 1
    seq = job.worker * 7919  # spread the processes' first requests over operations

    def next_body() -> tuple[int, int, bytes]:
        nonlocal seq
        seq += 1
        op = seq % len(job.ops)
        if single:
            template = (seq // len(job.ops)) % bodies.t
            return op, template, bodies.event(op, template)
        return op, -1, bodies.batch(op, job.batch_size)

    async def send(post: Post) -> None:
        op, template, body = next_body()
        sent = time.perf_counter()
        try:
            status, doc = await post(body)
        except (OSError, asyncio.IncompleteReadError, RuntimeError):
            status, doc = 0, b""  # not known to be accepted: not counted
        took = time.perf_counter() - sent
        out.requests += 1
        out.statuses[status] = out.statuses.get(status, 0) + 1
        counts = out.counts[job.ops[op]]
        if status == 202:
            out.latencies_ms.append(took * 1000)
            if single:
                counts[template] += 1
            else:
                for t, n in enumerate(per_batch):
                    counts[t] += n
        elif status == 207:
            for item in orjson.loads(doc)["results"]:
                if item["status"] == "accepted":
                    counts[item["index"] % bodies.t] += 1
        else:
            out.failures += 1
        out.last_ack = time.time()

    await asyncio.sleep(max(0.0, job.start_at - time.time()))
    stop_at = job.start_at + job.duration_s
    if job.rate_per_s > 0:
        # Open loop: requests may overlap without bound, so they share aiohttp's pool.
        headers = {"Authorization": f"Bearer {job.token}", "Content-Type": "application/json"}
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def post(body: bytes) -> tuple[int, bytes]:
                async with session.post(job.url + path, data=body, headers=headers) as r:
                    return r.status, await r.read()

            await _open_loop(job, post, send, stop_at)
        return out

    async def loop() -> None:
        conn = Connection(job.url, path, job.token)
        try:
            while time.time() < stop_at:
                await send(conn.post)
        finally:
            await conn.close()

    await asyncio.gather(*(loop() for _ in range(job.concurrency)))
    return out


async def _open_loop(
    job: Job, post: Post, send: Callable[[Post], Coroutine[Any, Any, None]], stop_at: float
) -> None:
    """Requests fired on a fixed schedule, whether or not earlier ones have answered."""
    interval = job.batch_size / job.rate_per_s
    tasks: set[asyncio.Task[None]] = set()
    n = 0
    while True:
        at = job.start_at + n * interval
        if at >= stop_at:
            break
        await asyncio.sleep(max(0.0, at - time.time()))
        task = asyncio.create_task(send(post))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    if tasks:
        await asyncio.gather(*tasks)
